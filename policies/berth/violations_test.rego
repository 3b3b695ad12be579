# The entrypoint: a compliant workload passes everything, findings have the contract's shape,
# and data.params.disabled_rules and warn_rules override rules.
package berth_test

import data.berth

test_a_compliant_deployment_has_no_findings if {
	count(findings(good_deployment, {})) == 0
}

test_a_compliant_deployment_has_no_findings_without_data if {
	count(berth.violations) == 0 with input as {"object": good_deployment, "tenant": tenant, "revision": "abc123"}
}

test_a_plain_config_map_has_no_findings if {
	cm := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team-a"}, "data": {"k": "v"}}
	count(findings(cm, {})) == 0
}

test_findings_have_the_contract_shape if {
	fs := findings(deployment_with_container({"image": "app", "securityContext": {"privileged": true}}), {})
	count(fs) > 0
	every f in fs {
		object.keys(f) == {"policy", "rule", "severity", "message"}
		f.severity in {"deny", "warn"}
		is_string(f.message)
	}
}

test_disabled_rules_drop_a_rule if {
	obj := deployment_with_container({"image": "app:latest", "securityContext": {"privileged": true}})
	fires("images/pinned-image", obj, {})
	fs := findings(obj, {"disabled_rules": ["images/pinned-image"]})
	not "images/pinned-image" in ids(fs)
	"pod-security/no-privileged" in ids(fs)
}

test_disabled_rules_drop_a_whole_policy if {
	obj := deployment_with_container({"image": "app:latest", "securityContext": {"privileged": true, "allowPrivilegeEscalation": true}})
	fs := findings(obj, {"disabled_rules": ["pod-security/*"]})
	every f in fs {
		f.policy != "pod-security"
	}
	"images/pinned-image" in ids(fs)
}

test_warn_rules_downgrade_a_deny_and_say_so if {
	obj := deployment_with_container({"securityContext": {"privileged": true}})
	fs := findings(obj, {"warn_rules": ["pod-security/no-privileged"]})
	some f in fs
	f.rule == "no-privileged"
	f.severity == "warn"
	f.message == "container app runs privileged (deny downgraded to warn by data.params.warn_rules)"
}

test_warn_rules_star_is_an_audit_mode if {
	obj := deployment_with_container({"image": "app:latest", "securityContext": {"privileged": true}})
	fs := findings(obj, {"warn_rules": ["*"]})
	count(fs) > 1
	every f in fs {
		f.severity == "warn"
	}
}

test_a_warn_is_not_changed_by_warn_rules if {
	fs := findings(json.remove(good_deployment, ["metadata/labels"]), {"warn_rules": ["*"]})
	some f in fs
	f.rule == "recommended-name-label"
	f.message == "workload has no app.kubernetes.io/name label"
}

test_containers_lists_every_container_of_the_pod_template if {
	obj := deployment_with_pod({"initContainers": [good_container("setup")]})
	cs := berth.containers with input as {"object": obj, "tenant": tenant}
	{c.name | some c in cs} == {"setup", "app"}
}

test_malformed_names_and_images_still_yield_messages if {
	obj := deployment({"containers": [{"name": 7, "image": ["app"], "securityContext": {"privileged": true}}]})
	messages("pod-security/no-privileged", obj, {}) == {"container 7 runs privileged"}
	messages("images/pinned-image", obj, {}) == {"container 7 uses image (invalid) without a tag or digest"}
}

test_without_tenant_input_every_namespaced_object_is_denied if {
	fs := berth.violations with input as {"object": good_deployment}
	ids(fs) == {"tenancy/namespace-in-tenant"}
}
