//! Pinned references, the way a platform team rolls a tenant forward and back: a Tenant pinned
//! to a semver range applies the highest matching tag (and says which), a per-cluster override
//! pins a tag, a commit pin rolls back, and a branch is followed again once the pin goes. The
//! repository is served over HTTPS.

use std::time::Duration;

use berth_e2e::{
    HttpsGitServer, TestOperator, TestRepo, in_namespace, install_crds, tenant_document,
};
use berth_engine::api::Tenant;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use crate::support::eventually;

const USER: &str = "git";
const PASSWORD: &str = "pins-Pa55-7e21";

fn version(v: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\ndata: {{version: '{v}'}}\n")
}

#[tokio::test]
async fn tags_semver_ranges_and_commits_pin_a_tenant_and_roll_it_back() {
    in_namespace("pins", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-t", platform.name);
        let repo = TestRepo::new();
        let mut commits = Vec::new();
        for v in ["1.0.0", "1.1.0", "2.0.0"] {
            repo.write("app.yaml", version(v));
            commits.push(repo.commit(v));
            repo.tag(&format!("v{v}"), v != "1.1.0");
        }
        repo.write("app.yaml", version("unreleased"));
        repo.commit("unreleased");
        let server = HttpsGitServer::start(repo.bare().parent().expect("parent"), USER, PASSWORD);
        let ca = std::fs::read(server.ca_pem_path())?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("git".into()),
                labels: Some([("berth.dev/tenant".to_owned(), tenant.clone())].into()),
                ..ObjectMeta::default()
            },
            data: Some(
                [
                    ("username", USER.as_bytes().to_vec()),
                    ("password", PASSWORD.as_bytes().to_vec()),
                    ("ca.crt", ca),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v)))
                .collect(),
            ),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(admin.clone(), &platform.name)
            .create(&PostParams::default(), &secret)
            .await?;

        let platform_repo = TestRepo::new();
        let declare = |pin: &str| {
            let spec = format!(
                "  source: {{url: '{}', interval: 2s, credentialsSecret: git{pin}}}\n",
                server.url("repo.git")
            );
            platform_repo.write(
                &format!("tenants/{tenant}.yaml"),
                tenant_document(&platform.name, &tenant, &spec),
            );
            platform_repo.commit(&format!("pin{pin}"));
        };
        declare(", ref: {semver: '>=1.0.0 <2.0.0'}");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_platform(
            cp,
            &platform.name,
            cache.path(),
            &platform_repo.file_url(),
        );
        let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &tenant);
        let tenants = Api::<Tenant>::all(admin.clone());
        let applied = |expected: &'static str, commit: String, resolved: &'static str| {
            let (config_maps, tenants, tenant) =
                (config_maps.clone(), tenants.clone(), tenant.clone());
            async move {
                eventually(
                    &format!("version {expected} applied"),
                    Duration::from_secs(90),
                    || async {
                        let data = config_maps.get("app").await.ok()?.data?;
                        let status = tenants.get(&tenant).await.ok()?.status?;
                        (data.get("version")? == expected
                            && status.last_applied_revision.as_deref() == Some(commit.as_str())
                            && status.resolved_ref.as_deref() == Some(resolved))
                        .then_some(())
                    },
                )
                .await
            }
        };
        // The highest tag in range (a lightweight one), and the status says which.
        applied(
            "1.1.0",
            commits[1].clone(),
            "semver >=1.0.0 <2.0.0: tag v1.1.0",
        )
        .await?;
        // This cluster's override pins a tag.
        declare(", clusters: {default: {ref: {tag: v2.0.0}}}");
        applied("2.0.0", commits[2].clone(), "tag v2.0.0").await?;
        // Rolling back is pinning an earlier commit.
        let first = commits[0].clone();
        declare(&format!(", ref: {{commit: {first}}}"));
        let rolled = format!("commit {first}");
        eventually(
            "rolled back to the first commit",
            Duration::from_secs(90),
            || async {
                let data = config_maps.get("app").await.ok()?.data?;
                let status = tenants.get(&tenant).await.ok()?.status?;
                (data.get("version")? == "1.0.0"
                    && status.resolved_ref.as_deref() == Some(rolled.as_str()))
                .then_some(())
            },
        )
        .await?;
        // No pin: the branch is followed again.
        declare("");
        eventually(
            "the branch followed again",
            Duration::from_secs(90),
            || async {
                let data = config_maps.get("app").await.ok()?.data?;
                (data.get("version")? == "unreleased").then_some(())
            },
        )
        .await?;
        Ok(())
    })
    .await;
}
