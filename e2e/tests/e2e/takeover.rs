//! What the operator provisions cannot be taken over or pruned through a tenant's repository,
//! and comes back when a member changes it: the agent has its own field manager, refuses
//! the names Berth reserves, never takes over an object it did not create, prunes only what it
//! applied itself, and the operator restores its objects on drift within seconds.

use std::time::Duration;

use berth_e2e::{TestOperator, TestRepo, in_namespace, install_crds, tenant_document};
use berth_engine::api::{SyncResult, TenantSync, agent_namespace};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{eventually, tenant_ready};

const APP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {a: b}\n";

#[tokio::test]
async fn the_operators_objects_cannot_be_taken_over_or_pruned_and_come_back_on_drift() {
    in_namespace("takeover", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-t", platform.name);
        let repo = TestRepo::new();
        repo.write("app.yaml", APP);
        repo.commit("app");
        let platform_repo = TestRepo::new();
        let spec = format!(
            "  source: {{url: '{}', interval: 1s}}\n  members: [{{kind: User, name: alice, role: edit}}]\n",
            repo.file_url()
        );
        platform_repo.write(&format!("tenants/{tenant}.yaml"), tenant_document(&platform.name, &tenant, &spec));
        platform_repo.commit("onboard");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_platform(cp, &platform.name, cache.path(), &platform_repo.file_url());
        tenant_ready(&admin, &tenant, Duration::from_secs(120)).await?;
        let policies = Api::<NetworkPolicy>::namespaced(admin.clone(), &tenant);
        let isolation = policies.get("berth-isolation").await?;
        let syncs = Api::<TenantSync>::namespaced(admin.clone(), &agent_namespace(&tenant));
        let refused_with = |rule: &'static str| {
            let syncs = syncs.clone();
            async move {
                let status = syncs.get("berth").await.ok()?.status?;
                (status.result == SyncResult::Refused && status.refused.iter().any(|r| r.rule == rule))
                    .then_some(status)
            }
        };

        // The repository declares the operator's isolation policy, wide open, and the agent's
        // own RoleBinding: refused by name, nothing applied, the originals untouched.
        repo.write(
            "takeover.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: berth-isolation}\nspec:\n  podSelector: {}\n  ingress: [{}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: berth-agent}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}\nsubjects: [{kind: Group, name: system:authenticated, apiGroup: rbac.authorization.k8s.io}]\n",
        );
        repo.commit("take over");
        let status = eventually("the takeover refused", Duration::from_secs(60), || refused_with("ReservedName")).await?;
        let named: Vec<&str> = status.refused.iter().filter(|r| r.rule == "ReservedName").map(|r| r.object.as_str()).collect();
        assert!(named.contains(&format!("NetworkPolicy {tenant}/berth-isolation").as_str()), "{named:?}");
        assert!(named.contains(&format!("RoleBinding {tenant}/berth-agent").as_str()), "{named:?}");
        assert_eq!(policies.get("berth-isolation").await?.metadata.resource_version, isolation.metadata.resource_version);

        // An object a member made is never taken over by a repository declaring its name.
        let alice = cp.user_client("alice", &["system:authenticated"]).await?;
        let made: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "made-by-alice"}, "data": {"owner": "alice"}}))?;
        Api::<ConfigMap>::namespaced(alice.clone(), &tenant).create(&PostParams::default(), &made).await?;
        repo.remove("takeover.yaml");
        repo.write("claim.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: made-by-alice}\ndata: {owner: git}\n");
        repo.commit("claim alice's ConfigMap");
        let failed = eventually("the claim refused", Duration::from_secs(60), || async {
            let status = syncs.get("berth").await.ok()?.status?;
            (status.result == SyncResult::Failed && status.message.contains("made-by-alice")).then_some(status.message)
        })
        .await?;
        assert!(failed.contains("was not created by this tenant's agent"), "{failed}");
        let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &tenant);
        let still = config_maps.get("made-by-alice").await?.data.unwrap_or_default();
        assert_eq!(still.get("owner").map(String::as_str), Some("alice"));

        // An inventory naming objects the agent did not apply prunes none of them.
        repo.remove("claim.yaml");
        repo.commit("back to the app");
        eventually("applied again", Duration::from_secs(60), || async {
            let status = syncs.get("berth").await.ok()?.status?;
            (status.result == SyncResult::Applied).then_some(())
        })
        .await?;
        let mut inventory = syncs.get("berth").await?.status.unwrap_or_default().inventory;
        inventory.push(berth_engine::manifest::ObjectRef {
            api_version: "networking.k8s.io/v1".into(), kind: "NetworkPolicy".into(),
            namespace: Some(tenant.clone()), name: "berth-isolation".into(),
        });
        inventory.push(berth_engine::manifest::ObjectRef {
            api_version: "v1".into(), kind: "ConfigMap".into(),
            namespace: Some(tenant.clone()), name: "made-by-alice".into(),
        });
        syncs.patch_status("berth", &PatchParams::default(), &Patch::Merge(json!({"status": {"inventory": inventory}}))).await?;
        repo.write("app.yaml", APP.replace("{a: b}", "{a: c}"));
        repo.commit("a change, so the agent applies and prunes");
        eventually("the change applied", Duration::from_secs(60), || async {
            let data = config_maps.get("app").await.ok()?.data?;
            (data.get("a")? == "c").then_some(())
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(policies.get_opt("berth-isolation").await?.is_some(), "the isolation policy was pruned");
        assert!(config_maps.get_opt("made-by-alice").await?.is_some(), "alice's ConfigMap was pruned");

        // Drift: a member deletes the isolation policy (`edit` allows it), then opens it up;
        // the operator puts it back each time, long before its periodic resync.
        let as_alice = Api::<NetworkPolicy>::namespaced(alice.clone(), &tenant);
        as_alice.delete("berth-isolation", &DeleteParams::default()).await?;
        let restored = eventually("the isolation policy restored", Duration::from_secs(30), || async {
            policies.get_opt("berth-isolation").await.ok().flatten()
        })
        .await?;
        // Opening it wide is not even admitted (the tenant's policy, at admission)…
        let opened = as_alice
            .patch("berth-isolation", &PatchParams::default(), &Patch::Merge(json!({"spec": {"ingress": [{}]}})))
            .await;
        assert!(matches!(opened, Err(kube::Error::Api(ref s)) if s.message.contains("network/no-open-ingress")), "{opened:?}");
        // …a change the policy allows is admitted, and undone by the operator.
        as_alice
            .patch("berth-isolation", &PatchParams::default(), &Patch::Merge(json!({"spec": {"ingress": [{"from": [{"podSelector": {}}]}]}})))
            .await?;
        eventually("the isolation policy closed again", Duration::from_secs(30), || async {
            let policy = policies.get("berth-isolation").await.ok()?;
            let from = serde_json::to_value(&policy.spec?.ingress?).ok()?;
            (from == serde_json::to_value(&restored.spec.clone()?.ingress?).ok()?).then_some(())
        })
        .await?;
        // The agent's RoleBinding is out of an `edit` member's reach altogether.
        let binding = Api::<RoleBinding>::namespaced(alice, &tenant).delete("berth-agent", &DeleteParams::default()).await;
        assert!(matches!(binding, Err(kube::Error::Api(ref s)) if s.code == 403), "{binding:?}");
        Ok(())
    })
    .await;
}
