//! The platform side: with a platform repository, only the Tenants it declares are provisioned
//! (one created directly in the cluster gets a condition saying so, and nothing else); without
//! one, a Tenant is still validated on its own (no `kube-system`, no namespace another Tenant
//! holds) and deleting a refused one deletes nothing it claimed; and a Tenant may only be
//! handed a credentials Secret the platform labelled for it.

use std::time::Duration;

use berth_e2e::{E2E_LABEL, TestOperator, TestRepo, in_namespace, install_crds, tenant_document};
use berth_engine::api::{Condition, TENANT_LABEL, Tenant, agent_namespace};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::Role;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::eventually;

async fn provisioned(tenants: &Api<Tenant>, name: &str) -> Option<Condition> {
    tenants
        .get(name)
        .await
        .ok()?
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Provisioned")
}

/// A Tenant applied directly (not from a platform repository), for the test's operator.
fn direct(platform: &str, name: &str, spec: serde_json::Value) -> Tenant {
    serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "labels": {E2E_LABEL: platform}},
        "spec": spec,
    }))
    .expect("Tenant")
}

#[tokio::test]
async fn only_declared_tenants_and_labelled_credentials_are_honoured() {
    in_namespace("platform-only", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let (declared, other) = (format!("{}-d", platform.name), format!("{}-x", platform.name));
        let repo = TestRepo::new();
        repo.write("app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n");
        repo.commit("app");
        // The declared tenant names a credentials Secret labelled for another tenant.
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("shared-git".into()),
                labels: Some([(TENANT_LABEL.to_owned(), other.clone())].into()),
                ..ObjectMeta::default()
            },
            data: Some([("username", "u"), ("password", "p")].into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec()))).collect()),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(admin.clone(), &platform.name).create(&PostParams::default(), &secret).await?;
        let platform_repo = TestRepo::new();
        let spec = format!("  source: {{url: '{}', interval: 2s, credentialsSecret: shared-git}}\n", repo.file_url());
        platform_repo.write(&format!("tenants/{declared}.yaml"), tenant_document(&platform.name, &declared, &spec));
        platform_repo.commit("onboard");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_platform(cp, &platform.name, cache.path(), &platform_repo.file_url());
        let tenants = Api::<Tenant>::all(admin.clone());

        // Not labelled for it: refused, naming the Secret and the label.
        let refused = eventually("the credentials refused", Duration::from_secs(60), || async {
            provisioned(&tenants, &declared).await.filter(|c| c.status == "False")
        })
        .await?;
        assert!(refused.message.contains("credentials Secret shared-git") && refused.message.contains("berth.dev/tenant="), "{refused:?}");

        // A Tenant created in the cluster, claiming kube-system: not declared, so nothing.
        let intruder = direct(&platform.name, &other, json!({"namespaces": ["kube-system"], "source": {"url": "https://git.example.com/x.git"}}));
        tenants.patch(&other, &PatchParams::apply("someone").force(), &Patch::Apply(&intruder)).await?;
        let condition = eventually("the undeclared Tenant's condition", Duration::from_secs(60), || async {
            provisioned(&tenants, &other).await
        })
        .await?;
        assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("False", "NotDeclared"), "{condition:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(Api::<Role>::namespaced(admin.clone(), "kube-system").get_opt("berth-agent").await?.is_none());
        assert!(Api::<Namespace>::all(admin.clone()).get_opt(&agent_namespace(&other)).await?.is_none());

        // The platform labels the Secret for the declared tenant: it is handed over.
        Api::<Secret>::namespaced(admin.clone(), &platform.name)
            .patch("shared-git", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {TENANT_LABEL: declared}}})))
            .await?;
        eventually("the declared tenant provisioned", Duration::from_secs(60), || async {
            provisioned(&tenants, &declared).await.filter(|c| c.status == "True")
        })
        .await?;
        tenants.delete(&other, &Default::default()).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn without_a_platform_repository_a_tenant_is_still_validated() {
    in_namespace("direct-tenant", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let name = format!("{}-k", platform.name);
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start(cp, &platform.name, cache.path(), &["--agent-mode", "off"]);
        let tenants = Api::<Tenant>::all(admin.clone());
        let claim = direct(&platform.name, &name, json!({"namespaces": ["kube-system"], "source": {"url": "https://git.example.com/x.git"}}));
        tenants.patch(&name, &PatchParams::apply("someone").force(), &Patch::Apply(&claim)).await?;
        let condition = eventually("the invalid Tenant's condition", Duration::from_secs(60), || async {
            provisioned(&tenants, &name).await
        })
        .await?;
        assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("False", "InvalidSpec"), "{condition:?}");
        assert!(condition.message.contains("namespace kube-system is reserved"), "{condition:?}");
        assert!(Api::<Role>::namespaced(admin.clone(), "kube-system").get_opt("berth-agent").await?.is_none());

        // A valid one is provisioned as before.
        let fine = format!("{}-f", platform.name);
        let valid = direct(&platform.name, &fine, json!({"source": {"url": "https://git.example.com/f.git"}}));
        tenants.patch(&fine, &PatchParams::apply("someone").force(), &Patch::Apply(&valid)).await?;
        eventually("the valid Tenant provisioned", Duration::from_secs(60), || async {
            provisioned(&tenants, &fine).await.filter(|c| c.status == "True")
        })
        .await?;

        // A later Tenant claiming its namespace is refused; deleted, it takes nothing with it
        // (nor does the one that claimed kube-system).
        let late = format!("{}-l", platform.name);
        let claim = direct(&platform.name, &late, json!({"namespaces": [fine], "source": {"url": "https://git.example.com/l.git"}}));
        tenants.patch(&late, &PatchParams::apply("someone").force(), &Patch::Apply(&claim)).await?;
        let condition = eventually("the claimant refused", Duration::from_secs(60), || async {
            provisioned(&tenants, &late).await.filter(|c| c.status == "False")
        })
        .await?;
        assert!(condition.message.contains(&fine), "{condition:?}");
        for tenant in [&name, &late] {
            tenants.delete(tenant, &Default::default()).await?;
        }
        eventually("the refused Tenants gone", Duration::from_secs(60), || async {
            let gone = matches!(tenants.get_opt(&name).await, Ok(None)) && matches!(tenants.get_opt(&late).await, Ok(None));
            gone.then_some(())
        })
        .await?;
        let namespace = Api::<Namespace>::all(admin.clone()).get(&fine).await?;
        assert!(namespace.metadata.deletion_timestamp.is_none(), "the claimed namespace is being deleted");
        tenants.delete(&fine, &Default::default()).await?;
        Ok(())
    })
    .await;
}
