package berth_test

# params/valid-parameters

test_valid_parameters_passes_well_typed_parameters if {
	params := {
		"allowed_registries": ["registry.example"],
		"required_labels": [],
		"allowed_service_types": ["NodePort"],
		"allow_powerful_rolebindings": false,
		"disabled_rules": [],
		"warn_rules": [],
		"profile": "restricted",
	}
	not fires("params/valid-parameters", good_deployment, params)
	not fires("params/unknown-parameter", good_deployment, params)
	not fires("params/valid-parameters", good_deployment, {})
}

test_valid_parameters_denies_a_wrong_type_and_fails_closed if {
	params := {"allowed_registries": "registry.example"}
	messages("params/valid-parameters", good_deployment, params) == {"data.params.allowed_registries must be a list of strings: the policy gate stays closed until it is fixed"}
	fires("params/valid-parameters", good_deployment, {"allow_powerful_rolebindings": "yes"})
	fires("params/valid-parameters", good_deployment, {"required_labels": ["team", 1]})
}

test_valid_parameters_denies_an_unknown_profile_and_applies_the_stricter_one if {
	obj := deployment({"containers": [json.remove(good_container("app"), ["resources"])]})
	every profile in ["Restricted", "privileged", "", 1, true, ["baseline"]] {
		fs := findings(obj, {"profile": profile})
		"params/valid-parameters" in denied(fs)
		"resources/requests-and-limits" in denied(fs)
	}
	messages("params/valid-parameters", good_deployment, {"profile": "strict"}) == {"data.params.profile must be \"baseline\" or \"restricted\": the policy gate stays closed until it is fixed"}

	# null is absent: the default profile.
	fs := findings(obj, {"profile": null})
	not "params/valid-parameters" in ids(fs)
	severities("resources/requests-and-limits", obj, {"profile": null}) == {"warn"}
}

test_valid_parameters_denies_params_that_are_not_an_object if {
	messages("params/valid-parameters", good_deployment, ["allowed_registries"]) == {"data.params must be an object"}
}

test_an_invalid_disabled_rules_disables_nothing if {
	obj := deployment_with_container({"image": "app:latest"})
	fs := findings(obj, {"disabled_rules": "images/pinned-image"})
	"images/pinned-image" in ids(fs)
	"params/valid-parameters" in ids(fs)
}

# params/unknown-parameter

test_unknown_parameter_warns_on_a_misspelt_name if {
	fs := findings(good_deployment, {"allowed_registry": ["registry.example"]})
	some f in fs
	f.rule == "unknown-parameter"
	f.severity == "warn"
	f.message == "data.params.allowed_registry is not a parameter of the policy library (misspelt?); it has no effect"
}
