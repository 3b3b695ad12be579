# Pod security: the Pod Security Standards, for every workload kind that embeds a pod template
# and for its init, regular and ephemeral containers. The checks follow Pod Security Admission
# of Kubernetes 1.37 ("latest" on the version Berth is tested against) control by control, so
# that a pod the API server's PSA admits at a level is not denied here at that level, and a pod
# it refuses is denied:
#
# - baseline level (deny under every profile): what the baseline standard forbids;
# - restricted level (warn under "baseline", deny under "restricted"): what only the restricted
#   standard adds.
#
# Both read the pod as the API server's PSA sees it after defaulting (a volume with no source is
# an emptyDir). They differ from PSA only on pods API validation refuses anyway: under the
# restricted profile PSA exempts Windows pods from every capabilities check, while here a
# Windows pod adding capabilities beyond the baseline set is still denied.
package berth

# --- baseline --------------------------------------------------------------------------------

findings contains finding("pod-security", "no-privileged", level_severity("baseline"), msg) if {
	some e in pod_containers
	value_at(object_at(e.container, "securityContext"), "privileged", false) == true
	msg := concat("", [e.label, " runs privileged"])
}

findings contains finding("pod-security", "no-host-path", level_severity("baseline"), msg) if {
	spec := pod_spec(input.object)
	some volume in array_at(spec, "volumes")
	value_at(volume, "hostPath", null) != null
	path := str(value_at(object_at(volume, "hostPath"), "path", ""))
	msg := concat("", ["volume ", str(value_at(volume, "name", "(unnamed)")), " mounts the host path ", path])
}

host_namespaces := {"hostNetwork": "network", "hostPID": "process", "hostIPC": "IPC"}

findings contains finding("pod-security", "no-host-namespaces", level_severity("baseline"), msg) if {
	spec := pod_spec(input.object)
	some field, namespace in host_namespaces
	value_at(spec, field, false) == true
	msg := concat("", ["pod shares the host's ", namespace, " namespace (", field, ": true)"])
}

findings contains finding("pod-security", "no-host-ports", level_severity("baseline"), msg) if {
	some e in pod_containers
	some port in array_at(e.container, "ports")
	host_port := value_at(port, "hostPort", 0)
	host_port != 0
	msg := concat("", [e.label, " binds the host port ", str(host_port)])
}

