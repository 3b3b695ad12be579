package berth_test

import data.berth

network_policy(ingress_rules) := {
	"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
	"metadata": {"name": "allow", "namespace": "team-a"},
	"spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": ingress_rules},
}

network_ids := {"network/no-open-ingress", "network/no-ip-block", "network/no-foreign-namespaces"}

# The test tenant is team-a (namespaces team-a, team-a-jobs) and lets monitoring in.

test_network_rules_pass_peers_inside_the_tenant if {
	every peer in [
		{"podSelector": {"matchLabels": {"app": "web"}}},
		{"podSelector": {}},
		{"namespaceSelector": {"matchLabels": {"berth.dev/tenant": "team-a"}}},
		{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-a-jobs"}}, "podSelector": {}},
		{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
		{"namespaceSelector": {"matchLabels": {"berth.dev/tenant": "team-a", "env": "prod"}}},
		{"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "monitoring"]}]}},
	] {
		fs := findings(network_policy([{"from": [peer], "ports": [{"port": 8080}]}]), {})
		count(ids(fs) & network_ids) == 0
	}

	# Egress is not checked, and a policy without ingress rules admits nothing.
	egress := object.union(network_policy([]), {"spec": {"policyTypes": ["Egress"], "egress": [{}]}})
	count(ids(findings(egress, {})) & network_ids) == 0
}

# network/no-open-ingress

test_no_open_ingress_denies_rules_without_from if {
	messages("network/no-open-ingress", network_policy([{}]), {}) == {"NetworkPolicy ingress[0] has no from: it admits traffic from every namespace and from outside the cluster"}
	fires("network/no-open-ingress", network_policy([{"from": [{"podSelector": {}}]}, {"from": [], "ports": [{"port": 80}]}]), {})
	messages("network/no-open-ingress", network_policy([{"from": [{}]}]), {}) == {"NetworkPolicy ingress[0].from[0] selects no peer: it admits traffic from everywhere"}
}

# network/no-ip-block

test_no_ip_block_denies_ingress_ip_blocks if {
	obj := network_policy([{"from": [{"podSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}])
	messages("network/no-ip-block", obj, {}) == {"NetworkPolicy ingress[0].from[1] admits the address block 0.0.0.0/0, which may hold other tenants' pods and nodes"}
}

# network/no-foreign-namespaces

test_no_foreign_namespaces_denies_wide_or_foreign_selectors if {
	every selector in [
		{},
		{"matchLabels": {}},
		{"matchLabels": {"env": "prod"}},
		{"matchLabels": {"berth.dev/tenant": "team-b"}},
		{"matchLabels": {"kubernetes.io/metadata.name": "team-b"}},
		{"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["team-b"]}]},
		{"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "kube-system"]}]},
		{"matchExpressions": [{"key": "berth.dev/tenant", "operator": "Exists"}]},
	] {
		fires("network/no-foreign-namespaces", network_policy([{"from": [{"namespaceSelector": selector, "podSelector": {}}]}]), {})
	}
	messages("network/no-foreign-namespaces", network_policy([{"from": [{"namespaceSelector": {}}]}]), {}) == {"NetworkPolicy ingress[0].from[0] selects namespaces outside the tenant: its namespaceSelector must pin berth.dev/tenant: team-a or kubernetes.io/metadata.name: one of team-a, team-a-jobs, monitoring"}
}

test_no_foreign_namespaces_fails_closed_without_tenant_input if {
	obj := network_policy([{"from": [{"namespaceSelector": {"matchLabels": {"berth.dev/tenant": "team-a"}}}]}])
	fs := findings_for_tenant(obj, {}, {"namespaces": ["team-a"]})
	"network/no-foreign-namespaces" in ids(fs)
	allowed := network_policy([{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}])
	"network/no-foreign-namespaces" in ids(findings_for_tenant(allowed, {}, {"name": "team-a", "namespaces": ["team-a"]}))
	no_tenant := berth.violations with input as {"object": obj}
	{f.message | some f in no_tenant; f.rule == "no-foreign-namespaces"} == {"NetworkPolicy ingress[0].from[0] selects namespaces outside the tenant: its namespaceSelector must pin berth.dev/tenant: (no tenant) or kubernetes.io/metadata.name: one of "}
}
