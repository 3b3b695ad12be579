package berth_test

config_map(ns) := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}}

role_binding(role_ref, subjects) := {
	"apiVersion": "rbac.authorization.k8s.io/v1",
	"kind": "RoleBinding",
	"metadata": {"name": "rb", "namespace": "team-a"},
	"roleRef": role_ref,
	"subjects": subjects,
}

cluster_role(name) := {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}

service_account(ns, name) := {"kind": "ServiceAccount", "namespace": ns, "name": name}

# tenancy/namespace-in-tenant

test_namespace_in_tenant_passes_for_each_tenant_namespace if {
	not fires("tenancy/namespace-in-tenant", config_map("team-a"), {})
	not fires("tenancy/namespace-in-tenant", config_map("team-a-jobs"), {})
}

test_namespace_in_tenant_denies_a_foreign_namespace if {
	messages("tenancy/namespace-in-tenant", config_map("team-b"), {}) == {"namespace team-b does not belong to the tenant (its namespaces: team-a, team-a-jobs)"}
}

test_namespace_in_tenant_denies_a_missing_namespace if {
	obj := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
	messages("tenancy/namespace-in-tenant", obj, {}) == {"object has no namespace"}
}

# tenancy/no-cluster-scoped

test_no_cluster_scoped_passes_namespaced_kinds if {
	not fires("tenancy/no-cluster-scoped", config_map("team-a"), {})
	not fires("tenancy/no-cluster-scoped", good_deployment, {})
}

test_no_cluster_scoped_denies_cluster_scoped_kinds if {
	every kind in ["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "StorageClass", "PersistentVolume", "Tenant"] {
		obj := {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}}
		fs := findings(obj, {})
		ids(fs) == {"tenancy/no-cluster-scoped"}
	}
}

