# The profiles: the same object under "baseline" (the default) and "restricted", checked on a
# real application's manifest.
package berth_test

# podinfo's Deployment as its project publishes it: kustomize/deployment.yaml of
# https://github.com/stefanprodan/podinfo at commit eec06d1ea459af4cb4e10e806f8be7c7bd58b361
# (Apache-2.0; Copyright Stefan Prodan), with the namespace the agent fills in. It sets no
# securityContext; its image is pinned and it declares requests and limits.
podinfo_deployment := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {
		"name": "podinfo",
		"namespace": "team-a",
	},
	"spec": {
		"minReadySeconds": 3,
		"revisionHistoryLimit": 5,
		"progressDeadlineSeconds": 60,
		"strategy": {
			"rollingUpdate": {
				"maxUnavailable": 0,
			},
			"type": "RollingUpdate",
		},
		"selector": {
			"matchLabels": {
				"app": "podinfo",
			},
		},
		"template": {
			"metadata": {
				"annotations": {
					"prometheus.io/scrape": "true",
					"prometheus.io/port": "9797",
				},
				"labels": {
					"app": "podinfo",
				},
			},
			"spec": {
				"containers": [
					{
						"name": "podinfod",
						"image": "ghcr.io/stefanprodan/podinfo:6.14.1",
						"imagePullPolicy": "IfNotPresent",
						"ports": [
							{
								"name": "http",
								"containerPort": 9898,
								"protocol": "TCP",
							},
							{
								"name": "http-metrics",
								"containerPort": 9797,
								"protocol": "TCP",
							},
							{
								"name": "grpc",
								"containerPort": 9999,
								"protocol": "TCP",
							},
						],
						"command": [
							"./podinfo",
							"--port=9898",
							"--port-metrics=9797",
							"--grpc-port=9999",
							"--grpc-service-name=podinfo",
							"--level=info",
							"--random-delay=false",
							"--random-error=false",
						],
						"env": [
							{
								"name": "PODINFO_UI_COLOR",
								"value": "#34577c",
							},
						],
						"livenessProbe": {
							"exec": {
								"command": [
									"podcli",
									"check",
									"http",
									"localhost:9898/healthz",
								],
							},
							"initialDelaySeconds": 5,
							"timeoutSeconds": 5,
						},
						"readinessProbe": {
							"exec": {
								"command": [
									"podcli",
									"check",
									"http",
									"localhost:9898/readyz",
								],
							},
							"initialDelaySeconds": 5,
							"timeoutSeconds": 5,
						},
						"resources": {
							"limits": {
								"cpu": "2000m",
								"memory": "512Mi",
							},
							"requests": {
								"cpu": "100m",
								"memory": "64Mi",
							},
						},
						"volumeMounts": [
							{
								"name": "data",
								"mountPath": "/data",
							},
						],
					},
				],
				"volumes": [
					{
						"name": "data",
						"emptyDir": {},
					},
				],
			},
		},
	},
}

test_podinfo_is_applied_with_warnings_under_the_default_profile if {
	fs := findings(podinfo_deployment, {})
	denied(fs) == set()
	ids(fs) == {
		"pod-security/no-privilege-escalation",
		"pod-security/run-as-non-root",
		"pod-security/require-seccomp",
		"pod-security/restricted-capabilities",
		"labels/recommended-name-label",
	}
	findings(podinfo_deployment, {"profile": "baseline"}) == fs
}

test_podinfo_is_denied_under_the_restricted_profile_naming_each_rule if {
	fs := findings(podinfo_deployment, restricted({}))
	denied(fs) == {
		"pod-security/no-privilege-escalation",
		"pod-security/run-as-non-root",
		"pod-security/require-seccomp",
		"pod-security/restricted-capabilities",
	}
	{f.message | some f in fs; f.severity == "deny"} == {
		"container podinfod does not set securityContext.allowPrivilegeEscalation: false",
		"container podinfod may run as root: set securityContext.runAsNonRoot: true on the pod or the container",
		"container podinfod has no seccomp profile: set securityContext.seccompProfile.type: RuntimeDefault on the pod or the container",
		"container podinfod does not drop all capabilities: set securityContext.capabilities.drop: [ALL]",
	}
}

# The hardening docs/policies.md suggests makes it pass the restricted profile.
test_hardened_podinfo_passes_the_restricted_profile if {
	hardened := json.patch(podinfo_deployment, [
		{"op": "add", "path": "/metadata/labels", "value": {"app.kubernetes.io/name": "podinfo"}},
		{"op": "add", "path": "/spec/template/spec/securityContext", "value": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}},
		{"op": "add", "path": "/spec/template/spec/containers/0/securityContext", "value": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}},
	])
	count(findings(hardened, restricted({}))) == 0
}

# A rule of either level keeps its severity when the profile does not change it, and
# warn_rules and disabled_rules apply on top of the profile.
test_overrides_apply_on_top_of_the_profile if {
	fs := findings(podinfo_deployment, restricted({"warn_rules": ["pod-security/require-seccomp"], "disabled_rules": ["pod-security/restricted-capabilities"]}))
	denied(fs) == {"pod-security/no-privilege-escalation", "pod-security/run-as-non-root"}
	"pod-security/require-seccomp" in ids(fs)
	not "pod-security/restricted-capabilities" in ids(fs)
	privileged_podinfo := json.patch(podinfo_deployment, [{"op": "add", "path": "/spec/template/spec/hostNetwork", "value": true}])
	"pod-security/no-host-namespaces" in denied(findings(privileged_podinfo, {}))
	not "pod-security/no-host-namespaces" in denied(findings(privileged_podinfo, {"warn_rules": ["pod-security/no-host-namespaces"]}))
}
