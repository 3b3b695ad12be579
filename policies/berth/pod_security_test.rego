package berth_test

# Every workload kind is checked, wherever it keeps its pod template.
workloads(spec) := [
	{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team-a"}, "spec": spec},
	{"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t", "namespace": "team-a"}, "template": {"spec": spec}},
	{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "team-a"}, "spec": {"template": {"spec": spec}}},
	{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "team-a"}, "spec": {"template": {"spec": spec}}},
	{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds", "namespace": "team-a"}, "spec": {"template": {"spec": spec}}},
	{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": "team-a"}, "spec": {"template": {"spec": spec}}},
	{"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc", "namespace": "team-a"}, "spec": {"template": {"spec": spec}}},
	{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "team-a"}, "spec": {"template": {"spec": spec}}},
	{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "team-a"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}},
]

privileged := object.union(good_container("app"), {"securityContext": {"privileged": true}})

test_every_workload_kind_is_checked if {
	every obj in workloads({"containers": [privileged]}) {
		fires("pod-security/no-privileged", obj, {})
	}
	every obj in workloads(good_pod_spec) {
		not fires("pod-security/no-privileged", obj, {})
	}
}

test_init_and_ephemeral_containers_are_checked if {
	init := object.union(good_container("setup"), {"securityContext": {"privileged": true}})
	messages("pod-security/no-privileged", deployment_with_pod({"initContainers": [init]}), {}) == {"init container setup runs privileged"}
	debug := object.union(good_container("debug"), {"securityContext": {"privileged": true}})
	messages("pod-security/no-privileged", deployment_with_pod({"ephemeralContainers": [debug]}), {}) == {"ephemeral container debug runs privileged"}
}

# pod-security/no-privileged

test_no_privileged_passes_unprivileged_containers if {
	not fires("pod-security/no-privileged", good_deployment, {})
	not fires("pod-security/no-privileged", deployment_with_container({"securityContext": {"privileged": false}}), {})
}

test_no_privileged_denies_a_privileged_container if {
	messages("pod-security/no-privileged", deployment_with_container({"securityContext": {"privileged": true}}), {}) == {"container app runs privileged"}
}

# pod-security/no-host-path

test_no_host_path_passes_other_volumes if {
	not fires("pod-security/no-host-path", deployment_with_pod({"volumes": [{"name": "data", "emptyDir": {}}]}), {})
}

