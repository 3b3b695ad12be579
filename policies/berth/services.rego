# Services: no ports on the nodes or external load balancers unless the platform allows them
# for the tenant (data.params.allowed_service_types).
package berth

findings contains finding("services", "no-node-port", "deny", msg) if {
	service_type == "NodePort"
	not "NodePort" in param_allowed_service_types
	msg := "Service of type NodePort opens a port on every node (data.params.allowed_service_types allows it)"
}

findings contains finding("services", "no-load-balancer", "deny", msg) if {
	service_type == "LoadBalancer"
	not "LoadBalancer" in param_allowed_service_types
	msg := "Service of type LoadBalancer provisions an external load balancer (data.params.allowed_service_types allows it)"
}

service_type := value_at(object_at(input.object, "spec"), "type", "ClusterIP") if input.object.kind == "Service"
