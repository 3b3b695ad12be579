# Pod security, in the spirit of the Pod Security Standards' "restricted" profile, for every
# workload kind that embeds a pod template, and for its init, regular and ephemeral containers.
package berth

findings contains finding("pod-security", "no-privileged", "deny", msg) if {
	some e in pod_containers
	value_at(object_at(e.container, "securityContext"), "privileged", false) == true
	msg := concat("", [e.label, " runs privileged"])
}

findings contains finding("pod-security", "no-host-path", "deny", msg) if {
	spec := pod_spec(input.object)
	some volume in array_at(spec, "volumes")
	value_at(volume, "hostPath", null) != null
	path := str(value_at(object_at(volume, "hostPath"), "path", ""))
	msg := concat("", ["volume ", str(value_at(volume, "name", "(unnamed)")), " mounts the host path ", path])
}

host_namespaces := {"hostNetwork": "network", "hostPID": "process", "hostIPC": "IPC"}

findings contains finding("pod-security", "no-host-namespaces", "deny", msg) if {
	spec := pod_spec(input.object)
	some field, namespace in host_namespaces
	value_at(spec, field, false) == true
	msg := concat("", ["pod shares the host's ", namespace, " namespace (", field, ": true)"])
}

findings contains finding("pod-security", "no-privilege-escalation", "deny", msg) if {
	some e in pod_containers
	value_at(object_at(e.container, "securityContext"), "allowPrivilegeEscalation", null) != false
	msg := concat("", [e.label, " does not set securityContext.allowPrivilegeEscalation: false"])
}

# runAsNonRoot must be true for every container: its own setting, or the pod's if it has none.
findings contains finding("pod-security", "run-as-non-root", "deny", msg) if {
	spec := pod_spec(input.object)
	pod_default := value_at(object_at(spec, "securityContext"), "runAsNonRoot", null)
	some e in pod_containers
	value_at(object_at(e.container, "securityContext"), "runAsNonRoot", pod_default) != true
	msg := concat("", [e.label, " may run as root: set securityContext.runAsNonRoot: true on the pod or the container"])
}

findings contains finding("pod-security", "run-as-non-root", "deny", msg) if {
	spec := pod_spec(input.object)
	value_at(object_at(spec, "securityContext"), "runAsUser", null) == 0
	msg := "pod sets securityContext.runAsUser: 0 (root)"
}

findings contains finding("pod-security", "run-as-non-root", "deny", msg) if {
	some e in pod_containers
	value_at(object_at(e.container, "securityContext"), "runAsUser", null) == 0
	msg := concat("", [e.label, " sets securityContext.runAsUser: 0 (root)"])
}

# Capabilities a container may add.
addable_capabilities := {"NET_BIND_SERVICE"}

findings contains finding("pod-security", "no-added-capabilities", "deny", msg) if {
	some e in pod_containers
	added := array_at(object_at(object_at(e.container, "securityContext"), "capabilities"), "add")
	extra := [str(cap) | some cap in added; not cap in addable_capabilities]
	count(extra) > 0
	msg := concat("", [e.label, " adds the capabilities ", concat(", ", extra), " (only NET_BIND_SERVICE may be added)"])
}
