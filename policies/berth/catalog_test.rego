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
	"tenancy/no-persistent-volume-binding": {"object": claim({"volumeName": "pv-1"}), "params": {}},
	"tenancy/no-agent-service-account": {"object": deployment_with_pod({"serviceAccountName": "berth-agent"}), "params": {}},
	"tenancy/no-service-account-token": {"object": token_secret("berth-agent"), "params": {}},
	"pod-security/no-privileged": {"object": deployment_with_container({"securityContext": {"privileged": true}}), "params": {}},
	"pod-security/no-host-path": {"object": deployment_with_pod({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), "params": {}},
	"pod-security/no-host-namespaces": {"object": deployment_with_pod({"hostPID": true}), "params": {}},
	"pod-security/no-host-ports": {"object": deployment_with_container({"ports": [{"containerPort": 80, "hostPort": 80}]}), "params": {}},
	"pod-security/no-added-capabilities": {"object": deployment_with_container({"securityContext": {"capabilities": {"add": ["ALL"]}}}), "params": {}},
	"pod-security/no-unconfined-seccomp": {"object": deployment_with_container({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}), "params": {}},
	"pod-security/no-unconfined-apparmor": {"object": deployment_with_container({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}), "params": {}},
	"pod-security/no-custom-selinux": {"object": deployment_with_pod({"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}), "params": {}},
	"pod-security/default-proc-mount": {"object": deployment_with_container({"securityContext": {"procMount": "Unmasked"}}), "params": {}},
	"pod-security/no-unsafe-sysctls": {"object": deployment_with_pod({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}), "params": {}},
	"pod-security/no-host-process": {"object": deployment_with_container({"securityContext": {"windowsOptions": {"hostProcess": true}}}), "params": {}},
	"pod-security/no-probe-host": {"object": deployment_with_container({"livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}), "params": {}},
	"pod-security/no-privilege-escalation": {"object": deployment_with_container({"securityContext": {"allowPrivilegeEscalation": true}}), "params": {}},
	"pod-security/run-as-non-root": {"object": deployment_with_container({"securityContext": {"runAsNonRoot": false}}), "params": {}},
	"pod-security/require-seccomp": {"object": deployment({"containers": [json.remove(good_container("app"), ["securityContext/seccompProfile"])]}), "params": {}},
	"pod-security/restricted-capabilities": {"object": deployment_with_container({"securityContext": {"capabilities": {"drop": []}}}), "params": {}},
	"pod-security/restricted-volume-types": {"object": deployment_with_pod({"volumes": [{"name": "n", "nfs": {"server": "nfs.example", "path": "/"}}]}), "params": {}},
	"pod-security/user-namespace-proc-mount": {"object": deployment_with_pod({"hostUsers": false, "containers": [object.union(good_container("app"), {"securityContext": {"procMount": "Unmasked"}})]}), "params": {}},
	"images/allowed-registries": {"object": good_deployment, "params": {"allowed_registries": ["ghcr.io"]}},
	"images/pinned-image": {"object": deployment_with_container({"image": "app"}), "params": {}},
	"resources/requests-and-limits": {"object": deployment({"containers": [json.remove(good_container("app"), ["resources"])]}), "params": {}},
	"services/no-node-port": {"object": service("NodePort"), "params": {}},
	"services/no-load-balancer": {"object": service("LoadBalancer"), "params": {}},
	"services/no-external-ips": {"object": object.union(service("ClusterIP"), {"spec": {"externalIPs": ["8.8.8.8"]}}), "params": {}},
	"services/no-internal-external-name": {"object": external_name("kubernetes.default.svc.cluster.local"), "params": {}},
	"ingress/assigned-hosts": {"object": ingress({"rules": [host_rule("shop.other.example")]}), "params": {}},
	"ingress/no-catch-all": {"object": ingress({"defaultBackend": backend}), "params": {}},
	"network/no-open-ingress": {"object": network_policy([{}]), "params": {}},
	"network/no-ip-block": {"object": network_policy([{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]), "params": {}},
	"network/no-foreign-namespaces": {"object": network_policy([{"from": [{"namespaceSelector": {}}]}]), "params": {}},
	"labels/required-labels": {"object": good_deployment, "params": {"required_labels": ["team"]}},
	"labels/recommended-name-label": {"object": json.remove(good_deployment, ["metadata/labels"]), "params": {}},
	"secrets/encrypted-in-git": {"object": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "team-a"}, "stringData": {"password": "hunter2"}}, "params": {}},
	"params/valid-parameters": {"object": good_deployment, "params": {"warn_rules": true}},
	"params/unknown-parameter": {"object": good_deployment, "params": {"nope": 1}},
}

# The severity a catalogue entry lists for a profile (a platform's own entry may list only one).
listed_severity(entry, profile) := object.get(entry, ["severities", profile], entry.severity)

test_every_catalogued_rule_fires_with_its_severity_under_each_profile if {
	every id, entry in berth.catalog {
		every profile in berth.profile_names {
			example := violating_examples[id]
			some f in findings(example.object, object.union(example.params, {"profile": profile}))
			concat("/", [f.policy, f.rule]) == id
			f.severity == listed_severity(entry, profile)
		}
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
		entry.level in {"baseline", "restricted", "advisory"}
		entry.severity in {"deny", "warn"}
		entry.effect == berth.effects[entry.severity]
		object.keys(entry.severities) == {"baseline", "restricted"}
		is_string(entry.description)
		every p in entry.parameters {
			berth.parameter_types[p]
		}
	}
}

# The catalogue states severities under the profile in force, and the levels mean what
# profiles.rego says.
test_the_catalogue_follows_the_profile if {
	berth.catalog["resources/requests-and-limits"].severity == "warn"
	berth.catalog["resources/requests-and-limits"].severity == "deny" with data.params as {"profile": "restricted"}
	berth.catalog["resources/requests-and-limits"].severities == {"baseline": "warn", "restricted": "deny"}
	every _, entry in berth.catalog {
		entry.severities == {
			"baseline": {"baseline": "deny", "restricted": "warn", "advisory": "warn"}[entry.level],
			"restricted": {"baseline": "deny", "restricted": "deny", "advisory": "warn"}[entry.level],
		}
	}
}
