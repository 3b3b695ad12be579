package berth_test

service(type) := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "team-a"}, "spec": {"type": type, "ports": [{"port": 80}]}}

untyped_service := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "team-a"}, "spec": {"ports": [{"port": 80}]}}

# services/no-node-port

test_no_node_port_passes_cluster_ip_and_allowed if {
	not fires("services/no-node-port", service("ClusterIP"), {})
	not fires("services/no-node-port", untyped_service, {})
	not fires("services/no-node-port", service("NodePort"), {"allowed_service_types": ["NodePort"]})
}

test_no_node_port_denies_node_port if {
	messages("services/no-node-port", service("NodePort"), {}) == {"Service of type NodePort opens a port on every node (data.params.allowed_service_types allows it)"}
	fires("services/no-node-port", service("NodePort"), {"allowed_service_types": ["LoadBalancer"]})
}

# services/no-load-balancer

test_no_load_balancer_passes_cluster_ip_and_allowed if {
	not fires("services/no-load-balancer", service("ClusterIP"), {})
	not fires("services/no-load-balancer", service("LoadBalancer"), {"allowed_service_types": ["LoadBalancer"]})
	not fires("services/no-node-port", service("LoadBalancer"), {"allowed_service_types": ["LoadBalancer"]})
}

test_no_load_balancer_denies_load_balancer if {
	fires("services/no-load-balancer", service("LoadBalancer"), {})
	fires("services/no-load-balancer", service("LoadBalancer"), {"allowed_service_types": ["NodePort"]})
}
