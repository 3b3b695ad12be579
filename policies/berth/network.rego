# Network: a tenant's NetworkPolicies may open its pods to each other, to its own namespaces and
# to the namespaces the platform lets in (input.tenant.allowFromNamespaces), never wider. Policies
# only add allowed traffic, so one ingress rule open to everyone undoes the isolation the
# platform's berth-isolation policy provides. Egress rules cannot open another tenant, and are
# not checked.
package berth

# Every ingress rule of the NetworkPolicy, with where messages say it is.
ingress_rules contains {"where": concat("", ["ingress[", str(i), "]"]), "rule": rule} if {
	input.object.kind == "NetworkPolicy"
	some i, rule in array_at(object_at(input.object, "spec"), "ingress")
}

# Every peer of those rules.
ingress_peers contains {"where": concat("", [r.where, ".from[", str(j), "]"]), "peer": peer} if {
	some r in ingress_rules
	some j, peer in array_at(r.rule, "from")
}

findings contains finding("network", "no-open-ingress", level_severity("baseline"), msg) if {
	some r in ingress_rules
	count(array_at(r.rule, "from")) == 0
	msg := concat("", ["NetworkPolicy ", r.where, " has no from: it admits traffic from every namespace and from outside the cluster"])
}

findings contains finding("network", "no-open-ingress", level_severity("baseline"), msg) if {
	some p in ingress_peers
	every field in ["podSelector", "namespaceSelector", "ipBlock"] {
		value_at(p.peer, field, null) == null
	}
	msg := concat("", ["NetworkPolicy ", p.where, " selects no peer: it admits traffic from everywhere"])
}

findings contains finding("network", "no-ip-block", level_severity("baseline"), msg) if {
	some p in ingress_peers
	value_at(p.peer, "ipBlock", null) != null
	cidr := str(value_at(object_at(p.peer, "ipBlock"), "cidr", ""))
	msg := concat("", ["NetworkPolicy ", p.where, " admits the address block ", cidr, ", which may hold other tenants' pods and nodes"])
}

findings contains finding("network", "no-foreign-namespaces", level_severity("baseline"), msg) if {
	some p in ingress_peers
	value_at(p.peer, "namespaceSelector", null) != null
	not tenant_namespace_selector(object_at(p.peer, "namespaceSelector"))
	msg := concat("", [
		"NetworkPolicy ", p.where, " selects namespaces outside the tenant: its namespaceSelector must pin ",
		"berth.dev/tenant: ", str(value_at(object_at(input, "tenant"), "name", "(no tenant)")),
		" or kubernetes.io/metadata.name: one of ", concat(", ", [str(ns) | some ns in allowed_source_namespaces]),
	])
}

# Namespaces a peer may select: the tenant's own and the ones the platform lets in.
allowed_source_namespaces := array.concat(tenant_namespaces, tenant_allow_from_namespaces)

# A selector that only matches allowed namespaces: one of its requirements (which all must hold)
# pins the tenant label to the tenant or the namespace name to allowed namespaces.
tenant_namespace_selector(selector) if {
	some key, value in object_at(selector, "matchLabels")
	allowed_namespace_label(key, value)
}

tenant_namespace_selector(selector) if {
	some requirement in array_at(selector, "matchExpressions")
	value_at(requirement, "operator", "") == "In"
	values := array_at(requirement, "values")
	count(values) > 0
	every value in values {
		allowed_namespace_label(value_at(requirement, "key", ""), value)
	}
}

allowed_namespace_label("berth.dev/tenant", value) if value == tenant_name

allowed_namespace_label("kubernetes.io/metadata.name", value) if value in allowed_source_namespaces
