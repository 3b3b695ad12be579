# Tenancy: a tenant's objects stay inside the tenant's namespaces and cannot widen its rights.
# The agent's guard rails and the tenant's RBAC enforce the same boundary; these rules make it
# visible in policy reports and hold for any caller of the bundle (e.g. `berth-agent check`).
package berth

# Cluster-scoped kinds a tenant must never declare. The agent's guard rails also refuse every
# kind the API server reports as cluster-scoped; this list holds without a cluster. A platform
# can add kinds in its own .rego file: `cluster_scoped_kinds contains "ClusterIssuer"`.
cluster_scoped_kinds contains kind if some kind in [
	"APIService",
	"CertificateSigningRequest",
	"ClusterRole",
	"ClusterRoleBinding",
	"ClusterTrustBundle",
	"ComponentStatus",
	"CSIDriver",
	"CSINode",
	"CustomResourceDefinition",
	"DeviceClass",
	"FlowSchema",
	"IngressClass",
	"IPAddress",
	"MutatingAdmissionPolicy",
	"MutatingAdmissionPolicyBinding",
	"MutatingWebhookConfiguration",
	"Namespace",
	"Node",
	"PersistentVolume",
	"PodSecurityPolicy",
	"PriorityClass",
	"PriorityLevelConfiguration",
	"ResourceSlice",
	"RuntimeClass",
	"SelfSubjectAccessReview",
	"SelfSubjectReview",
	"SelfSubjectRulesReview",
	"ServiceCIDR",
	"StorageClass",
	"StorageVersionMigration",
	"SubjectAccessReview",
	"Tenant",
	"TokenReview",
	"ValidatingAdmissionPolicy",
	"ValidatingAdmissionPolicyBinding",
	"ValidatingWebhookConfiguration",
	"VolumeAttachment",
	"VolumeAttributesClass",
]

# ClusterRoles a RoleBinding may not grant unless data.params.allow_powerful_rolebindings.
powerful_cluster_roles contains role if some role in ["admin", "cluster-admin", "edit"]

findings contains finding("tenancy", "namespace-in-tenant", level_severity("baseline"), msg) if {
	not input.object.kind in cluster_scoped_kinds
	not object_namespace in tenant_namespaces
	msg := namespace_message(object_namespace)
}

namespace_message("") := "object has no namespace"

namespace_message(ns) := msg if {
	ns != ""
	listed := [str(n) | some n in tenant_namespaces]
	msg := concat("", ["namespace ", str(ns), " does not belong to the tenant (its namespaces: ", concat(", ", listed), ")"])
}

findings contains finding("tenancy", "no-cluster-scoped", level_severity("baseline"), msg) if {
	input.object.kind in cluster_scoped_kinds
	msg := concat("", [input.object.kind, " is cluster-scoped: a tenant may only declare namespaced objects"])
}

findings contains finding("tenancy", "no-powerful-rolebinding", level_severity("baseline"), msg) if {
	input.object.kind == "RoleBinding"
	not param_allow_powerful_rolebindings
	ref := object_at(input.object, "roleRef")
	value_at(ref, "kind", "") == "ClusterRole"
	role := value_at(ref, "name", "")
	role in powerful_cluster_roles
	msg := concat("", ["RoleBinding grants the ClusterRole ", role, ", which is reserved for the platform (data.params.allow_powerful_rolebindings allows it)"])
}

findings contains finding("tenancy", "no-powerful-rolebinding", level_severity("baseline"), msg) if {
	input.object.kind == "RoleBinding"
	some subject in array_at(input.object, "subjects")
	who := foreign_subject(subject)
	msg := concat("", ["RoleBinding grants access to ", who])
}

# A subject that reaches outside the tenant, described; undefined for subjects inside it. A
# ServiceAccount subject without a namespace is in the binding's own namespace. Every other
# Kubernetes identity ("system:" users and groups: system:anonymous, system:unauthenticated,
# system:authenticated, system:serviceaccounts, system:masters, system:nodes, ...) reaches
# beyond the tenant, except the ServiceAccounts of the tenant's namespaces by their user or
# group name.
foreign_subject(s) := desc if {
	value_at(s, "kind", "") == "ServiceAccount"
	ns := str(value_at(s, "namespace", object_namespace))
	not ns in tenant_namespaces
	desc := concat("", ["the ServiceAccount ", ns, "/", str(value_at(s, "name", "")), ", outside the tenant"])
}

