# The catalogue lists every rule the library emits, with the severity it emits.
package berth_test

import data.berth

# One violating example per catalogued rule. A platform that adds rules adds their examples from
# its own test file: violating_examples["acme/no-debug-images"] := {"object": ..., "params": {}}.
violating_examples[id] := example if some id, example in library_examples

library_examples := {
	"tenancy/namespace-in-tenant": {"object": config_map("team-b"), "params": {}},
	"tenancy/no-cluster-scoped": {"object": {"kind": "Namespace", "metadata": {"name": "x"}}, "params": {}},
	"tenancy/no-powerful-rolebinding": {"object": role_binding(cluster_role("admin"), []), "params": {}},
	"pod-security/no-privileged": {"object": deployment_with_container({"securityContext": {"privileged": true}}), "params": {}},
	"pod-security/no-host-path": {"object": deployment_with_pod({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), "params": {}},
	"pod-security/no-host-namespaces": {"object": deployment_with_pod({"hostPID": true}), "params": {}},
	"pod-security/no-privilege-escalation": {"object": deployment_with_container({"securityContext": {"allowPrivilegeEscalation": true}}), "params": {}},
	"pod-security/run-as-non-root": {"object": deployment_with_container({"securityContext": {"runAsNonRoot": false}}), "params": {}},
	"pod-security/no-added-capabilities": {"object": deployment_with_container({"securityContext": {"capabilities": {"add": ["ALL"]}}}), "params": {}},
	"images/allowed-registries": {"object": good_deployment, "params": {"allowed_registries": ["ghcr.io"]}},
	"images/pinned-image": {"object": deployment_with_container({"image": "app"}), "params": {}},
	"resources/requests-and-limits": {"object": deployment({"containers": [json.remove(good_container("app"), ["resources"])]}), "params": {}},
	"services/no-node-port": {"object": service("NodePort"), "params": {}},
	"services/no-load-balancer": {"object": service("LoadBalancer"), "params": {}},
	"labels/required-labels": {"object": good_deployment, "params": {"required_labels": ["team"]}},
	"labels/recommended-name-label": {"object": json.remove(good_deployment, ["metadata/labels"]), "params": {}},
	"params/valid-parameters": {"object": good_deployment, "params": {"warn_rules": true}},
	"params/unknown-parameter": {"object": good_deployment, "params": {"nope": 1}},
}

test_every_catalogued_rule_fires_with_its_severity if {
	every id, entry in berth.catalog {
		example := violating_examples[id]
		some f in findings(example.object, example.params)
		concat("/", [f.policy, f.rule]) == id
		f.severity == entry.severity
	}
}

test_every_example_fires_only_catalogued_rules if {
	every _, example in violating_examples {
		every id in ids(findings(example.object, example.params)) {
			berth.catalog[id]
		}
	}
}

test_the_catalogue_is_complete if {
	object.keys(berth.catalog) == object.keys(violating_examples)
	every id, entry in berth.catalog {
		id == concat("/", [entry.policy, entry.rule])
		entry.severity in {"deny", "warn"}
		entry.effect == berth.effects[entry.severity]
		is_string(entry.description)
		every p in entry.parameters {
			berth.parameter_types[p]
		}
	}
}
