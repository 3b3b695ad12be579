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

# pod-security/no-privilege-escalation

test_no_privilege_escalation_passes_an_explicit_false if {
	not fires("pod-security/no-privilege-escalation", good_deployment, {})
}

test_no_privilege_escalation_denies_true_or_unset if {
	fires("pod-security/no-privilege-escalation", deployment_with_container({"securityContext": {"allowPrivilegeEscalation": true}}), {})
	unset := deployment({"containers": [json.remove(good_container("app"), ["securityContext/allowPrivilegeEscalation"])]})
	messages("pod-security/no-privilege-escalation", unset, {}) == {"container app does not set securityContext.allowPrivilegeEscalation: false"}
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

test_no_added_capabilities_passes_net_bind_service_and_drops if {
	not fires("pod-security/no-added-capabilities", good_deployment, {})
}

test_no_added_capabilities_denies_others if {
	obj := deployment_with_container({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "SYS_ADMIN", "NET_RAW"]}}})
	messages("pod-security/no-added-capabilities", obj, {}) == {"container app adds the capabilities SYS_ADMIN, NET_RAW (only NET_BIND_SERVICE may be added)"}
}

# Malformed manifests yield findings, not evaluation errors.
test_malformed_security_contexts_fail_closed if {
	obj := deployment({"securityContext": null, "containers": [{"name": "app", "image": "app:1", "securityContext": "root"}]})
	fires("pod-security/no-privilege-escalation", obj, {})
	fires("pod-security/run-as-non-root", obj, {})
	fires("resources/requests-and-limits", obj, {})
}
