package berth_test

labelled_config_map(labels) := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team-a", "labels": labels}}

# labels/required-labels

test_required_labels_passes_by_default_and_when_present if {
	not fires("labels/required-labels", labelled_config_map({}), {})
	params := {"required_labels": ["team", "cost-center"]}
	not fires("labels/required-labels", labelled_config_map({"team": "a", "cost-center": ""}), params)
}

test_required_labels_denies_missing_labels if {
	params := {"required_labels": ["team", "cost-center", "tier"]}
	messages("labels/required-labels", labelled_config_map({"team": "a"}), params) == {"object lacks required labels: cost-center, tier"}
	fires("labels/required-labels", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team-a"}}, params)
}

# labels/recommended-name-label

test_recommended_name_label_passes_labelled_workloads_and_other_kinds if {
	not fires("labels/recommended-name-label", good_deployment, {})
	not fires("labels/recommended-name-label", labelled_config_map({}), {})
}

test_recommended_name_label_warns_on_unlabelled_workloads if {
	pod := {"kind": "Pod", "metadata": {"name": "p", "namespace": "team-a"}, "spec": good_pod_spec}
	some f in findings(pod, {})
	f.rule == "recommended-name-label"
	f.severity == "warn"
	f.message == "workload has no app.kubernetes.io/name label"
}

test_required_labels_is_a_restricted_rule if {
	params := {"required_labels": ["team"]}
	severities("labels/required-labels", labelled_config_map({}), params) == {"warn"}
	severities("labels/required-labels", labelled_config_map({}), restricted(params)) == {"deny"}
	severities("labels/recommended-name-label", json.remove(good_deployment, ["metadata/labels"]), restricted({})) == {"warn"}
}