foreign_subject(s) := desc if {
	kind := value_at(s, "kind", "")
	kind in {"User", "Group"}
	name := str(value_at(s, "name", ""))
	startswith(name, "system:")
	not tenant_identity(kind, name)
	desc := system_identity(kind, name)
}

tenant_identity("User", name) if {
	parts := split(name, ":")
	count(parts) == 4
	parts[1] == "serviceaccount"
	parts[2] in tenant_namespaces
}

tenant_identity("Group", name) if {
	parts := split(name, ":")
	count(parts) == 3
	parts[1] == "serviceaccounts"
	parts[2] in tenant_namespaces
}

system_identity(kind, name) := concat("", ["the ServiceAccount user ", name, ", outside the tenant"]) if {
	kind == "User"
	startswith(name, "system:serviceaccount:")
} else := concat("", ["the group ", name, ", outside the tenant"]) if {
	kind == "Group"
	startswith(name, "system:serviceaccounts:")
} else := concat("", ["the group ", name, ", which reaches beyond the tenant"]) if {
	kind == "Group"
} else := concat("", ["the user ", name, ", a Kubernetes system identity outside the tenant"])

# A PersistentVolume is cluster-scoped and provisioned by the platform: naming one binds
# whatever volume that is, another tenant's released data included. Claims get volumes
# dynamically, through a StorageClass.
findings contains finding("tenancy", "no-persistent-volume-binding", level_severity("baseline"), msg) if {
	some claim in volume_claims
	name := value_at(claim.spec, "volumeName", "")
	name != ""
	msg := concat("", [claim.label, " binds the PersistentVolume ", str(name), " by spec.volumeName (claims get volumes from a StorageClass)"])
}

# The specs of every PersistentVolumeClaim the object declares: the claim itself, a
# StatefulSet's claim templates, and the pod's generic ephemeral volumes.
volume_claims contains {"label": "PersistentVolumeClaim", "spec": object_at(input.object, "spec")} if {
	input.object.kind == "PersistentVolumeClaim"
}

volume_claims contains {"label": label, "spec": object_at(template, "spec")} if {
	input.object.kind == "StatefulSet"
	some template in array_at(object_at(input.object, "spec"), "volumeClaimTemplates")
	label := concat("", ["volume claim template ", str(value_at(object_at(template, "metadata"), "name", "(unnamed)"))])
}

volume_claims contains {"label": label, "spec": object_at(template, "spec")} if {
	spec := pod_spec(input.object)
	some volume in array_at(spec, "volumes")
	template := object_at(object_at(volume, "ephemeral"), "volumeClaimTemplate")
	label := concat("", ["ephemeral volume ", str(value_at(volume, "name", "(unnamed)"))])
}

# The tenant agent's ServiceAccount, in the tenant's primary namespace: it may write every
# object of the tenant, so no workload may run as it.
agent_service_account := "berth-agent"

findings contains finding("tenancy", "no-agent-service-account", level_severity("baseline"), msg) if {
	spec := pod_spec(input.object)
	some field in ["serviceAccountName", "serviceAccount"]
	value_at(spec, field, "") == agent_service_account
	msg := concat("", ["pod runs as the ServiceAccount ", agent_service_account, " (spec.", field, "), which is reserved for the tenant's Berth agent"])
}

# The token controller fills such a Secret with a non-expiring token of the ServiceAccount it
# names (the agent's, for instance). Pods get short-lived tokens by projection instead.
findings contains finding("tenancy", "no-service-account-token", level_severity("baseline"), msg) if {
	input.object.kind == "Secret"
	value_at(input.object, "type", "") == "kubernetes.io/service-account-token"
	annotations := object_at(object_at(input.object, "metadata"), "annotations")
	account := str(value_at(annotations, "kubernetes.io/service-account.name", "(none)"))
	msg := concat("", ["Secret of type kubernetes.io/service-account-token would hold a non-expiring token of the ServiceAccount ", account])
}
