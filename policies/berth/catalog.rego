# The catalogue of the library's rules, keyed by rule id "policy/rule": level (see
# profiles.rego), severity under the profile in force (data.params.profile, "baseline" by
# default) and under each profile, effect, description and the data.params keys that tune the
# rule. Tests check that every rule fires with the severities listed here; docs/policies.md
# describes the same rules. It is not part of the compiled entrypoint.
package berth

effects := {
	"deny": "refuses the whole revision",
	"warn": "reported; the object is applied",
}

# A platform documents its own rules the same way, in its own .rego file:
# catalog["acme/no-debug-images"] := {"policy": "acme", "rule": "no-debug-images", ...}.
catalog[id] := {
	"policy": split(id, "/")[0],
	"rule": split(id, "/")[1],
	"level": entry.level,
	"severity": level_severity(entry.level),
	"severities": {profile: level_severities[profile][entry.level] | some profile in profile_names},
	"effect": effects[level_severity(entry.level)],
	"description": entry.description,
	"parameters": entry.parameters,
} if {
	some id, entry in rule_descriptions
}

rule_descriptions := {
	"tenancy/namespace-in-tenant": {
		"level": "baseline",
		"description": "A namespaced object must be in one of the tenant's namespaces (input.tenant.namespaces).",
		"parameters": [],
	},
	"tenancy/no-cluster-scoped": {
		"level": "baseline",
		"description": "Cluster-scoped kinds (Namespace, Node, PersistentVolume, ClusterRole, ClusterRoleBinding, CustomResourceDefinition, webhook and admission policy configurations, APIService, StorageClass, PriorityClass, IngressClass, RuntimeClass, CSIDriver, Tenant, ...) are refused.",
		"parameters": [],
	},
	"tenancy/no-powerful-rolebinding": {
		"level": "baseline",
		"description": "A RoleBinding may not grant the ClusterRoles cluster-admin, admin or edit, nor bind ServiceAccounts (or their user and group names) of namespaces outside the tenant, nor any other system: user or group (system:anonymous, system:unauthenticated, system:authenticated, system:serviceaccounts, system:masters, ...).",
		"parameters": ["allow_powerful_rolebindings"],
	},
	"tenancy/no-persistent-volume-binding": {
		"level": "baseline",
		"description": "No PersistentVolumeClaim (nor StatefulSet claim template or generic ephemeral volume) names a PersistentVolume in spec.volumeName.",
		"parameters": [],
	},
	"tenancy/no-agent-service-account": {
		"level": "baseline",
		"description": "No pod runs as the tenant agent's ServiceAccount berth-agent (serviceAccountName or serviceAccount).",
		"parameters": [],
	},
	"tenancy/no-service-account-token": {
		"level": "baseline",
		"description": "No Secret of type kubernetes.io/service-account-token (a non-expiring ServiceAccount token).",
		"parameters": [],
	},
	"pod-security/no-privileged": {
		"level": "baseline",
		"description": "No container runs privileged (securityContext.privileged: true).",
		"parameters": [],
	},
	"pod-security/no-host-path": {
		"level": "baseline",
		"description": "No hostPath volumes.",
		"parameters": [],
	},
	"pod-security/no-host-namespaces": {
		"level": "baseline",
		"description": "The pod does not share the host's network, process or IPC namespace (hostNetwork, hostPID, hostIPC).",
		"parameters": [],
	},
	"pod-security/no-host-ports": {
		"level": "baseline",
		"description": "No container port sets a hostPort other than 0.",
		"parameters": [],
	},
	"pod-security/no-added-capabilities": {
		"level": "baseline",
		"description": "Containers add no Linux capabilities beyond the baseline default set (AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT).",
		"parameters": [],
	},
	"pod-security/no-unconfined-seccomp": {
		"level": "baseline",
		"description": "A seccomp profile set on the pod or a container is RuntimeDefault or Localhost (not Unconfined).",
		"parameters": [],
	},
	"pod-security/no-unconfined-apparmor": {
		"level": "baseline",
		"description": "An AppArmor profile set on the pod or a container is RuntimeDefault or Localhost, and container.apparmor.security.beta.kubernetes.io/* annotations are runtime/default or localhost/*.",
		"parameters": [],
	},
	"pod-security/no-custom-selinux": {
		"level": "baseline",
		"description": "seLinuxOptions set no user or role, and a type only of container_t, container_init_t, container_kvm_t or container_engine_t.",
		"parameters": [],
	},
	"pod-security/default-proc-mount": {
		"level": "baseline",
		"description": "Containers keep procMount Default, unless the pod has its own user namespace (hostUsers: false).",
		"parameters": [],
	},
	"pod-security/no-unsafe-sysctls": {
		"level": "baseline",
		"description": "The pod sets only the safe, namespaced sysctls.",
		"parameters": [],
	},
	"pod-security/no-host-process": {
		"level": "baseline",
		"description": "Neither the pod nor a container sets windowsOptions.hostProcess: true.",
		"parameters": [],
	},
	"pod-security/no-probe-host": {
		"level": "baseline",
		"description": "Probes and lifecycle handlers (httpGet, tcpSocket) set no host.",
		"parameters": [],
	},
	"pod-security/no-privilege-escalation": {
		"level": "restricted",
		"description": "Every container sets securityContext.allowPrivilegeEscalation: false explicitly (Windows pods are exempt).",
		"parameters": ["profile"],
	},
	"pod-security/run-as-non-root": {
		"level": "restricted",
		"description": "Every container runs with runAsNonRoot: true (its own or the pod's), the pod does not set runAsNonRoot: false, and neither the pod nor a container sets runAsUser: 0 (pods with hostUsers: false are exempt).",
		"parameters": ["profile"],
	},
	"pod-security/require-seccomp": {
		"level": "restricted",
		"description": "Every container has a seccomp profile of type RuntimeDefault or Localhost, its own or the pod's (Windows pods are exempt).",
		"parameters": ["profile"],
	},
	"pod-security/restricted-capabilities": {
		"level": "restricted",
		"description": "Every container drops ALL capabilities and adds none but NET_BIND_SERVICE (Windows pods are exempt).",
		"parameters": ["profile"],
	},
	"pod-security/restricted-volume-types": {
		"level": "restricted",
		"description": "Volumes are only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected or secret.",
		"parameters": ["profile"],
	},
	"pod-security/user-namespace-proc-mount": {
		"level": "restricted",
		"description": "Containers keep procMount Default even when the pod has its own user namespace.",
		"parameters": ["profile"],
	},
	"images/allowed-registries": {
		"level": "baseline",
		"description": "When data.params.allowed_registries is a non-empty list, every image of a container or an image volume comes from one of its registries or repositories (matched at a path boundary, Docker Hub images as docker.io/...).",
		"parameters": ["allowed_registries"],
	},
	"images/pinned-image": {
		"level": "restricted",
		"description": "Every image of a container or an image volume has a version tag other than latest, or a digest (a registry port is not a tag).",
		"parameters": ["profile"],
	},
	"resources/requests-and-limits": {
		"level": "restricted",
		"description": "Every init and regular container sets cpu and memory requests and limits; one finding per container names what is missing.",
		"parameters": ["profile"],
	},
	"services/no-node-port": {
		"level": "baseline",
		"description": "No Service of type NodePort unless data.params.allowed_service_types contains NodePort.",
		"parameters": ["allowed_service_types"],
	},
	"services/no-load-balancer": {
		"level": "baseline",
		"description": "No Service of type LoadBalancer unless data.params.allowed_service_types contains LoadBalancer.",
		"parameters": ["allowed_service_types"],
	},
	"services/no-external-ips": {
		"level": "baseline",
		"description": "No Service sets spec.externalIPs (CVE-2020-8554).",
		"parameters": [],
	},
	"services/no-internal-external-name": {
		"level": "baseline",
		"description": "A Service of type ExternalName points outside the cluster, or at the tenant's own Services: not at an IP address, localhost, a single-label name, a name with a svc or pod label (the cluster's Service and pod DNS) or a name under cluster.local.",
		"parameters": [],
	},
	"ingress/assigned-hosts": {
		"level": "baseline",
		"description": "Every host an Ingress routes or asks TLS for is assigned to the tenant (input.tenant.hosts): granted exactly, or one label below a wildcard grant; a wildcard host only when granted exactly.",
		"parameters": [],
	},
	"ingress/no-catch-all": {
		"level": "baseline",
		"description": "An Ingress has no rule without a host, no defaultBackend (or backend) and no TLS entry without hosts.",
		"parameters": [],
	},
	"network/no-open-ingress": {
		"level": "baseline",
		"description": "Every ingress rule of a NetworkPolicy has a from list, and every peer in it selects something.",
		"parameters": [],
	},
	"network/no-ip-block": {
		"level": "baseline",
		"description": "No ingress peer of a NetworkPolicy is an ipBlock.",
		"parameters": [],
	},
	"network/no-foreign-namespaces": {
		"level": "baseline",
		"description": "An ingress peer's namespaceSelector pins berth.dev/tenant to the tenant, or kubernetes.io/metadata.name to the tenant's namespaces or input.tenant.allowFromNamespaces (by matchLabels or an In expression).",
		"parameters": [],
	},
	"labels/required-labels": {
		"level": "restricted",
		"description": "Every object carries each label named in data.params.required_labels.",
		"parameters": ["required_labels", "profile"],
	},
	"labels/recommended-name-label": {
		"level": "advisory",
		"description": "Workloads carry the recommended label app.kubernetes.io/name.",
		"parameters": [],
	},
	"secrets/encrypted-in-git": {
		"level": "advisory",
		"description": "A Secret from Git with data or stringData was committed encrypted with SOPS (input.encrypted), not in plaintext.",
		"parameters": [],
	},
	"params/valid-parameters": {
		"level": "baseline",
		"description": "data.params is an object and each known parameter has its type (profile is baseline or restricted); a wrong one refuses every object so the gate fails closed.",
		"parameters": [],
	},
	"params/unknown-parameter": {
		"level": "advisory",
		"description": "data.params holds only parameters the library knows (catches misspelt names).",
		"parameters": [],
	},
}