# The capabilities the baseline standard lets a container add (the container runtimes' default
# set); anything else, NET_RAW and SYS_ADMIN for instance, is refused.
baseline_capabilities := {
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

added_capabilities(container) := array_at(object_at(object_at(container, "securityContext"), "capabilities"), "add")

findings contains finding("pod-security", "no-added-capabilities", level_severity("baseline"), msg) if {
	some e in pod_containers
	extra := [str(cap) | some cap in added_capabilities(e.container); not cap in baseline_capabilities]
	count(extra) > 0
	msg := concat("", [e.label, " adds the capabilities ", concat(", ", extra), ", beyond the default set the baseline standard allows"])
}

allowed_profile_types := {"RuntimeDefault", "Localhost"}

# An explicit seccomp profile must be RuntimeDefault or Localhost (Unconfined turns seccomp off).
findings contains finding("pod-security", "no-unconfined-seccomp", level_severity("baseline"), msg) if {
	some holder in security_contexts
	value_at(holder.context, "seccompProfile", null) != null
	type := value_at(object_at(holder.context, "seccompProfile"), "type", "")
	not type in allowed_profile_types
	msg := concat("", [holder.label, " sets securityContext.seccompProfile.type to ", str(type), " (only RuntimeDefault or Localhost)"])
}

findings contains finding("pod-security", "no-unconfined-apparmor", level_severity("baseline"), msg) if {
	some holder in security_contexts
	value_at(holder.context, "appArmorProfile", null) != null
	type := value_at(object_at(holder.context, "appArmorProfile"), "type", "")
	not type in allowed_profile_types
	msg := concat("", [holder.label, " sets securityContext.appArmorProfile.type to ", str(type), " (only RuntimeDefault or Localhost)"])
}

# The deprecated annotation form, on the pod (template) metadata.
findings contains finding("pod-security", "no-unconfined-apparmor", level_severity("baseline"), msg) if {
	some key, value in object_at(pod_metadata(input.object), "annotations")
	startswith(key, "container.apparmor.security.beta.kubernetes.io/")
	not allowed_apparmor_annotation(value)
	msg := concat("", ["pod annotation ", key, " sets the AppArmor profile ", str(value), " (only runtime/default or localhost/<profile>)"])
}

allowed_apparmor_annotation("")

allowed_apparmor_annotation("runtime/default")

allowed_apparmor_annotation(value) if {
	is_string(value)
	startswith(value, "localhost/")
}

allowed_selinux_types := {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

findings contains finding("pod-security", "no-custom-selinux", level_severity("baseline"), msg) if {
	some holder in security_contexts
	type := value_at(object_at(holder.context, "seLinuxOptions"), "type", "")
	not type in allowed_selinux_types
	msg := concat("", [holder.label, " sets securityContext.seLinuxOptions.type to ", str(type), " (only container_t, container_init_t, container_kvm_t or container_engine_t)"])
}

findings contains finding("pod-security", "no-custom-selinux", level_severity("baseline"), msg) if {
	some holder in security_contexts
	some field in ["user", "role"]
	value_at(object_at(holder.context, "seLinuxOptions"), field, "") != ""
	msg := concat("", [holder.label, " sets securityContext.seLinuxOptions.", field, ", which may not be set"])
}

proc_mount(container) := value_at(object_at(container, "securityContext"), "procMount", "Default")

# Unmasked /proc is refused unless the pod has its own user namespace; see
# user-namespace-proc-mount for the restricted level.
findings contains finding("pod-security", "default-proc-mount", level_severity("baseline"), msg) if {
	not in_user_namespace
	some e in pod_containers
	proc_mount(e.container) != "Default"
	msg := concat("", [e.label, " sets securityContext.procMount to ", str(proc_mount(e.container)), " (only Default, unless the pod has its own user namespace, hostUsers: false)"])
}

# Namespaced sysctls that are isolated between pods (PSA 1.37's safe set).
safe_sysctls := {
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ping_group_range",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_notsent_lowat",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_slow_start_after_idle",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.tcp_wmem",
}

findings contains finding("pod-security", "no-unsafe-sysctls", level_severity("baseline"), msg) if {
	spec := pod_spec(input.object)
	some sysctl in array_at(object_at(spec, "securityContext"), "sysctls")
	name := value_at(sysctl, "name", "")
	not name in safe_sysctls
	msg := concat("", ["pod sets the sysctl ", str(name), ", which is not in the safe set"])
}

findings contains finding("pod-security", "no-host-process", level_severity("baseline"), msg) if {
	some holder in security_contexts
	value_at(object_at(holder.context, "windowsOptions"), "hostProcess", false) == true
	msg := concat("", [holder.label, " sets securityContext.windowsOptions.hostProcess: true"])
}

# Probes and lifecycle handlers reach the pod itself: a host would let the kubelet, on the node's
# network, make requests on the tenant's behalf.
container_handlers(c) := [{"where": concat(".", [owner, kind]), "handler": h} |
	some owner in ["livenessProbe", "readinessProbe", "startupProbe", "lifecycle.postStart", "lifecycle.preStop"]
	some kind in ["httpGet", "tcpSocket"]
	h := object_at(nested_object(c, split(owner, ".")), kind)
]

nested_object(o, path) := object_at(o, path[0]) if {
	count(path) == 1
} else := object_at(object_at(o, path[0]), path[1])

findings contains finding("pod-security", "no-probe-host", level_severity("baseline"), msg) if {
	some e in pod_containers
	some h in container_handlers(e.container)
	host := value_at(h.handler, "host", "")
	host != ""
	msg := concat("", [e.label, " sets ", h.where, ".host to ", str(host), " (probes and lifecycle handlers may only reach the pod)"])
}

# --- restricted ------------------------------------------------------------------------------

findings contains finding("pod-security", "no-privilege-escalation", level_severity("restricted"), msg) if {
	not windows_pod
	some e in pod_containers
	value_at(object_at(e.container, "securityContext"), "allowPrivilegeEscalation", null) != false
	msg := concat("", [e.label, " does not set securityContext.allowPrivilegeEscalation: false"])
}

# runAsNonRoot must be true for every container: its own setting, or the pod's if it has none;
# the pod may not set false either. A pod in its own user namespace is exempt.
findings contains finding("pod-security", "run-as-non-root", level_severity("restricted"), msg) if {
	not in_user_namespace
	spec := pod_spec(input.object)
	pod_default := value_at(object_at(spec, "securityContext"), "runAsNonRoot", null)
	some e in pod_containers
	value_at(object_at(e.container, "securityContext"), "runAsNonRoot", pod_default) != true
	msg := concat("", [e.label, " may run as root: set securityContext.runAsNonRoot: true on the pod or the container"])
}

findings contains finding("pod-security", "run-as-non-root", level_severity("restricted"), msg) if {
	not in_user_namespace
	spec := pod_spec(input.object)
	value_at(object_at(spec, "securityContext"), "runAsNonRoot", null) == false
	msg := "pod sets securityContext.runAsNonRoot: false"
}

findings contains finding("pod-security", "run-as-non-root", level_severity("restricted"), msg) if {
	not in_user_namespace
	spec := pod_spec(input.object)
	value_at(object_at(spec, "securityContext"), "runAsUser", null) == 0
	msg := "pod sets securityContext.runAsUser: 0 (root)"
}

findings contains finding("pod-security", "run-as-non-root", level_severity("restricted"), msg) if {
	not in_user_namespace
	some e in pod_containers
	value_at(object_at(e.container, "securityContext"), "runAsUser", null) == 0
	msg := concat("", [e.label, " sets securityContext.runAsUser: 0 (root)"])
}

# Every container has a seccomp profile, its own or the pod's. (A profile of another type is
# no-unconfined-seccomp's finding.)
findings contains finding("pod-security", "require-seccomp", level_severity("restricted"), msg) if {
	not windows_pod
	spec := pod_spec(input.object)
	not value_at(object_at(object_at(spec, "securityContext"), "seccompProfile"), "type", "") in allowed_profile_types
	some e in pod_containers
	value_at(object_at(e.container, "securityContext"), "seccompProfile", null) == null
	msg := concat("", [e.label, " has no seccomp profile: set securityContext.seccompProfile.type: RuntimeDefault on the pod or the container"])
}

# Capabilities a container may add under the restricted profile.
addable_capabilities := {"NET_BIND_SERVICE"}

findings contains finding("pod-security", "restricted-capabilities", level_severity("restricted"), msg) if {
	not windows_pod
	some e in pod_containers
	dropped := array_at(object_at(object_at(e.container, "securityContext"), "capabilities"), "drop")
	not "ALL" in dropped
	msg := concat("", [e.label, " does not drop all capabilities: set securityContext.capabilities.drop: [ALL]"])
}

# Capabilities beyond the baseline set are no-added-capabilities' findings.
findings contains finding("pod-security", "restricted-capabilities", level_severity("restricted"), msg) if {
	not windows_pod
	some e in pod_containers
	extra := [str(cap) |
		some cap in added_capabilities(e.container)
		cap in baseline_capabilities
		not cap in addable_capabilities
	]
	count(extra) > 0
	msg := concat("", [e.label, " adds the capabilities ", concat(", ", extra), " (the restricted standard allows only NET_BIND_SERVICE)"])
}

# Volume sources the restricted standard allows; a volume with none of them names its type by
# its other key. (hostPath is no-host-path's finding.) A volume with no source at all is an
# emptyDir once the API server has defaulted it.
restricted_volume_sources := {
	"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
	"persistentVolumeClaim", "projected", "secret",
}

findings contains finding("pod-security", "restricted-volume-types", level_severity("restricted"), msg) if {
	spec := pod_spec(input.object)
	some volume in array_at(spec, "volumes")
	is_object(volume)
	not has_restricted_volume_source(volume)
	some source, value in volume
	value != null
	not source in {"name", "hostPath"}
	msg := concat("", [
		"volume ", str(value_at(volume, "name", "(unnamed)")), " is of type ", source,
		" (the restricted standard allows configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret)",
	])
}

has_restricted_volume_source(volume) if {
	some source in restricted_volume_sources
	value_at(volume, source, null) != null
}

# Even in its own user namespace, a pod keeps the default /proc masks under the restricted
# profile (outside one, default-proc-mount refuses it under every profile).
findings contains finding("pod-security", "user-namespace-proc-mount", level_severity("restricted"), msg) if {
	in_user_namespace
	some e in pod_containers
	proc_mount(e.container) != "Default"
	msg := concat("", [e.label, " sets securityContext.procMount to ", str(proc_mount(e.container)), " (the restricted standard allows only Default, even with hostUsers: false)"])
}
