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

# services/no-external-ips

test_no_external_ips_passes_services_without_them if {
	not fires("services/no-external-ips", service("ClusterIP"), {})
	not fires("services/no-external-ips", object.union(service("ClusterIP"), {"spec": {"externalIPs": []}}), {})
}

test_no_external_ips_denies_them_whatever_the_type if {
	every type in ["ClusterIP", "NodePort", "LoadBalancer"] {
		fires("services/no-external-ips", object.union(service(type), {"spec": {"externalIPs": ["10.0.0.5"]}}), {"allowed_service_types": ["NodePort", "LoadBalancer"]})
	}
	svc := object.union(service("ClusterIP"), {"spec": {"externalIPs": ["8.8.8.8", "1.1.1.1"]}})
	messages("services/no-external-ips", svc, {}) == {"Service claims the external IPs 8.8.8.8, 1.1.1.1: traffic of every pod and node to them would reach the tenant (CVE-2020-8554)"}
}

# services/no-internal-external-name

external_name(name) := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alias", "namespace": "team-a"}, "spec": {"type": "ExternalName", "externalName": name}}

test_no_internal_external_name_passes_outside_names_and_own_services if {
	every name in [
		"api.example.com",
		"db.example.com.",
		"mydb.c1x2.eu-west-1.rds.amazonaws.com",
		"web.team-a.svc.cluster.local",
		"web.team-a-jobs.svc",
		"db-0.db.team-a.svc.cluster.local",
	] {
		not fires("services/no-internal-external-name", external_name(name), {})
	}
}

test_no_internal_external_name_denies_names_inside_the_cluster if {
	every name in [
		"kubernetes",
		"kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local",
		"KUBERNETES.DEFAULT.SVC.CLUSTER.LOCAL.",
		"db.team-b.svc.cluster.local",
		"db-0.db.team-b.svc.cluster.local",
		"web.team-a.svc.cluster.local.team-b.svc",
		"10-96-0-1.default.pod.cluster.local",
		"anything.cluster.local",
		"localhost",
		"app.localhost",
		"10.96.0.1",
		"169.254.169.254",
		"::1",
	] {
		fires("services/no-internal-external-name", external_name(name), {})
	}
	messages("services/no-internal-external-name", external_name("kubernetes.default.svc"), {}) == {"Service of type ExternalName points at kubernetes.default.svc, a Service or pod name of the cluster's DNS outside the tenant's namespaces (only names outside the cluster, or the tenant's own Services)"}
	messages("services/no-internal-external-name", external_name("169.254.169.254"), {}) == {"Service of type ExternalName points at 169.254.169.254, an IP address (only names outside the cluster, or the tenant's own Services)"}
}

test_no_internal_external_name_checks_only_external_name_services if {
	not fires("services/no-internal-external-name", object.union(service("ClusterIP"), {"spec": {"externalName": "kubernetes"}}), {})
}
