# The catalogue of the library's rules, keyed by rule id "policy/rule": severity ("deny" or
# "warn"), effect, description and the data.params keys that tune the rule. Tests check that
# every rule fires with the severity listed here; docs/policies.md describes the same rules.
# It is not part of the compiled entrypoint.
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
	"severity": entry.severity,
	"effect": effects[entry.severity],
	"description": entry.description,
	"parameters": entry.parameters,
} if {
	some id, entry in rule_descriptions
}

rule_descriptions := {
	"tenancy/namespace-in-tenant": {
		"severity": "deny",
		"description": "A namespaced object must be in one of the tenant's namespaces (input.tenant.namespaces).",
		"parameters": [],
	},
	"tenancy/no-cluster-scoped": {
		"severity": "deny",
		"description": "Cluster-scoped kinds (Namespace, Node, PersistentVolume, ClusterRole, ClusterRoleBinding, CustomResourceDefinition, webhook and admission policy configurations, APIService, StorageClass, PriorityClass, IngressClass, RuntimeClass, CSIDriver, Tenant, ...) are refused.",
		"parameters": [],
	},
	"tenancy/no-powerful-rolebinding": {
		"severity": "deny",
		"description": "A RoleBinding may not grant the ClusterRoles cluster-admin, admin or edit, nor bind ServiceAccounts (or their user and group names) of namespaces outside the tenant, system:serviceaccounts, system:authenticated or system:unauthenticated.",
		"parameters": ["allow_powerful_rolebindings"],
	},
	"pod-security/no-privileged": {
		"severity": "deny",
		"description": "No container runs privileged (securityContext.privileged: true).",
		"parameters": [],
	},
	"pod-security/no-host-path": {
		"severity": "deny",
		"description": "No hostPath volumes.",
		"parameters": [],
	},
	"pod-security/no-host-namespaces": {
		"severity": "deny",
		"description": "The pod does not share the host's network, process or IPC namespace (hostNetwork, hostPID, hostIPC).",
		"parameters": [],
	},
	"pod-security/no-privilege-escalation": {
		"severity": "deny",
		"description": "Every container sets securityContext.allowPrivilegeEscalation: false explicitly.",
		"parameters": [],
	},
	"pod-security/run-as-non-root": {
		"severity": "deny",
		"description": "Every container runs with runAsNonRoot: true (its own or the pod's), and neither the pod nor a container sets runAsUser: 0.",
		"parameters": [],
	},
	"pod-security/no-added-capabilities": {
		"severity": "deny",
		"description": "Containers add no Linux capabilities except NET_BIND_SERVICE.",
		"parameters": [],
	},
	"images/allowed-registries": {
		"severity": "deny",
		"description": "When data.params.allowed_registries is a non-empty list, every image comes from one of its registries or repositories (matched at a path boundary, Docker Hub images as docker.io/...).",
		"parameters": ["allowed_registries"],
	},
	"images/pinned-image": {
		"severity": "deny",
		"description": "Every image has a version tag other than latest, or a digest (a registry port is not a tag).",
		"parameters": [],
	},
	"resources/requests-and-limits": {
		"severity": "deny",
		"description": "Every init and regular container sets cpu and memory requests and limits; one finding per container names what is missing.",
		"parameters": [],
	},
	"services/no-node-port": {
		"severity": "deny",
		"description": "No Service of type NodePort unless data.params.allowed_service_types contains NodePort.",
		"parameters": ["allowed_service_types"],
	},
	"services/no-load-balancer": {
		"severity": "deny",
		"description": "No Service of type LoadBalancer unless data.params.allowed_service_types contains LoadBalancer.",
		"parameters": ["allowed_service_types"],
	},
	"labels/required-labels": {
		"severity": "deny",
		"description": "Every object carries each label named in data.params.required_labels.",
		"parameters": ["required_labels"],
	},
	"labels/recommended-name-label": {
		"severity": "warn",
		"description": "Workloads carry the recommended label app.kubernetes.io/name.",
		"parameters": [],
	},
	"params/valid-parameters": {
		"severity": "deny",
		"description": "data.params is an object and each known parameter has its type; a wrong type refuses every object so the gate fails closed.",
		"parameters": [],
	},
	"params/unknown-parameter": {
		"severity": "warn",
		"description": "data.params holds only parameters the library knows (catches misspelt names).",
		"parameters": [],
	},
}