test_no_host_path_denies_host_path_volumes if {
	obj := deployment_with_pod({"volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]})
	messages("pod-security/no-host-path", obj, {}) == {"volume docker mounts the host path /var/run/docker.sock"}
}

# pod-security/no-host-namespaces

test_no_host_namespaces_passes_false_settings if {
	not fires("pod-security/no-host-namespaces", deployment_with_pod({"hostNetwork": false, "hostPID": false, "hostIPC": false}), {})
}

test_no_host_namespaces_denies_each_host_namespace if {
	obj := deployment_with_pod({"hostNetwork": true, "hostPID": true, "hostIPC": true})
	messages("pod-security/no-host-namespaces", obj, {}) == {
		"pod shares the host's network namespace (hostNetwork: true)",
		"pod shares the host's process namespace (hostPID: true)",
		"pod shares the host's IPC namespace (hostIPC: true)",
	}
}

# pod-security/no-host-ports

test_no_host_ports_passes_container_ports_and_zero if {
	not fires("pod-security/no-host-ports", deployment_with_container({"ports": [{"containerPort": 8080}, {"containerPort": 9090, "hostPort": 0}]}), {})
}

test_no_host_ports_denies_host_ports_in_every_container_list if {
	obj := deployment_with_pod({
		"initContainers": [object.union(good_container("setup"), {"ports": [{"containerPort": 53, "hostPort": 53}]})],
		"containers": [object.union(good_container("app"), {"ports": [{"containerPort": 8080}, {"containerPort": 80, "hostPort": 8080}]})],
	})
	messages("pod-security/no-host-ports", obj, {}) == {"init container setup binds the host port 53", "container app binds the host port 8080"}
}

# pod-security/no-unconfined-seccomp

test_no_unconfined_seccomp_passes_runtime_default_localhost_and_unset if {
	not fires("pod-security/no-unconfined-seccomp", good_deployment, {})
	localhost := deployment_with_pod({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}})
	not fires("pod-security/no-unconfined-seccomp", localhost, {})
	unset := deployment({"containers": [json.remove(good_container("app"), ["securityContext/seccompProfile"])]})
	not fires("pod-security/no-unconfined-seccomp", unset, {})
}

test_no_unconfined_seccomp_denies_unconfined_on_pod_and_container if {
	obj := deployment({
		"securityContext": {"seccompProfile": {"type": "Unconfined"}},
		"containers": [object.union(good_container("app"), {"securityContext": {"seccompProfile": {"type": "Unconfined"}}})],
	})
	messages("pod-security/no-unconfined-seccomp", obj, {}) == {
		"pod sets securityContext.seccompProfile.type to Unconfined (only RuntimeDefault or Localhost)",
		"container app sets securityContext.seccompProfile.type to Unconfined (only RuntimeDefault or Localhost)",
	}
	severities("pod-security/no-unconfined-seccomp", obj, {}) == {"deny"}
}

# pod-security/no-unconfined-apparmor

test_no_unconfined_apparmor_passes_allowed_profiles if {
	obj := deployment_with_pod({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}})
	not fires("pod-security/no-unconfined-apparmor", obj, {})
	annotated := object.union(good_deployment, {"spec": {"template": {"metadata": {"annotations": {
		"container.apparmor.security.beta.kubernetes.io/app": "localhost/k8s-app",
		"container.apparmor.security.beta.kubernetes.io/side": "runtime/default",
	}}}}})
	not fires("pod-security/no-unconfined-apparmor", annotated, {})
}

test_no_unconfined_apparmor_denies_unconfined_fields_and_annotations if {
	obj := deployment_with_container({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}})
	messages("pod-security/no-unconfined-apparmor", obj, {}) == {"container app sets securityContext.appArmorProfile.type to Unconfined (only RuntimeDefault or Localhost)"}
	pod := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team-a", "annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}, "spec": good_pod_spec}
	messages("pod-security/no-unconfined-apparmor", pod, {}) == {"pod annotation container.apparmor.security.beta.kubernetes.io/app sets the AppArmor profile unconfined (only runtime/default or localhost/<profile>)"}
}

# pod-security/no-custom-selinux

test_no_custom_selinux_passes_container_types if {
	every type in ["container_t", "container_init_t", "container_kvm_t", "container_engine_t", ""] {
		not fires("pod-security/no-custom-selinux", deployment_with_pod({"securityContext": {"seLinuxOptions": {"type": type, "level": "s0:c123,c456"}}}), {})
	}
}

test_no_custom_selinux_denies_other_types_users_and_roles if {
	obj := deployment({
		"securityContext": {"seLinuxOptions": {"type": "spc_t"}},
		"containers": [object.union(good_container("app"), {"securityContext": {"seLinuxOptions": {"user": "system_u", "role": "system_r"}}})],
	})
	messages("pod-security/no-custom-selinux", obj, {}) == {
		"pod sets securityContext.seLinuxOptions.type to spc_t (only container_t, container_init_t, container_kvm_t or container_engine_t)",
		"container app sets securityContext.seLinuxOptions.user, which may not be set",
		"container app sets securityContext.seLinuxOptions.role, which may not be set",
	}
}

# pod-security/default-proc-mount and pod-security/user-namespace-proc-mount

unmasked := deployment_with_container({"securityContext": {"procMount": "Unmasked"}})

unmasked_in_user_namespace := object.union(unmasked, {"spec": {"template": {"spec": {"hostUsers": false}}}})

test_default_proc_mount_passes_default_and_user_namespaces if {
	not fires("pod-security/default-proc-mount", deployment_with_container({"securityContext": {"procMount": "Default"}}), {})
	not fires("pod-security/default-proc-mount", unmasked_in_user_namespace, {})
	not fires("pod-security/user-namespace-proc-mount", unmasked, {})
}

