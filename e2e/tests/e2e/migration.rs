//! Upgrading from the earlier layout, where the agent's identity, status and workload lived in
//! the tenant's primary namespace: the operator moves them to the agent's own namespace, keeps
//! the agent's record of what it applied (so pruning goes on), deletes the old identity, and
//! re-creates nothing the tenant applied (same uids).

use std::time::Duration;

use berth_e2e::{TestOperator, TestRepo, in_namespace, install_crds, tenant_document};
use berth_engine::api::{Tenant, TenantSync, agent_namespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};

use crate::support::{eventually, tenant_ready};

/// Server-side applies `object` as `manager`, the way the earlier operator and agent did.
async fn apply_as<K>(client: &Client, manager: &str, object: Value) -> K
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let ns = object["metadata"]["namespace"]
        .as_str()
        .expect("namespace")
        .to_owned();
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    Api::<K>::namespaced(client.clone(), &ns)
        .patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&object),
        )
        .await
        .expect("applying the earlier layout")
}

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n")
}

#[tokio::test]
async fn a_tenant_of_the_earlier_layout_is_moved_without_recreating_anything() {
    in_namespace("migration", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-m", platform.name);
        let repo = TestRepo::new();
        repo.write("one.yaml", config_map("one")).write("two.yaml", config_map("two"));
        let revision = repo.commit("one and two");

        // What the earlier operator and its agent left behind, field managers included.
        let labels = json!({"berth.dev/tenant": tenant, "app.kubernetes.io/managed-by": "berth", "berth.dev/provisioned": "true"});
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tenant,
            "labels": {"berth.dev/tenant": tenant, "app.kubernetes.io/managed-by": "berth", "berth.dev/provisioned": "true",
                "pod-security.kubernetes.io/enforce": "restricted"}}});
        let namespaces = Api::<Namespace>::all(admin.clone());
        let old_namespace = namespaces.patch(&tenant, &PatchParams::apply("berth").force(), &Patch::Apply(&namespace)).await?;
        let meta = |name: &str| json!({"name": name, "namespace": tenant, "labels": labels});
        apply_as::<ServiceAccount>(&admin, "berth", json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("berth-agent")})).await;
        let old_role: Role = apply_as(&admin, "berth", json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("berth-agent"),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                {"apiGroups": ["berth.dev"], "resources": ["tenantsyncs", "tenantsyncs/status"], "verbs": ["get", "list", "watch", "create", "patch", "update"]},
                {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"], "verbs": ["get", "list", "create"]}]})).await;
        apply_as::<RoleBinding>(&admin, "berth", json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("berth-agent"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "berth-agent"},
            "subjects": [{"kind": "ServiceAccount", "name": "berth-agent", "namespace": tenant}]})).await;
        apply_as::<Secret>(&admin, "berth", json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("berth-agent-git"), "data": {"x": "eA=="}})).await;
        apply_as::<Deployment>(&admin, "berth", json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("berth-agent"),
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"serviceAccountName": "berth-agent", "containers": [{"name": "agent", "image": "registry.example/berth-agent:old"}]}}}})).await;
        let applied = json!({"berth.dev/tenant": tenant, "app.kubernetes.io/managed-by": "berth"});
        let mut uids = Vec::new();
        for name in ["one", "two"] {
            let cm: ConfigMap = apply_as(&admin, "berth", json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": tenant, "labels": applied}, "data": {"a": "b"}})).await;
            uids.push(cm.metadata.uid.expect("uid"));
        }
        let old_syncs = Api::<TenantSync>::namespaced(admin.clone(), &tenant);
        old_syncs.patch("berth", &PatchParams::apply("berth-operator").force(), &Patch::Apply(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "TenantSync",
            "metadata": {"name": "berth", "namespace": tenant, "labels": {"berth.dev/tenant": tenant}}, "spec": {}}))).await?;
        let inventory: Vec<Value> = ["one", "two"].iter()
            .map(|n| json!({"apiVersion": "v1", "kind": "ConfigMap", "namespace": tenant, "name": n}))
            .collect();
        old_syncs.patch_status("berth", &PatchParams::default(), &Patch::Merge(json!({"status": {
            "result": "Applied", "message": "applied 2 objects", "lastAttemptedRevision": revision,
            "lastAppliedRevision": revision, "counts": {"objects": 2, "applied": 2, "unchanged": 0, "pruned": 0, "refused": 0, "warnings": 0},
            "inventory": inventory}}))).await?;

        // The new operator, from the platform repository that declared the tenant all along.
        let platform_repo = TestRepo::new();
        let spec = format!("  source: {{url: '{}', interval: 2s}}\n", repo.file_url());
        platform_repo.write(&format!("tenants/{tenant}.yaml"), tenant_document(&platform.name, &tenant, &spec));
        platform_repo.commit("the tenant");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_platform(cp, &platform.name, cache.path(), &platform_repo.file_url());
        tenant_ready(&admin, &tenant, Duration::from_secs(120)).await?;
        let home = agent_namespace(&tenant);
        let status = Api::<Tenant>::all(admin.clone()).get(&tenant).await?.status.unwrap_or_default();
        assert_eq!(status.agent_namespace.as_deref(), Some(home.as_str()));

        // Nothing re-created.
        assert_eq!(namespaces.get(&tenant).await?.metadata.uid, old_namespace.metadata.uid);
        let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &tenant);
        for (name, uid) in ["one", "two"].iter().zip(&uids) {
            assert_eq!(config_maps.get(name).await?.metadata.uid.as_ref(), Some(uid), "{name} was re-created");
        }
        let role = Api::<Role>::namespaced(admin.clone(), &tenant).get("berth-agent").await?;
        assert_eq!(role.metadata.uid, old_role.metadata.uid);
        let binding = Api::<RoleBinding>::namespaced(admin.clone(), &tenant).get("berth-agent").await?;
        let subject = &binding.subjects.unwrap_or_default()[0];
        assert_eq!(subject.namespace.as_deref(), Some(home.as_str()), "bound to the agent in its own namespace");
        // The old identity, workload, credentials and status are gone from the tenant's reach.
        eventually("the earlier layout removed", Duration::from_secs(30), || async {
            let gone = Api::<ServiceAccount>::namespaced(admin.clone(), &tenant).get_opt("berth-agent").await.ok()?.is_none()
                && Api::<Deployment>::namespaced(admin.clone(), &tenant).get_opt("berth-agent").await.ok()?.is_none()
                && Api::<Secret>::namespaced(admin.clone(), &tenant).get_opt("berth-agent-git").await.ok()?.is_none()
                && old_syncs.get_opt("berth").await.ok()?.is_none();
            gone.then_some(())
        })
        .await?;
        // The earlier field manager owns nothing of the operator's any more.
        let managers: Vec<String> = namespaces.get(&tenant).await?.metadata.managed_fields.unwrap_or_default()
            .into_iter().filter(|m| m.operation.as_deref() == Some("Apply")).filter_map(|m| m.manager).collect();
        assert!(!managers.contains(&"berth".to_owned()), "{managers:?}");
        // The agent's record moved with it: what Git drops is still pruned.
        let syncs = Api::<TenantSync>::namespaced(admin.clone(), &home);
        let moved = syncs.get("berth").await?.status.unwrap_or_default();
        assert_eq!(moved.inventory.len(), 2, "{:?}", moved.inventory);
        repo.remove("two.yaml");
        repo.commit("two goes");
        eventually("two pruned", Duration::from_secs(60), || async {
            config_maps.get_opt("two").await.ok()?.is_none().then_some(())
        })
        .await?;
        assert_eq!(config_maps.get("one").await?.metadata.uid.as_ref(), Some(&uids[0]));
        Ok(())
    })
    .await;
}
