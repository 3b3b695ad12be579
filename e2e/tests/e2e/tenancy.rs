//! Two tenants onboarded from the platform repository, each agent fetching its own repository
//! over HTTPS with only its own credentials (handed over by the operator): team-a's object
//! aimed at team-b's namespace is refused and reported while team-b stays untouched, team-a's
//! agent identity gets 403 on team-b's Secrets, and team-b's repository outgrowing the quota
//! in its Tenant shows as Synced=False with reason QuotaExceeded.

use std::time::Duration;

use berth_e2e::{
    HttpsGitServer, TestOperator, TestRepo, in_namespace, install_crds, request_token,
    tenant_document,
};
use berth_engine::api::{SyncResult, TENANT_LABEL, Tenant, TenantSync, agent_namespace};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};

use crate::support::{eventually, tenant_ready};

fn config_map(name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace
        .map(|ns| format!("\n  namespace: {ns}"))
        .unwrap_or_default();
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{namespace}\ndata: {{owner: git}}\n"
    )
}

/// The condition `type_` of a Tenant, as (status, reason, message).
async fn condition(
    tenants: &Api<Tenant>,
    name: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    let status = tenants.get(name).await.ok()?.status?;
    let c = status.conditions.into_iter().find(|c| c.type_ == type_)?;
    Some((c.status, c.reason, c.message))
}

#[tokio::test]
async fn tenants_stay_apart_and_within_their_quota() {
    in_namespace("tenancy", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let (a, b) = (format!("{}-a", platform.name), format!("{}-b", platform.name));
        let repo_a = TestRepo::new();
        repo_a.write("app.yaml", config_map("app", None));
        repo_a.commit("team-a app");
        let repo_b = TestRepo::new();
        repo_b.write("app.yaml", config_map("app", None));
        let b_revision = repo_b.commit("team-b app");
        // One server and one password per tenant: an agent with the other's would be refused.
        let server_a = HttpsGitServer::start(repo_a.bare().parent().expect("parent"), "git-a", "pass-a-61c0");
        let server_b = HttpsGitServer::start(repo_b.bare().parent().expect("parent"), "git-b", "pass-b-93d7");
        let secrets = Api::<Secret>::namespaced(admin.clone(), &platform.name);
        for (name, tenant, user, password, server) in [("a-git", &a, "git-a", "pass-a-61c0", &server_a), ("b-git", &b, "git-b", "pass-b-93d7", &server_b)] {
            let ca = std::fs::read(server.ca_pem_path())?;
            let data = [("username", user.as_bytes().to_vec()), ("password", password.as_bytes().to_vec()), ("ca.crt", ca)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v)))
                .collect();
            let secret = Secret {
                // Labelled for its tenant by the platform: only then may the Tenant name it.
                metadata: ObjectMeta { name: Some(name.into()), labels: Some([(TENANT_LABEL.to_owned(), tenant.clone())].into()), ..ObjectMeta::default() },
                data: Some(data),
                ..Secret::default()
            };
            secrets.create(&PostParams::default(), &secret).await?;
        }
        let platform_repo = TestRepo::new();
        platform_repo.write(
            &format!("tenants/{a}.yaml"),
            tenant_document(&platform.name, &a, &format!("  source: {{url: '{}', interval: 2s, credentialsSecret: a-git}}\n", server_a.url("repo.git"))),
        );
        // kube-root-ca.crt and the app make two ConfigMaps; three are allowed.
        platform_repo.write(
            &format!("tenants/{b}.yaml"),
            tenant_document(&platform.name, &b, &format!("  source: {{url: '{}', interval: 2s, credentialsSecret: b-git}}\n  quota: {{configmaps: '3'}}\n", server_b.url("repo.git"))),
        );
        platform_repo.commit("onboard team-a and team-b");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_platform(cp, &platform.name, cache.path(), &platform_repo.file_url());
        let tenants = Api::<Tenant>::all(admin.clone());
        for tenant in [&a, &b] {
            tenant_ready(&admin, tenant, Duration::from_secs(120)).await?;
        }
        let b_config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &b);
        let b_app = b_config_maps.get("app").await?;

        // team-a's repository reaches into team-b's namespace: refused, reported, nothing applied.
        repo_a.write("intrude.yaml", config_map("intruder", Some(&b)));
        let intrusion = repo_a.commit("reach into team-b");
        let (_, reason, message) = eventually("team-a Synced=False", Duration::from_secs(60), || async {
            condition(&tenants, &a, "Synced").await.filter(|c| c.0 == "False")
        })
        .await?;
        assert_eq!(reason, "Refused", "{message}");
        let sync = Api::<TenantSync>::namespaced(admin.clone(), &agent_namespace(&a)).get("berth").await?.status.unwrap_or_default();
        assert_eq!(sync.result, SyncResult::Refused);
        assert_eq!(sync.last_attempted_revision.as_deref(), Some(intrusion.as_str()));
        let refused = sync.refused.iter().find(|r| r.object == format!("ConfigMap {b}/intruder"));
        let refused = refused.unwrap_or_else(|| panic!("the intruder is not named among {:?}", sync.refused));
        assert_eq!(refused.origin, "intrude.yaml (document 1)");
        assert!(b_config_maps.get_opt("intruder").await?.is_none(), "nothing reached team-b");
        let b_app_now = b_config_maps.get("app").await?;
        assert_eq!(b_app_now.metadata.resource_version, b_app.metadata.resource_version, "team-b untouched");
        let b_sync = Api::<TenantSync>::namespaced(admin.clone(), &agent_namespace(&b)).get("berth").await?.status.unwrap_or_default();
        assert_eq!(b_sync.last_applied_revision.as_deref(), Some(b_revision.as_str()));

        // team-a's agent identity cannot even list team-b's Secrets.
        let token = request_token(&admin, &agent_namespace(&a), "berth-agent").await;
        let as_agent = cp.token_client(&token).await?;
        match Api::<Secret>::namespaced(as_agent.clone(), &b).list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("team-a's agent listed team-b's Secrets: {other:?}"),
        }
        // (Its own namespace is its to manage.)
        assert!(Api::<ConfigMap>::namespaced(as_agent, &a).list(&ListParams::default()).await.is_ok());

        // team-b's repository outgrows its quota: the API server refuses, the Tenant says why.
        repo_b.write("more.yaml", format!("{}{}", config_map("more-1", None), config_map("more-2", None)));
        repo_b.commit("too many ConfigMaps");
        let (_, reason, message) = eventually("team-b Synced=False", Duration::from_secs(60), || async {
            condition(&tenants, &b, "Synced").await.filter(|c| c.0 == "False")
        })
        .await?;
        assert_eq!(reason, "QuotaExceeded", "{message}");
        assert!(message.contains("exceeded quota: berth-quota"), "{message}");
        // The agent classified it and recorded the reason; the operator only mirrors it.
        let b_sync = Api::<TenantSync>::namespaced(admin.clone(), &agent_namespace(&b)).get("berth").await?.status.unwrap_or_default();
        assert_eq!((b_sync.result, b_sync.reason.as_deref()), (SyncResult::Failed, Some("QuotaExceeded")));
        let ready = condition(&tenants, &b, "Ready").await.expect("Ready");
        assert_eq!((ready.0.as_str(), ready.1.as_str()), ("False", "NotSynced"));
        Ok(())
    })
    .await;
}
