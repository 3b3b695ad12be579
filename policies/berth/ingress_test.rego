package berth_test

ingress(spec) := {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "team-a"}, "spec": spec}

backend := {"service": {"name": "web", "port": {"number": 80}}}

host_rule(host) := {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}

# The test tenant holds shop.example.com and *.team-a.example.com.

# ingress/assigned-hosts

test_assigned_hosts_passes_exact_and_wildcard_grants if {
	every host in ["shop.example.com", "api.team-a.example.com", "*.team-a.example.com"] {
		not fires("ingress/assigned-hosts", ingress({"rules": [host_rule(host)], "tls": [{"hosts": [host], "secretName": "tls"}]}), {})
	}
}

test_assigned_hosts_denies_hosts_not_granted if {
	every host in [
		"shop.other.example",
		"example.com",
		"www.shop.example.com",
		"team-a.example.com",
		"a.b.team-a.example.com",
		"xteam-a.example.com",
	] {
		fires("ingress/assigned-hosts", ingress({"rules": [host_rule(host)]}), {})
	}
	messages("ingress/assigned-hosts", ingress({"rules": [host_rule("shop.other.example")]}), {}) == {"Ingress routes the host shop.other.example, which is not assigned to the tenant (the tenant's hosts: shop.example.com, *.team-a.example.com)"}
}

test_assigned_hosts_denies_wildcards_not_granted_exactly if {
	every host in ["*.example.com", "*.x.team-a.example.com", "*.shop.example.com"] {
		fires("ingress/assigned-hosts", ingress({"rules": [host_rule(host)]}), {})
	}
	messages("ingress/assigned-hosts", ingress({"rules": [host_rule("*.example.com")]}), {}) == {"Ingress routes the host *.example.com, a wildcard the tenant was not granted exactly (the tenant's hosts: shop.example.com, *.team-a.example.com)"}
}

test_assigned_hosts_checks_tls_hosts if {
	obj := ingress({"rules": [host_rule("shop.example.com")], "tls": [{"hosts": ["shop.example.com", "bank.example.com"], "secretName": "tls"}]})
	messages("ingress/assigned-hosts", obj, {}) == {"Ingress asks for TLS for the host bank.example.com, which is not assigned to the tenant (the tenant's hosts: shop.example.com, *.team-a.example.com)"}
}

test_assigned_hosts_denies_every_host_without_grants if {
	no_hosts := {"name": "team-a", "namespaces": ["team-a"]}
	fs := findings_for_tenant(ingress({"rules": [host_rule("shop.example.com")]}), {}, no_hosts)
	{f.message | some f in fs; f.rule == "assigned-hosts"} == {"Ingress routes the host shop.example.com, which is not assigned to the tenant (the tenant has no hosts)"}
}

# ingress/no-catch-all

test_no_catch_all_passes_rules_with_hosts if {
	not fires("ingress/no-catch-all", ingress({"rules": [host_rule("shop.example.com")], "tls": [{"hosts": ["shop.example.com"]}]}), {})
}

test_no_catch_all_denies_hostless_rules_default_backends_and_tls if {
	messages("ingress/no-catch-all", ingress({"rules": [host_rule("shop.example.com"), {"http": {"paths": []}}]}), {}) == {"Ingress rule 1 has no host: it would catch requests for every host"}
	messages("ingress/no-catch-all", ingress({"defaultBackend": backend}), {}) == {"Ingress sets spec.defaultBackend: it would catch requests that match no other rule, for every host"}
	fires("ingress/no-catch-all", ingress({"backend": {"serviceName": "web", "servicePort": 80}}), {})
	messages("ingress/no-catch-all", ingress({"rules": [host_rule("shop.example.com")], "tls": [{"secretName": "tls"}]}), {}) == {"Ingress TLS entry 0 names no hosts: its certificate would become the default for every host"}
}
