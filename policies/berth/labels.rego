# Labels: the labels the platform requires on every object, and the recommended name label on
# workloads.
package berth

findings contains finding("labels", "required-labels", level_severity("restricted"), msg) if {
	missing := [str(label) | some label in param_required_labels; value_at(object_labels, label, null) == null]
	count(missing) > 0
	msg := concat("", ["object lacks required labels: ", concat(", ", missing)])
}

findings contains finding("labels", "recommended-name-label", level_severity("advisory"), msg) if {
	input.object.kind in workload_kinds
	value_at(object_labels, "app.kubernetes.io/name", null) == null
	msg := "workload has no app.kubernetes.io/name label"
}
