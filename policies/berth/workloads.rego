# Helpers shared by the rules: the pod spec a workload embeds, its containers, and accessors
# that tolerate malformed manifests (a missing field, a null, a string where an object belongs)
# so that a hostile object yields a finding or nothing, never an evaluation error, and opa-wasm
# and `opa eval` agree on it.
package berth

# Kinds that embed a pod template. A platform can add its own kinds (e.g. a rollout CRD) with
# `workload_kinds contains "Rollout"` and a matching `pod_spec` definition in its own .rego file.
workload_kinds contains kind if some kind in [
	"Pod",
	"PodTemplate",
	"Deployment",
	"StatefulSet",
	"DaemonSet",
	"ReplicaSet",
	"ReplicationController",
	"Job",
	"CronJob",
]

# The pod spec a workload embeds.
pod_spec(obj) := obj.spec if obj.kind == "Pod"

pod_spec(obj) := obj.template.spec if obj.kind == "PodTemplate"

pod_spec(obj) := obj.spec.template.spec if {
	obj.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}
}

pod_spec(obj) := obj.spec.jobTemplate.spec.template.spec if obj.kind == "CronJob"

# The metadata of the pod a workload makes (its annotations carry AppArmor profiles).
pod_metadata(obj) := object_at(obj, "metadata") if obj.kind == "Pod"

pod_metadata(obj) := object_at(obj.template, "metadata") if obj.kind == "PodTemplate"

pod_metadata(obj) := object_at(obj.spec.template, "metadata") if {
	obj.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}
}

pod_metadata(obj) := object_at(obj.spec.jobTemplate.spec.template, "metadata") if obj.kind == "CronJob"

# How messages name a container of each list.
container_lists := {
	"initContainers": "init container",
	"containers": "container",
	"ephemeralContainers": "ephemeral container",
}

# Every container of the object's pod template: the container, the list it is in, and how
# messages name it ("container app", "init container setup").
pod_containers contains entry if {
	spec := pod_spec(input.object)
	some list, noun in container_lists
	some c in array_at(spec, list)
	entry := {
		"container": c,
		"list": list,
		"label": concat(" ", [noun, str(value_at(c, "name", "(unnamed)"))]),
	}
}

# The containers themselves, for rules that need no message.
containers contains entry.container if some entry in pod_containers

# The pod's securityContext and every container's, with how messages name their owner ("pod",
# "container app"), for the settings both levels may carry.
security_contexts contains {"label": "pod", "context": object_at(spec, "securityContext")} if {
	spec := pod_spec(input.object)
}

security_contexts contains {"label": e.label, "context": object_at(e.container, "securityContext")} if {
	some e in pod_containers
}

# A pod in its own user namespace (hostUsers: false), where root in the container is not root
# on the node; Pod Security Admission relaxes runAsNonRoot, runAsUser and (under baseline)
# procMount for it.
in_user_namespace if value_at(pod_spec(input.object), "hostUsers", null) == false

# A Windows pod (spec.os.name: windows), which the restricted profile exempts from the Linux-only
# settings (allowPrivilegeEscalation, capabilities, seccomp).
windows_pod if value_at(object_at(pod_spec(input.object), "os"), "name", "") == "windows"

# o[k] if o is an object and o[k] is an object, else {}.
object_at(o, k) := o[k] if {
	is_object(o)
	is_object(o[k])
} else := {}

# o[k] if o is an object and o[k] is an array, else [].
array_at(o, k) := o[k] if {
	is_object(o)
	is_array(o[k])
} else := []

# o[k] if o is an object and o[k] is set and not null, else default.
value_at(o, k, default_value) := o[k] if {
	is_object(o)
	o[k] != null
} else := default_value

# A value as message text: strings as they are, integers in decimal, anything else a marker.
str(x) := x if {
	is_string(x)
} else := format_int(x, 10) if {
	is_number(x)
} else := "(invalid)"

# The tenant, from the input the agent (or the admission webhook) builds: its name, its
# namespaces, the Ingress hosts the platform assigned to it (exact names, or "*.<domain>"
# granting every name one label below <domain>) and the other namespaces the platform lets send
# traffic into it. A missing list is empty.
tenant_name := input.tenant.name if is_string(input.tenant.name)

tenant_namespaces := input.tenant.namespaces if {
	is_array(input.tenant.namespaces)
} else := []

tenant_hosts := [lower(h) | some h in input.tenant.hosts; is_string(h)] if {
	is_array(input.tenant.hosts)
} else := []

tenant_allow_from_namespaces := input.tenant.allowFromNamespaces if {
	is_array(input.tenant.allowFromNamespaces)
} else := []

# The object's metadata fields, tolerating their absence.
object_namespace := value_at(object_at(input.object, "metadata"), "namespace", "")

object_labels := object_at(object_at(input.object, "metadata"), "labels")