test_default_proc_mount_denies_unmasked_proc if {
	messages("pod-security/default-proc-mount", unmasked, {}) == {"container app sets securityContext.procMount to Unmasked (only Default, unless the pod has its own user namespace, hostUsers: false)"}
	severities("pod-security/default-proc-mount", unmasked, {}) == {"deny"}
}

test_user_namespace_proc_mount_warns_under_baseline_and_denies_under_restricted if {
	severities("pod-security/user-namespace-proc-mount", unmasked_in_user_namespace, {}) == {"warn"}
	severities("pod-security/user-namespace-proc-mount", unmasked_in_user_namespace, restricted({})) == {"deny"}
}

# pod-security/no-unsafe-sysctls

test_no_unsafe_sysctls_passes_the_safe_set if {
	obj := deployment_with_pod({"securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}, {"name": "net.ipv4.tcp_keepalive_time", "value": "60"}]}})
	not fires("pod-security/no-unsafe-sysctls", obj, {})
}

test_no_unsafe_sysctls_denies_others if {
	obj := deployment_with_pod({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "65536"}, {"name": "net.core.somaxconn", "value": "1024"}]}})
	messages("pod-security/no-unsafe-sysctls", obj, {}) == {"pod sets the sysctl kernel.msgmax, which is not in the safe set", "pod sets the sysctl net.core.somaxconn, which is not in the safe set"}
}

# pod-security/no-host-process

test_no_host_process_passes_false if {
	not fires("pod-security/no-host-process", deployment_with_pod({"securityContext": {"windowsOptions": {"hostProcess": false, "runAsUserName": "x"}}}), {})
}

test_no_host_process_denies_pod_and_container_host_process if {
	obj := deployment({
		"securityContext": {"windowsOptions": {"hostProcess": true}},
		"ephemeralContainers": [object.union(good_container("debug"), {"securityContext": {"windowsOptions": {"hostProcess": true}}})],
		"containers": [good_container("app")],
	})
	messages("pod-security/no-host-process", obj, {}) == {"pod sets securityContext.windowsOptions.hostProcess: true", "ephemeral container debug sets securityContext.windowsOptions.hostProcess: true"}
}

# pod-security/no-probe-host

test_no_probe_host_passes_probes_of_the_pod if {
	obj := deployment_with_container({
		"livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
		"readinessProbe": {"tcpSocket": {"port": 8080, "host": ""}},
		"lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
	})
	not fires("pod-security/no-probe-host", obj, {})
}

test_no_probe_host_denies_hosts_in_probes_and_handlers if {
	obj := deployment_with_container({
		"startupProbe": {"tcpSocket": {"port": 443, "host": "kubernetes.default.svc"}},
		"lifecycle": {"postStart": {"httpGet": {"port": 80, "host": "169.254.169.254"}}},
	})
	messages("pod-security/no-probe-host", obj, {}) == {
		"container app sets startupProbe.tcpSocket.host to kubernetes.default.svc (probes and lifecycle handlers may only reach the pod)",
		"container app sets lifecycle.postStart.httpGet.host to 169.254.169.254 (probes and lifecycle handlers may only reach the pod)",
	}
}

# pod-security/no-privilege-escalation

test_no_privilege_escalation_passes_an_explicit_false if {
	not fires("pod-security/no-privilege-escalation", good_deployment, {})
}

test_no_privilege_escalation_flags_true_or_unset if {
	fires("pod-security/no-privilege-escalation", deployment_with_container({"securityContext": {"allowPrivilegeEscalation": true}}), {})
	unset := deployment({"containers": [json.remove(good_container("app"), ["securityContext/allowPrivilegeEscalation"])]})
	messages("pod-security/no-privilege-escalation", unset, {}) == {"container app does not set securityContext.allowPrivilegeEscalation: false"}
	severities("pod-security/no-privilege-escalation", unset, {}) == {"warn"}
	severities("pod-security/no-privilege-escalation", unset, restricted({})) == {"deny"}
}

