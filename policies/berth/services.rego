# Services: no ports on the nodes or external load balancers unless the platform allows them
# for the tenant (data.params.allowed_service_types), no external IPs, and no ExternalName
# aliases for names inside the cluster.
package berth

findings contains finding("services", "no-node-port", level_severity("baseline"), msg) if {
	service_type == "NodePort"
	not "NodePort" in param_allowed_service_types
	msg := "Service of type NodePort opens a port on every node (data.params.allowed_service_types allows it)"
}

findings contains finding("services", "no-load-balancer", level_severity("baseline"), msg) if {
	service_type == "LoadBalancer"
	not "LoadBalancer" in param_allowed_service_types
	msg := "Service of type LoadBalancer provisions an external load balancer (data.params.allowed_service_types allows it)"
}

service_type := value_at(object_at(input.object, "spec"), "type", "ClusterIP") if input.object.kind == "Service"

# kube-proxy routes traffic for an external IP to the Service from every node and pod, whoever
# owns the address (CVE-2020-8554), whatever the Service's type.
findings contains finding("services", "no-external-ips", level_severity("baseline"), msg) if {
	input.object.kind == "Service"
	ips := array_at(object_at(input.object, "spec"), "externalIPs")
	count(ips) > 0
	msg := concat("", [
		"Service claims the external IPs ", concat(", ", [str(ip) | some ip in ips]),
		": traffic of every pod and node to them would reach the tenant (CVE-2020-8554)",
	])
}

# An ExternalName Service is a DNS alias; ingress controllers and proxies that resolve it from
# their own namespace would reach whatever it names inside the cluster (the API server, another
# tenant's Services or pods, the node itself).
findings contains finding("services", "no-internal-external-name", level_severity("baseline"), msg) if {
	service_type == "ExternalName"
	raw := str(value_at(object_at(input.object, "spec"), "externalName", ""))
	name := lower(trim_suffix(raw, "."))
	reason := internal_name(name)
	msg := concat("", ["Service of type ExternalName points at ", raw, ", ", reason, " (only names outside the cluster, or the tenant's own Services)"])
}

# Why a name resolves inside the cluster; undefined for other names and for the tenant's own
# Services.
internal_name(name) := "an IP address" if {
	regex.match(`^[0-9.]+$`, name)
} else := "an IP address" if {
	contains(name, ":")
} else := "the node itself" if {
	name == "localhost"
} else := "the node itself" if {
	endswith(name, ".localhost")
} else := "a single-label name, resolved through the DNS search path of whoever looks it up" if {
	name != ""
	not contains(name, ".")
} else := "a Service or pod name of the cluster's DNS outside the tenant's namespaces" if {
	labels := split(name, ".")
	cluster_dns_label_after(labels, 0)
	not own_service_name(labels)
} else := "a name in the cluster's DNS domain" if {
	endswith(name, ".cluster.local")
	not own_service_name(split(name, "."))
}

# Whether a label after position i is "svc" or "pod", as in <service>.<namespace>.svc.<zone>,
# <host>.<service>.<namespace>.svc.<zone> and <ip>.<namespace>.pod.<zone>.
cluster_dns_label_after(labels, i) if {
	some j, label in labels
	j > i
	label in {"svc", "pod"}
}

# <service>.<namespace>.svc[.<zone>] or <host>.<service>.<namespace>.svc[.<zone>] (a
# StatefulSet pod) in one of the tenant's namespaces.
own_service_name(labels) if {
	count(labels) >= 3
	labels[2] == "svc"
	labels[1] in tenant_namespaces
	not cluster_dns_label_after(labels, 2)
}

own_service_name(labels) if {
	count(labels) >= 4
	labels[3] == "svc"
	labels[2] in tenant_namespaces
	not labels[1] in {"svc", "pod"}
	not cluster_dns_label_after(labels, 3)
}
