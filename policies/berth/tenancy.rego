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

findings contains finding("tenancy", "namespace-in-tenant", "deny", msg) if {
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

findings contains finding("tenancy", "no-cluster-scoped", "deny", msg) if {
	input.object.kind in cluster_scoped_kinds
	msg := concat("", [input.object.kind, " is cluster-scoped: a tenant may only declare namespaced objects"])
}

findings contains finding("tenancy", "no-powerful-rolebinding", "deny", msg) if {
	input.object.kind == "RoleBinding"
	not param_allow_powerful_rolebindings
	ref := object_at(input.object, "roleRef")
	value_at(ref, "kind", "") == "ClusterRole"
	role := value_at(ref, "name", "")
	role in powerful_cluster_roles
	msg := concat("", ["RoleBinding grants the ClusterRole ", role, ", which is reserved for the platform (data.params.allow_powerful_rolebindings allows it)"])
}

findings contains finding("tenancy", "no-powerful-rolebinding", "deny", msg) if {
	input.object.kind == "RoleBinding"
	some subject in array_at(input.object, "subjects")
	who := foreign_subject(subject)
	msg := concat("", ["RoleBinding grants access to ", who])
}

# A subject that names ServiceAccounts outside the tenant's namespaces, described; undefined
# for subjects inside the tenant. A ServiceAccount subject without a namespace is in the
# binding's own namespace.
foreign_subject(s) := desc if {
	value_at(s, "kind", "") == "ServiceAccount"
	ns := str(value_at(s, "namespace", object_namespace))
	not ns in tenant_namespaces
	desc := concat("", ["the ServiceAccount ", ns, "/", str(value_at(s, "name", "")), ", outside the tenant"])
}

foreign_subject(s) := desc if {
	value_at(s, "kind", "") == "User"
	name := str(value_at(s, "name", ""))
	parts := split(name, ":")
	count(parts) == 4
	parts[0] == "system"
	parts[1] == "serviceaccount"
	not parts[2] in tenant_namespaces
	desc := concat("", ["the ServiceAccount user ", name, ", outside the tenant"])
}

foreign_subject(s) := desc if {
	value_at(s, "kind", "") == "Group"
	name := str(value_at(s, "name", ""))
	name in {"system:serviceaccounts", "system:authenticated", "system:unauthenticated"}
	desc := concat("", ["the group ", name, ", which reaches beyond the tenant"])
}

foreign_subject(s) := desc if {
	value_at(s, "kind", "") == "Group"
	name := str(value_at(s, "name", ""))
	parts := split(name, ":")
	count(parts) == 3
	parts[0] == "system"
	parts[1] == "serviceaccounts"
	not parts[2] in tenant_namespaces
	desc := concat("", ["the group ", name, ", outside the tenant"])
}