# pod-security/run-as-non-root

test_run_as_non_root_passes_container_or_pod_level if {
	not fires("pod-security/run-as-non-root", good_deployment, {})
	pod_level := deployment({
		"securityContext": {"runAsNonRoot": true, "runAsUser": 1000},
		"containers": [json.remove(good_container("app"), ["securityContext/runAsNonRoot"])],
	})
	not fires("pod-security/run-as-non-root", pod_level, {})
}

test_run_as_non_root_denies_unset_or_overridden if {
	unset := deployment({"containers": [json.remove(good_container("app"), ["securityContext/runAsNonRoot"])]})
	messages("pod-security/run-as-non-root", unset, {}) == {"container app may run as root: set securityContext.runAsNonRoot: true on the pod or the container"}
	overridden := deployment({
		"securityContext": {"runAsNonRoot": true},
		"containers": [object.union(good_container("app"), {"securityContext": {"runAsNonRoot": false}})],
	})
	fires("pod-security/run-as-non-root", overridden, {})
}

test_run_as_non_root_flags_a_pod_level_false if {
	obj := deployment({"securityContext": {"runAsNonRoot": false}, "containers": [good_container("app")]})
	messages("pod-security/run-as-non-root", obj, restricted({})) == {"pod sets securityContext.runAsNonRoot: false"}
	severities("pod-security/run-as-non-root", obj, restricted({})) == {"deny"}
}

# A pod in its own user namespace may run as root in it (PSA relaxes the same checks).
test_run_as_non_root_passes_pods_in_a_user_namespace if {
	obj := deployment({
		"hostUsers": false,
		"securityContext": {"runAsUser": 0},
		"containers": [object.union(good_container("app"), {"securityContext": {"runAsNonRoot": false}})],
	})
	not fires("pod-security/run-as-non-root", obj, restricted({}))
}

test_run_as_non_root_denies_uid_0 if {
	obj := deployment({
		"securityContext": {"runAsUser": 0},
		"containers": [object.union(good_container("app"), {"securityContext": {"runAsUser": 0}})],
	})
	messages("pod-security/run-as-non-root", obj, {}) == {
		"pod sets securityContext.runAsUser: 0 (root)",
		"container app sets securityContext.runAsUser: 0 (root)",
	}
}

# pod-security/no-added-capabilities

test_no_added_capabilities_passes_the_baseline_set if {
	not fires("pod-security/no-added-capabilities", good_deployment, {})
	obj := deployment_with_container({"securityContext": {"capabilities": {"add": ["CHOWN", "KILL", "SYS_CHROOT", "NET_BIND_SERVICE"]}}})
	not fires("pod-security/no-added-capabilities", obj, {})
}

test_no_added_capabilities_denies_others if {
	obj := deployment_with_container({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "SYS_ADMIN", "CHOWN", "NET_RAW"]}}})
	messages("pod-security/no-added-capabilities", obj, {}) == {"container app adds the capabilities SYS_ADMIN, NET_RAW, beyond the default set the baseline standard allows"}
	severities("pod-security/no-added-capabilities", obj, {}) == {"deny"}
}

# pod-security/require-seccomp

no_seccomp_container := json.remove(good_container("app"), ["securityContext/seccompProfile"])

test_require_seccomp_passes_pod_or_container_profiles if {
	not fires("pod-security/require-seccomp", good_deployment, restricted({}))
	pod_level := deployment({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}, "containers": [no_seccomp_container]})
	not fires("pod-security/require-seccomp", pod_level, restricted({}))
}

test_require_seccomp_flags_containers_without_a_profile if {
	obj := deployment({"containers": [no_seccomp_container]})
	messages("pod-security/require-seccomp", obj, {}) == {"container app has no seccomp profile: set securityContext.seccompProfile.type: RuntimeDefault on the pod or the container"}
	severities("pod-security/require-seccomp", obj, {}) == {"warn"}
	severities("pod-security/require-seccomp", obj, restricted({})) == {"deny"}

	# An Unconfined pod profile covers no container (and is no-unconfined-seccomp's deny).
	fires("pod-security/require-seccomp", deployment({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [no_seccomp_container]}), {})
}