test_no_cluster_scoped_message if {
	obj := {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
	messages("tenancy/no-cluster-scoped", obj, {}) == {"Namespace is cluster-scoped: a tenant may only declare namespaced objects"}
}

# tenancy/no-powerful-rolebinding

test_no_powerful_rolebinding_passes_view_and_own_roles if {
	not fires("tenancy/no-powerful-rolebinding", role_binding(cluster_role("view"), [service_account("team-a", "app")]), {})
	own_role := {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "admin"}
	not fires("tenancy/no-powerful-rolebinding", role_binding(own_role, [service_account("team-a-jobs", "app")]), {})
}

test_no_powerful_rolebinding_denies_admin_edit_and_cluster_admin if {
	every role in ["cluster-admin", "admin", "edit"] {
		fires("tenancy/no-powerful-rolebinding", role_binding(cluster_role(role), [service_account("team-a", "app")]), {})
	}
	messages("tenancy/no-powerful-rolebinding", role_binding(cluster_role("edit"), []), {}) == {"RoleBinding grants the ClusterRole edit, which is reserved for the platform (data.params.allow_powerful_rolebindings allows it)"}
}

test_no_powerful_rolebinding_can_be_allowed_by_the_platform if {
	rb := role_binding(cluster_role("admin"), [service_account("team-a", "app")])
	not fires("tenancy/no-powerful-rolebinding", rb, {"allow_powerful_rolebindings": true})
	fires("tenancy/no-powerful-rolebinding", rb, {"allow_powerful_rolebindings": false})
}

test_no_powerful_rolebinding_denies_foreign_service_accounts if {
	rb := role_binding(cluster_role("view"), [service_account("team-b", "bot")])
	messages("tenancy/no-powerful-rolebinding", rb, {}) == {"RoleBinding grants access to the ServiceAccount team-b/bot, outside the tenant"}

	# The parameter allows powerful roles, not foreign subjects.
	fires("tenancy/no-powerful-rolebinding", rb, {"allow_powerful_rolebindings": true})
}

test_no_powerful_rolebinding_defaults_a_service_account_to_the_binding_namespace if {
	rb := role_binding(cluster_role("view"), [{"kind": "ServiceAccount", "name": "app"}])
	not fires("tenancy/no-powerful-rolebinding", rb, {})
}

test_no_powerful_rolebinding_denies_service_account_users_and_groups if {
	user := {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:serviceaccount:team-b:bot"}
	fires("tenancy/no-powerful-rolebinding", role_binding(cluster_role("view"), [user]), {})
	own_user := {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:serviceaccount:team-a:bot"}
	not fires("tenancy/no-powerful-rolebinding", role_binding(cluster_role("view"), [own_user]), {})
	every group in ["system:serviceaccounts", "system:authenticated", "system:unauthenticated", "system:serviceaccounts:team-b"] {
		subject := {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}
		fires("tenancy/no-powerful-rolebinding", role_binding(cluster_role("view"), [subject]), {})
	}
	own_group := {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:serviceaccounts:team-a-jobs"}
	not fires("tenancy/no-powerful-rolebinding", role_binding(cluster_role("view"), [own_group]), {})
}

test_no_powerful_rolebinding_denies_every_other_system_identity if {
	every subject in [
		{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"},
		{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:kube-controller-manager"},
		{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:serviceaccount:team-a"},
		{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"},
		{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"},
	] {
		fires("tenancy/no-powerful-rolebinding", role_binding(cluster_role("view"), [subject]), {})
	}
	anonymous := {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}
	messages("tenancy/no-powerful-rolebinding", role_binding(cluster_role("view"), [anonymous]), {}) == {"RoleBinding grants access to the user system:anonymous, a Kubernetes system identity outside the tenant"}
	unauthenticated := {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:unauthenticated"}
	messages("tenancy/no-powerful-rolebinding", role_binding(cluster_role("view"), [unauthenticated]), {}) == {"RoleBinding grants access to the group system:unauthenticated, which reaches beyond the tenant"}

	# People and groups of the identity provider are the tenant's business.
	every subject in [
		{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"},
		{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-a-developers"},
	] {
		not fires("tenancy/no-powerful-rolebinding", role_binding(cluster_role("view"), [subject]), {})
	}
}

# tenancy/no-persistent-volume-binding

claim(spec) := {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "team-a"}, "spec": object.union({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}, spec)}

test_no_persistent_volume_binding_passes_dynamic_claims if {
	not fires("tenancy/no-persistent-volume-binding", claim({}), {})
	not fires("tenancy/no-persistent-volume-binding", claim({"storageClassName": "fast", "volumeName": ""}), {})
}

test_no_persistent_volume_binding_denies_a_named_volume if {
	messages("tenancy/no-persistent-volume-binding", claim({"volumeName": "pvc-0f3c"}), {}) == {"PersistentVolumeClaim binds the PersistentVolume pvc-0f3c by spec.volumeName (claims get volumes from a StorageClass)"}
}

test_no_persistent_volume_binding_checks_claim_templates_and_ephemeral_volumes if {
	sts := {
		"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "team-a"},
		"spec": {
			"template": {"spec": good_pod_spec},
			"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"volumeName": "pv-other"}}],
		},
	}
	messages("tenancy/no-persistent-volume-binding", sts, {}) == {"volume claim template data binds the PersistentVolume pv-other by spec.volumeName (claims get volumes from a StorageClass)"}
	ephemeral := deployment_with_pod({"volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {"volumeName": "pv-other"}}}}]})
	fires("tenancy/no-persistent-volume-binding", ephemeral, {})
	not fires("tenancy/no-persistent-volume-binding", deployment_with_pod({"volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}), {})
}

# tenancy/no-agent-service-account

test_no_agent_service_account_passes_other_accounts if {
	not fires("tenancy/no-agent-service-account", deployment_with_pod({"serviceAccountName": "web"}), {})
	not fires("tenancy/no-agent-service-account", good_deployment, {})
}

test_no_agent_service_account_denies_the_agent_on_every_workload_kind if {
	every obj in workloads(object.union(good_pod_spec, {"serviceAccountName": "berth-agent"})) {
		fires("tenancy/no-agent-service-account", obj, {})
	}
	messages("tenancy/no-agent-service-account", deployment_with_pod({"serviceAccount": "berth-agent"}), {}) == {"pod runs as the ServiceAccount berth-agent (spec.serviceAccount), which is reserved for the tenant's Berth agent"}
}

# tenancy/no-service-account-token

token_secret(account) := {
	"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
	"metadata": {"name": "t", "namespace": "team-a", "annotations": {"kubernetes.io/service-account.name": account}},
}

test_no_service_account_token_passes_other_secrets if {
	not fires("tenancy/no-service-account-token", object.union(token_secret("web"), {"type": "Opaque"}), {})
	not fires("tenancy/no-service-account-token", json.remove(token_secret("web"), ["type"]), {})
}

test_no_service_account_token_denies_token_secrets if {
	messages("tenancy/no-service-account-token", token_secret("berth-agent"), {}) == {"Secret of type kubernetes.io/service-account-token would hold a non-expiring token of the ServiceAccount berth-agent"}
	fires("tenancy/no-service-account-token", token_secret("web"), {})
}
