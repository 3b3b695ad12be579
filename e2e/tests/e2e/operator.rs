//! The operator on the real API server: a Tenant gets its berth and `Provisioned=True`;
//! deleting it offboards it through the finalizer (namespaces deleted, or kept when annotated);
//! the platform repository's tenants are onboarded by a commit, a revision with a problem is
//! refused whole, and removing a tenant from Git offboards it.

use std::process::Command;
use std::time::Duration;

use berth_e2e::{
    E2E_LABEL, TestOperator, TestRepo, agent_processes, in_namespace, install_crds, tenant_document,
};
use berth_engine::api::{TENANT_LABEL, Tenant, agent_namespace};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{eventually, tenant_ready};

#[tokio::test]
async fn tenants_are_provisioned_and_offboarded() {
    in_namespace("operator", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start(cp, &platform.name, cache.path(), &[]);
        let tenants = Api::<Tenant>::all(admin.clone());
        let name = format!("{}-t", platform.name);
        let kept = format!("{}-k", platform.name);
        for (tenant, annotations) in [(&name, json!({})), (&kept, json!({"berth.dev/keep-namespaces": "true"}))] {
            let object: Tenant = serde_json::from_value(json!({
                "apiVersion": "berth.dev/v1alpha1", "kind": "Tenant",
                "metadata": {"name": tenant, "annotations": annotations, "labels": {E2E_LABEL: platform.name}},
                "spec": {"source": {"url": "https://git.example.com/t.git"}, "quota": {"pods": "5"}},
            }))?;
            tenants.create(&PostParams::default(), &object).await?;
        }

        let provisioned = |tenant: String| {
            let tenants = tenants.clone();
            async move {
                let t = tenants.get(&tenant).await.ok()?;
                t.status?.conditions.into_iter().find(|c| c.type_ == "Provisioned" && c.status == "True")
            }
        };
        let condition = eventually("Provisioned=True", Duration::from_secs(60), || provisioned(name.clone())).await?;
        assert_eq!(condition.reason, "Provisioned");
        eventually("the kept tenant", Duration::from_secs(60), || provisioned(kept.clone())).await?;
        let namespace = Api::<Namespace>::all(admin.clone()).get(&name).await?;
        assert_eq!(namespace.metadata.labels.unwrap_or_default().get(TENANT_LABEL), Some(&name));
        assert!(Api::<ServiceAccount>::namespaced(admin.clone(), &agent_namespace(&name)).get_opt("berth-agent").await?.is_some());
        assert!(Api::<ResourceQuota>::namespaced(admin.clone(), &name).get_opt("berth-quota").await?.is_some());
        let finalizers = tenants.get(&name).await?.metadata.finalizers.unwrap_or_default();
        assert_eq!(finalizers, ["berth.dev/offboard"]);

        // A changed spec: a new namespace appears; a dropped quota and namespace are pruned,
        // and nothing the tenant itself deployed is touched.
        let extra = format!("{name}-x");
        let patch = |spec: serde_json::Value| {
            let tenants = tenants.clone();
            let name = name.clone();
            async move { tenants.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))).await }
        };
        patch(json!({"namespaces": [name, extra]})).await?;
        let namespaces = Api::<Namespace>::all(admin.clone());
        eventually("the added namespace", Duration::from_secs(60), || async {
            namespaces.get_opt(&extra).await.ok().flatten()
        })
        .await?;
        let own = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("deployed-by-the-tenant".into()),
                labels: Some([(TENANT_LABEL.to_owned(), name.clone())].into()),
                ..Default::default()
            },
            ..ConfigMap::default()
        };
        Api::<ConfigMap>::namespaced(admin.clone(), &name).create(&PostParams::default(), &own).await?;
        patch(json!({"namespaces": [name], "quota": null})).await?;
        eventually("the dropped quota and namespace to be pruned", Duration::from_secs(60), || async {
            let quota = Api::<ResourceQuota>::namespaced(admin.clone(), &name).get_opt("berth-quota").await.ok()?;
            let ns = namespaces.get_opt(&extra).await.ok()?;
            let gone = quota.is_none() && ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some());
            gone.then_some(())
        })
        .await?;
        assert!(Api::<ServiceAccount>::namespaced(admin.clone(), &agent_namespace(&name)).get_opt("berth-agent").await?.is_some());
        assert!(Api::<ConfigMap>::namespaced(admin.clone(), &name).get_opt("deployed-by-the-tenant").await?.is_some());

        // Offboarding: the namespaces go (unless kept), then the Tenant itself.
        for tenant in [&name, &kept] {
            tenants.delete(tenant, &DeleteParams::default()).await?;
        }
        eventually("the tenant and its namespace to be gone", Duration::from_secs(120), || async {
            let gone = matches!(tenants.get_opt(&name).await, Ok(None))
                && matches!(namespaces.get_opt(&name).await, Ok(None))
                && matches!(namespaces.get_opt(&agent_namespace(&name)).await, Ok(None));
            gone.then_some(())
        })
        .await?;
        eventually("the kept tenant to be gone", Duration::from_secs(60), || async {
            matches!(tenants.get_opt(&kept).await, Ok(None)).then_some(())
        })
        .await?;
        let kept_namespace = namespaces.get(&kept).await?;
        assert!(kept_namespace.metadata.deletion_timestamp.is_none(), "kept namespace is not deleted");
        // Its agent is gone, its reports stay with its agent namespace.
        let kept_home = agent_namespace(&kept);
        assert!(namespaces.get(&kept_home).await?.metadata.deletion_timestamp.is_none());
        assert!(Api::<ServiceAccount>::namespaced(admin.clone(), &kept_home).get_opt("berth-agent").await?.is_none());
        for ns in [&kept, &kept_home] {
            namespaces.delete(ns, &DeleteParams::default()).await?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn the_platform_repository_onboards_and_offboards_tenants() {
    in_namespace("platform-sync", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-a", platform.name);
        let document = |name: &str, namespace: &str| {
            tenant_document(&platform.name, name, &format!("  namespaces: [{namespace}]\n  source: {{url: 'https://git.example.com/{name}.git'}}\n"))
        };
        let repo = TestRepo::new();
        repo.write(&format!("tenants/{tenant}.yaml"), document(&tenant, &tenant));
        let first = repo.commit("onboard");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start(cp, &platform.name, cache.path(), &["--platform-repo", &repo.file_url(), "--platform-interval", "1s"]);
        let tenants = Api::<Tenant>::all(admin.clone());
        let namespaces = Api::<Namespace>::all(admin.clone());
        eventually("the tenant's namespace from the platform repo", Duration::from_secs(60), || async {
            namespaces.get_opt(&tenant).await.ok().flatten()
        })
        .await?;
        let states = Api::<ConfigMap>::namespaced(admin.clone(), &platform.name);
        let state = |key: &'static str| {
            let states = states.clone();
            async move { states.get_opt("berth-platform").await.ok().flatten()?.data?.get(key).cloned() }
        };
        eventually("the applied revision to be recorded", Duration::from_secs(30), || async {
            state("revision").await.filter(|r| *r == first)
        })
        .await?;

        // A revision with a problem is refused whole: the second tenant is not created.
        let intruder = format!("{}-b", platform.name);
        repo.write(&format!("tenants/{intruder}.yaml"), document(&intruder, &tenant));
        repo.commit("claims a taken namespace");
        let message = eventually("the refusal", Duration::from_secs(30), || async {
            state("message").await.filter(|m| m.starts_with("revision refused"))
        })
        .await?;
        assert!(message.contains(&format!("namespace {tenant} is already claimed by tenant {tenant}")), "{message}");
        assert!(tenants.get_opt(&intruder).await?.is_none());
        assert_eq!(state("revision").await, Some(first));

        // Removing the tenant from Git offboards it.
        repo.remove(&format!("tenants/{intruder}.yaml"));
        repo.remove(&format!("tenants/{tenant}.yaml"));
        repo.commit("offboard");
        eventually("the tenant and its namespace to be gone", Duration::from_secs(120), || async {
            let gone = matches!(tenants.get_opt(&tenant).await, Ok(None))
                && matches!(namespaces.get_opt(&tenant).await, Ok(None));
            gone.then_some(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_platform_commit_onboards_a_tenant_whose_agent_applies_its_repository() {
    in_namespace("platform-agents", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-a", platform.name);
        let tenant_repo = TestRepo::new();
        tenant_repo.write(
            "config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\ndata: {from: git}\n",
        );
        let revision = tenant_repo.commit("hello");
        let platform_repo = TestRepo::new();
        let spec = format!(
            "  source: {{url: '{}', interval: 5s}}\n",
            tenant_repo.file_url()
        );
        let document =
            |extra: &str| tenant_document(&platform.name, &tenant, &format!("{spec}{extra}"));
        platform_repo.write(&format!("tenants/{tenant}.yaml"), document(""));
        platform_repo.commit("onboard");
        let cache = tempfile::tempdir()?;
        let operator = TestOperator::start_platform(
            cp,
            &platform.name,
            cache.path(),
            &platform_repo.file_url(),
        );
        // Platform commit → Tenant → namespace, RBAC → agent → the tenant's repository applied.
        let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &tenant);
        let applied = eventually(
            "the tenant's repository applied by its agent",
            Duration::from_secs(90),
            || async { config_maps.get_opt("hello").await.ok().flatten() },
        )
        .await?;
        assert_eq!(
            applied
                .data
                .unwrap_or_default()
                .get("from")
                .map(String::as_str),
            Some("git")
        );
        // The agent records the revision in its TenantSync, in its own namespace.
        let syncs = Api::<berth_engine::api::TenantSync>::namespaced(
            admin.clone(),
            &agent_namespace(&tenant),
        );
        eventually(
            "the applied revision recorded",
            Duration::from_secs(30),
            || async {
                let applied = syncs
                    .get("berth")
                    .await
                    .ok()?
                    .status?
                    .last_applied_revision?;
                (applied == revision).then_some(())
            },
        )
        .await?;
        // The Tenant tells the story: Ready, with the agent's revision.
        let status = tenant_ready(&admin, &tenant, Duration::from_secs(60)).await?;
        assert_eq!(status.last_applied_revision, Some(revision));
        let synced = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Synced")
            .map(|c| c.reason.clone());
        assert_eq!(synced.as_deref(), Some("Applied"));
        let compliant = status
            .conditions
            .iter()
            .find(|c| c.type_ == "PolicyCompliant")
            .map(|c| c.status.clone());
        assert_eq!(compliant.as_deref(), Some("True"));

        let agents = agent_processes(&tenant);
        assert_eq!(agents.len(), 1, "one agent runs for the tenant");

        // Its token is replaced while it runs (the same process), and it goes on applying.
        let token_file = cache.path().join(format!("agents/{tenant}/token"));
        let token = std::fs::read_to_string(&token_file)?;
        eventually("a fresh token", Duration::from_secs(30), || async {
            std::fs::read_to_string(&token_file)
                .ok()
                .filter(|t| *t != token)
        })
        .await?;
        assert_eq!(agent_processes(&tenant), agents, "the agent kept running");
        tenant_repo.write(
            "config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\ndata: {from: refreshed}\n",
        );
        tenant_repo.commit("after the refresh");
        eventually(
            "the commit after the refresh",
            Duration::from_secs(30),
            || async {
                let cm = config_maps.get_opt("hello").await.ok()??;
                (cm.data?.get("from")?.as_str() == "refreshed").then_some(())
            },
        )
        .await?;

        // A crashed agent is restarted.
        Command::new("kill")
            .args(["-KILL", &agents[0].0.to_string()])
            .status()?;
        let restarted = eventually(
            "the agent to be restarted",
            Duration::from_secs(30),
            || async {
                let now = agent_processes(&tenant);
                (now.len() == 1 && now[0].0 != agents[0].0).then_some(now)
            },
        )
        .await?;
        assert_eq!(restarted[0].1, operator.pid(), "restarted by the operator");
        assert_eq!(
            operator.metric("berth_operator_agent_restarts_total").await,
            1.0
        );

        // Suspended: its agent stops, its berth and what it applied stay; resumed: it runs again.
        platform_repo.write(
            &format!("tenants/{tenant}.yaml"),
            document("  suspend: true\n"),
        );
        platform_repo.commit("suspend");
        eventually(
            "the suspended tenant's agent to stop",
            Duration::from_secs(30),
            || async { agent_processes(&tenant).is_empty().then_some(()) },
        )
        .await?;
        assert!(
            config_maps.get_opt("hello").await?.is_some(),
            "a suspended tenant keeps its objects"
        );
        platform_repo.write(&format!("tenants/{tenant}.yaml"), document(""));
        platform_repo.commit("resume");
        eventually(
            "the resumed tenant's agent",
            Duration::from_secs(30),
            || async { (agent_processes(&tenant).len() == 1).then_some(()) },
        )
        .await?;

        // Removing it from the platform repository stops its agent and deletes its namespace.
        platform_repo.remove(&format!("tenants/{tenant}.yaml"));
        platform_repo.commit("offboard");
        let namespaces = Api::<Namespace>::all(admin.clone());
        eventually(
            "the namespace to be gone",
            Duration::from_secs(120),
            || async { matches!(namespaces.get_opt(&tenant).await, Ok(None)).then_some(()) },
        )
        .await?;
        eventually("the agent to stop", Duration::from_secs(30), || async {
            agent_processes(&tenant).is_empty().then_some(())
        })
        .await?;
        Ok(())
    })
    .await;
}