# pod-security/restricted-capabilities

test_restricted_capabilities_passes_drop_all_and_net_bind_service if {
	not fires("pod-security/restricted-capabilities", good_deployment, restricted({}))
}

test_restricted_capabilities_flags_missing_drops_and_baseline_adds if {
	obj := deployment_with_container({"securityContext": {"capabilities": {"drop": ["NET_RAW"], "add": ["NET_BIND_SERVICE", "CHOWN", "SYS_ADMIN"]}}})
	messages("pod-security/restricted-capabilities", obj, restricted({})) == {
		"container app does not drop all capabilities: set securityContext.capabilities.drop: [ALL]",
		"container app adds the capabilities CHOWN (the restricted standard allows only NET_BIND_SERVICE)",
	}
	severities("pod-security/restricted-capabilities", obj, {}) == {"warn"}
	bare := deployment({"containers": [json.remove(good_container("app"), ["securityContext/capabilities"])]})
	fires("pod-security/restricted-capabilities", bare, {})
}

# Windows pods are exempt from the Linux-only restricted settings, as under PSA.
test_windows_pods_are_exempt_from_linux_only_settings if {
	bare := json.remove(good_container("app"), ["securityContext"])
	obj := deployment({"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": true}, "containers": [bare]})
	fs := findings(obj, restricted({}))
	not "pod-security/no-privilege-escalation" in ids(fs)
	not "pod-security/require-seccomp" in ids(fs)
	not "pod-security/restricted-capabilities" in ids(fs)
	linux := deployment({"securityContext": {"runAsNonRoot": true}, "containers": [bare]})
	{"pod-security/no-privilege-escalation", "pod-security/require-seccomp", "pod-security/restricted-capabilities"} & denied(findings(linux, restricted({}))) == {"pod-security/no-privilege-escalation", "pod-security/require-seccomp", "pod-security/restricted-capabilities"}
}

# pod-security/restricted-volume-types

test_restricted_volume_types_passes_the_allowed_sources if {
	volumes := [
		{"name": "a", "configMap": {"name": "c"}},
		{"name": "b", "secret": {"secretName": "s"}},
		{"name": "c", "emptyDir": {}},
		{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
		{"name": "e", "projected": {"sources": []}},
		{"name": "f", "downwardAPI": {"items": []}},
		{"name": "g", "csi": {"driver": "secrets-store.csi.k8s.io"}},
		{"name": "h", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
		{"name": "i", "image": {"reference": "registry.example/models:1"}},
		{"name": "j"},
	]
	not fires("pod-security/restricted-volume-types", deployment_with_pod({"volumes": volumes}), restricted({}))
}

test_restricted_volume_types_flags_other_sources if {
	obj := deployment_with_pod({"volumes": [{"name": "n", "nfs": {"server": "nfs.example", "path": "/"}}, {"name": "g", "gitRepo": {"repository": "https://example.com/r.git"}}]})
	messages("pod-security/restricted-volume-types", obj, {}) == {
		"volume n is of type nfs (the restricted standard allows configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret)",
		"volume g is of type gitRepo (the restricted standard allows configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret)",
	}
	severities("pod-security/restricted-volume-types", obj, restricted({})) == {"deny"}

	# hostPath is a baseline deny, not reported twice.
	not fires("pod-security/restricted-volume-types", deployment_with_pod({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), {})
}

# Malformed manifests yield findings, not evaluation errors.
test_malformed_security_contexts_fail_closed if {
	obj := deployment({"securityContext": null, "containers": [{"name": "app", "image": "app:1", "securityContext": "root"}]})
	fires("pod-security/no-privilege-escalation", obj, {})
	fires("pod-security/run-as-non-root", obj, {})
	fires("resources/requests-and-limits", obj, {})
}
