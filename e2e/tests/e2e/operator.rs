//! The operator's Tenant controller on the real API server: a Tenant gets its berth and
//! `Provisioned=True`; deleting it offboards it through the finalizer (namespaces deleted, or
//! kept when annotated).

use std::process::Command;
use std::time::Duration;

use berth_e2e::{BackgroundProcess, binary, in_namespace, install_crds};
use berth_engine::api::Tenant;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::support::eventually;

#[tokio::test]
async fn tenants_are_provisioned_and_offboarded() {
    in_namespace("operator", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let _operator = BackgroundProcess(
            Command::new(binary("berth-operator"))
                .args(["run", "--namespace", &platform.name])
                .env_clear()
                .env("KUBECONFIG", &cp.kubeconfig)
                .env("RUST_LOG", "info")
                .spawn()?,
        );
        let tenants = Api::<Tenant>::all(admin.clone());
        let name = format!("{}-t", platform.name);
        let kept = format!("{}-k", platform.name);
        for (tenant, annotations) in [(&name, json!({})), (&kept, json!({"berth.dev/keep-namespaces": "true"}))] {
            let object: Tenant = serde_json::from_value(json!({
                "apiVersion": "berth.dev/v1alpha1", "kind": "Tenant",
                "metadata": {"name": tenant, "annotations": annotations},
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
        assert_eq!(namespace.metadata.labels.unwrap_or_default().get("berth.dev/tenant"), Some(&name));
        assert!(Api::<ServiceAccount>::namespaced(admin.clone(), &name).get_opt("berth-agent").await?.is_some());
        assert!(Api::<ResourceQuota>::namespaced(admin.clone(), &name).get_opt("berth-quota").await?.is_some());
        let finalizers = tenants.get(&name).await?.metadata.finalizers.unwrap_or_default();
        assert_eq!(finalizers, ["berth.dev/offboard"]);

        // Offboarding: the namespaces go (unless kept), then the Tenant itself.
        for tenant in [&name, &kept] {
            tenants.delete(tenant, &DeleteParams::default()).await?;
        }
        let namespaces = Api::<Namespace>::all(admin.clone());
        eventually("the tenant and its namespace to be gone", Duration::from_secs(120), || async {
            let gone = matches!(tenants.get_opt(&name).await, Ok(None))
                && matches!(namespaces.get_opt(&name).await, Ok(None));
            gone.then_some(())
        })
        .await?;
        eventually("the kept tenant to be gone", Duration::from_secs(60), || async {
            matches!(tenants.get_opt(&kept).await, Ok(None)).then_some(())
        })
        .await?;
        let kept_namespace = namespaces.get(&kept).await?;
        assert!(kept_namespace.metadata.deletion_timestamp.is_none(), "kept namespace is not deleted");
        namespaces.delete(&kept, &DeleteParams::default()).await?;
        Ok(())
    })
    .await;
}
