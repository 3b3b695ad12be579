package berth_test

# resources/requests-and-limits

test_requests_and_limits_passes_a_complete_container if {
	not fires("resources/requests-and-limits", good_deployment, {})
}

test_requests_and_limits_names_what_is_missing if {
	obj := deployment({"containers": [json.remove(good_container("app"), ["resources/requests/memory", "resources/limits/cpu"])]})
	messages("resources/requests-and-limits", obj, {}) == {"container app does not set resources.requests.memory, resources.limits.cpu"}
}

test_requests_and_limits_one_finding_per_container if {
	bare := json.remove(good_container("setup"), ["resources"])
	obj := deployment({"initContainers": [bare], "containers": [json.remove(good_container("app"), ["resources"])]})
	messages("resources/requests-and-limits", obj, {}) == {
		"init container setup does not set resources.requests.cpu, resources.requests.memory, resources.limits.cpu, resources.limits.memory",
		"container app does not set resources.requests.cpu, resources.requests.memory, resources.limits.cpu, resources.limits.memory",
	}
}

test_requests_and_limits_skips_ephemeral_containers if {
	debug := json.remove(good_container("debug"), ["resources"])
	not fires("resources/requests-and-limits", deployment_with_pod({"ephemeralContainers": [debug]}), {})
}

test_requests_and_limits_is_a_restricted_rule if {
	obj := deployment({"containers": [json.remove(good_container("app"), ["resources"])]})
	severities("resources/requests-and-limits", obj, {}) == {"warn"}
	severities("resources/requests-and-limits", obj, restricted({})) == {"deny"}
}
