# Parameters the platform sets per tenant: `data.params` (data is `{}` when it sets none, so
# every parameter has a default). A parameter of the wrong type fails closed: it is ignored and
# every object gets a `params/valid-parameters` deny, so a typo in a list cannot silently
# relax a rule. Unknown parameters are reported as warnings.
package berth

# Each parameter and its type. A platform adding rules with their own parameters declares them
# the same way in its own .rego file: `parameter_types.my_param := "string-list"`.
parameter_types["allowed_registries"] := "string-list"

parameter_types["required_labels"] := "string-list"

parameter_types["allowed_service_types"] := "string-list"

parameter_types["allow_powerful_rolebindings"] := "boolean"

parameter_types["disabled_rules"] := "string-list"

parameter_types["warn_rules"] := "string-list"

parameter_types["profile"] := "profile"

type_descriptions := {
	"boolean": "true or false",
	"string-list": "a list of strings",
	"profile": "\"baseline\" or \"restricted\"",
}

default params := {}

params := data.params if is_object(data.params)

valid_parameter("boolean", v) if is_boolean(v)

valid_parameter("profile", v) if v in profile_names

valid_parameter("string-list", v) if {
	is_array(v)
	every x in v {
		is_string(x)
	}
}

# A list parameter, [] if absent or invalid.
param_list(name) := v if {
	v := params[name]
	valid_parameter("string-list", v)
} else := []

param_allowed_registries := param_list("allowed_registries")

param_required_labels := param_list("required_labels")

param_allowed_service_types := param_list("allowed_service_types")

param_disabled_rules := param_list("disabled_rules")

param_warn_rules := param_list("warn_rules")

# Only a literal `true` allows.
param_allow_powerful_rolebindings if params.allow_powerful_rolebindings == true

findings contains finding("params", "valid-parameters", level_severity("baseline"), "data.params must be an object") if {
	value := data.params
	not is_object(value)
}

findings contains finding("params", "valid-parameters", level_severity("baseline"), msg) if {
	some name, type in parameter_types
	value := params[name]
	value != null
	not valid_parameter(type, value)
	msg := concat("", ["data.params.", name, " must be ", type_descriptions[type], ": the policy gate stays closed until it is fixed"])
}

findings contains finding("params", "unknown-parameter", level_severity("advisory"), msg) if {
	some name, _ in params
	not parameter_types[name]
	msg := concat("", ["data.params.", name, " is not a parameter of the policy library (misspelt?); it has no effect"])
}
