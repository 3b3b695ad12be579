# The entrypoint the agent evaluates for every object of a revision: `violations`, a set of
# findings {policy, rule, severity, message}. A "deny" finding refuses the whole revision.
# Messages use concat, not sprintf: opa-wasm's sprintf supports neither %q nor %v.
package berth

# Pod specs embedded in workload kinds.
pod_spec(obj) := obj.spec if obj.kind == "Pod"

pod_spec(obj) := obj.spec.template.spec if {
	obj.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}
}

pod_spec(obj) := obj.spec.jobTemplate.spec.template.spec if obj.kind == "CronJob"

containers contains container if {
	spec := pod_spec(input.object)
	some field in ["initContainers", "containers", "ephemeralContainers"]
	some container in spec[field]
}

violations contains finding("pod-security", "no-privileged", "deny", msg) if {
	some c in containers
	c.securityContext.privileged == true
	msg := concat("", ["container ", c.name, " runs privileged"])
}

violations contains finding("images", "pinned-image", "deny", msg) if {
	some c in containers
	not pinned(c.image)
	msg := concat("", ["container ", c.name, " uses image ", c.image, " without a version tag or digest (or with :latest)"])
}

violations contains finding("labels", "app-name-label", "warn", msg) if {
	pod_spec(input.object)
	not input.object.metadata.labels["app.kubernetes.io/name"]
	msg := "workload has no app.kubernetes.io/name label"
}

finding(policy, rule, severity, message) := {
	"policy": policy,
	"rule": rule,
	"severity": severity,
	"message": message,
}

pinned(image) if contains(image, "@sha256:")

pinned(image) if {
	not contains(image, "@")
	tag := image_tag(image)
	tag != "latest"
}

# The tag is what follows the last ":" after the last "/" (a registry port is not a tag).
image_tag(image) := tag if {
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
}
