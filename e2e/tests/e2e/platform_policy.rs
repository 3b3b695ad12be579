//! The platform repository's own policy reaches the agents through the operator: the common
//! data applies to every tenant, a tenant's own file replaces it for that tenant, a change is
//! picked up, and a revision carrying an invalid bundle is refused whole while the previous
//! policy stays active.

use std::time::Duration;

use berth_e2e::{TestOperator, TestRepo, in_namespace, install_crds, tenant_document};
use berth_engine::api::{SyncResult, TenantSync, agent_namespace};
use berth_engine::policy::config_map::DATA_KEY;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;

use crate::support::eventually;

async fn result(admin: &kube::Client, tenant: &str) -> Option<(SyncResult, String)> {
    let status = Api::<TenantSync>::namespaced(admin.clone(), &agent_namespace(tenant))
        .get_opt("berth")
        .await
        .ok()??
        .status?;
    status.last_attempted_revision.as_ref()?;
    Some((status.result, status.message))
}

#[tokio::test]
async fn the_platform_policy_is_distributed_per_tenant_and_an_invalid_bundle_is_refused() {
    in_namespace("platform-policy", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let (strict, relaxed) = (
            format!("{}-s", platform.name),
            format!("{}-r", platform.name),
        );
        // One repository for both tenants: a ConfigMap without the label `team`.
        let tenant_repo = TestRepo::new();
        tenant_repo.write(
            "config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unlabelled}\ndata: {a: b}\n",
        );
        tenant_repo.commit("unlabelled");
        let platform_repo = TestRepo::new();
        for name in [&strict, &relaxed] {
            let spec = format!(
                "  source: {{url: '{}', interval: 2s}}\n",
                tenant_repo.file_url()
            );
            platform_repo.write(
                &format!("tenants/{name}.yaml"),
                tenant_document(&platform.name, name, &spec),
            );
        }
        platform_repo.write(
            "policies/data.json",
            r#"{"params": {"profile": "restricted", "required_labels": ["team"]}}"#,
        );
        platform_repo.write(
            &format!("policies/tenants/{relaxed}.json"),
            r#"{"params": {}}"#,
        );
        platform_repo.commit("tenants and policy");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_platform(
            cp,
            &platform.name,
            cache.path(),
            &platform_repo.file_url(),
        );

        // The common data requires the label; the relaxed tenant's own data does not.
        let (refused, message) = eventually(
            "the strict tenant's result",
            Duration::from_secs(90),
            || result(&admin, &strict),
        )
        .await?;
        assert_eq!(refused, SyncResult::Refused, "{message}");
        // Pod Security admission follows each tenant's profile.
        let namespaces = Api::<Namespace>::all(admin.clone());
        for (tenant, level) in [(&strict, "restricted"), (&relaxed, "baseline")] {
            eventually(
                &format!("{tenant}'s namespace to enforce {level}"),
                Duration::from_secs(30),
                || async {
                    let labels = namespaces.get(tenant).await.ok()?.metadata.labels?;
                    (labels.get("pod-security.kubernetes.io/enforce")? == level).then_some(())
                },
            )
            .await?;
        }
        let sync = Api::<TenantSync>::namespaced(admin.clone(), &agent_namespace(&strict))
            .get("berth")
            .await?
            .status
            .unwrap_or_default();
        assert!(
            sync.refused.iter().any(|r| r.rule == "required-labels"),
            "{:?}",
            sync.refused
        );
        let (applied, message) = eventually(
            "the relaxed tenant's result",
            Duration::from_secs(90),
            || result(&admin, &relaxed),
        )
        .await?;
        assert_eq!(applied, SyncResult::Applied, "{message}");

        // The tenant's copy lives where only the platform writes; a platform change reaches it.
        let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &platform.name);
        let copy = config_maps.get(&format!("berth-policy-{strict}")).await?;
        assert!(copy.data.unwrap_or_default()[DATA_KEY].contains("required_labels"));
        platform_repo.write("policies/data.json", r#"{"params": {}}"#);
        platform_repo.commit("drop the label requirement");
        eventually(
            "the strict tenant to apply",
            Duration::from_secs(60),
            || async {
                result(&admin, &strict)
                    .await
                    .filter(|(r, _)| *r == SyncResult::Applied)
            },
        )
        .await?;

        // An invalid bundle: the whole revision is refused, the active policy stays.
        let before = config_maps.get("berth-policy").await?;
        platform_repo.write("policies/bundle.tar.gz", "not a bundle");
        platform_repo.write(
            "policies/data.json",
            r#"{"params": {"profile": "restricted", "required_labels": ["other"]}}"#,
        );
        platform_repo.commit("broken bundle");
        let state = eventually("the refusal", Duration::from_secs(30), || async {
            let data = config_maps.get_opt("berth-platform").await.ok()??.data?;
            data.get("message")
                .filter(|m| m.starts_with("revision refused"))
                .cloned()
        })
        .await?;
        assert!(state.contains("policies/bundle.tar.gz"), "{state}");
        let after = config_maps.get("berth-policy").await?;
        assert_eq!(
            after.metadata.resource_version, before.metadata.resource_version,
            "the active policy changed"
        );
        let copy = config_maps.get(&format!("berth-policy-{strict}")).await?;
        assert!(!copy.data.unwrap_or_default()[DATA_KEY].contains("other"));
        Ok(())
    })
    .await;
}
