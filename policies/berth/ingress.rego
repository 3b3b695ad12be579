# Ingress: a tenant routes only the host names the platform assigned to it
# (input.tenant.hosts), and never claims the ingress controller's catch-all. Ingress controllers
# merge every namespace's Ingresses by host, so a host or default route of one tenant would
# capture another's traffic (or its TLS certificate).
package berth

ingress_spec := object_at(input.object, "spec") if input.object.kind == "Ingress"

# Every host the Ingress routes or asks TLS for, with where it is named.
ingress_hosts contains {"where": "routes", "host": host} if {
	some rule in array_at(ingress_spec, "rules")
	host := value_at(rule, "host", "")
	host != ""
}

ingress_hosts contains {"where": "asks for TLS for", "host": host} if {
	some tls in array_at(ingress_spec, "tls")
	some host in array_at(tls, "hosts")
}

findings contains finding("ingress", "assigned-hosts", level_severity("baseline"), msg) if {
	some h in ingress_hosts
	not host_assigned(lower(str(h.host)))
	msg := concat("", ["Ingress ", h.where, " the host ", str(h.host), ", ", unassigned_reason(str(h.host)), " (", assigned_hosts_text, ")"])
}

unassigned_reason(host) := "a wildcard the tenant was not granted exactly" if {
	startswith(host, "*")
} else := "which is not assigned to the tenant"

assigned_hosts_text := concat("", ["the tenant's hosts: ", concat(", ", tenant_hosts)]) if {
	count(tenant_hosts) > 0
} else := "the tenant has no hosts"

# An exact grant covers its name; a wildcard grant "*.<domain>" covers the names one label below
# <domain>, and a wildcard host only when granted exactly.
host_assigned(host) if host in tenant_hosts

host_assigned(host) if {
	not startswith(host, "*")
	some grant in tenant_hosts
	startswith(grant, "*.")
	domain := trim_prefix(grant, "*")
	endswith(host, domain)
	label := trim_suffix(host, domain)
	label != ""
	not contains(label, ".")
}

findings contains finding("ingress", "no-catch-all", level_severity("baseline"), msg) if {
	some i, rule in array_at(ingress_spec, "rules")
	value_at(rule, "host", "") == ""
	msg := concat("", ["Ingress rule ", str(i), " has no host: it would catch requests for every host"])
}

findings contains finding("ingress", "no-catch-all", level_severity("baseline"), msg) if {
	some field in ["defaultBackend", "backend"]
	value_at(ingress_spec, field, null) != null
	msg := concat("", ["Ingress sets spec.", field, ": it would catch requests that match no other rule, for every host"])
}

findings contains finding("ingress", "no-catch-all", level_severity("baseline"), msg) if {
	some i, tls in array_at(ingress_spec, "tls")
	count(array_at(tls, "hosts")) == 0
	msg := concat("", ["Ingress TLS entry ", str(i), " names no hosts: its certificate would become the default for every host"])
}
