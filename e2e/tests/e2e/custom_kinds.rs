//! Custom resource kinds the platform allows: resolved through the API server's discovery, the
//! agent's Role names exactly their resources, a tenant allowed the kind applies and prunes it,
//! one not allowed is refused, and a kind whose CustomResourceDefinition is missing shows as a
//! condition on the Tenant until the definition arrives.

use std::time::Duration;

use berth_e2e::{TestOperator, TestRepo, in_namespace, install_crds, tenant_document};
use berth_engine::api::{SyncResult, Tenant, TenantSync, agent_namespace};
use k8s_openapi::api::rbac::v1::Role;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::json;

use crate::support::{eventually, tenant_ready};

/// A namespaced CRD `<plural>.<group>` of kind `kind`, established.
async fn install_crd(
    admin: &Client,
    group: &str,
    kind: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let plural = format!("{}s", kind.to_lowercase());
    let name = format!("{plural}.{group}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    }))?;
    let crds = Api::<CustomResourceDefinition>::all(admin.clone());
    crds.patch(
        &name,
        &PatchParams::apply("berth-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    eventually(
        &format!("CRD {name} established"),
        Duration::from_secs(30),
        || async {
            let status = crds.get(&name).await.ok()?.status?;
            status
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn allowed_custom_kinds_apply_and_prune_and_missing_ones_wait() {
    in_namespace("custom-kinds", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let group = format!("{}.example.com", platform.name);
        install_crd(&admin, &group, "Widget").await?;
        let widget = format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w}}\nspec: {{size: 3}}\n"
        );
        let (allowed, default, waiting) = (
            format!("{}-a", platform.name),
            format!("{}-d", platform.name),
            format!("{}-w", platform.name),
        );
        let repo = TestRepo::new();
        repo.write("widget.yaml", &widget);
        repo.write(
            "app.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n",
        );
        repo.commit("a widget");
        let platform_repo = TestRepo::new();
        let source = format!("  source: {{url: '{}', interval: 1s}}\n", repo.file_url());
        for (tenant, kinds) in [
            (
                &allowed,
                format!("  allowedKinds: [ConfigMap, {group}/Widget]\n"),
            ),
            (&default, String::new()),
            (
                &waiting,
                format!("  allowedKinds: [ConfigMap, {group}/Gadget]\n"),
            ),
        ] {
            platform_repo.write(
                &format!("tenants/{tenant}.yaml"),
                tenant_document(&platform.name, tenant, &format!("{source}{kinds}")),
            );
        }
        platform_repo.commit("three tenants");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_platform(
            cp,
            &platform.name,
            cache.path(),
            &platform_repo.file_url(),
        );

        // Allowed: applied, and the agent's Role names the resource discovery gave.
        tenant_ready(&admin, &allowed, Duration::from_secs(120)).await?;
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&group, "v1", "Widget"),
            "widgets",
        );
        let widgets = Api::<DynamicObject>::namespaced_with(admin.clone(), &allowed, &resource);
        assert_eq!(widgets.get("w").await?.data["spec"]["size"], 3);
        let role = Api::<Role>::namespaced(admin.clone(), &allowed)
            .get("berth-agent")
            .await?;
        let rules = serde_json::to_value(role.rules)?;
        assert!(
            rules
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["apiGroups"] == json!([group]) && r["resources"] == json!(["widgets"])),
            "{rules}"
        );

        // Not allowed (the default kinds): refused, named.
        let syncs = Api::<TenantSync>::namespaced(admin.clone(), &agent_namespace(&default));
        let refused = eventually(
            "the default tenant's refusal",
            Duration::from_secs(120),
            || async {
                let status = syncs.get("berth").await.ok()?.status?;
                (status.result == SyncResult::Refused).then_some(status.refused)
            },
        )
        .await?;
        assert!(
            refused
                .iter()
                .any(|r| r.rule == "KindNotAllowed" && r.object == format!("Widget {default}/w")),
            "{refused:?}"
        );

        // A kind the cluster does not serve: the Tenant says which, and waits.
        let tenants = Api::<Tenant>::all(admin.clone());
        let condition = eventually(
            "the waiting tenant's condition",
            Duration::from_secs(60),
            || async {
                let status = tenants.get(&waiting).await.ok()?.status?;
                status
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "Provisioned" && c.status == "False")
            },
        )
        .await?;
        assert_eq!(condition.reason, "KindNotServed", "{condition:?}");
        assert!(
            condition.message.contains(&format!("{group}/Gadget")),
            "{condition:?}"
        );

        // Pruned when the repository drops it.
        repo.remove("widget.yaml");
        repo.commit("no more widget");
        eventually("the widget pruned", Duration::from_secs(60), || async {
            widgets.get_opt("w").await.ok()?.is_none().then_some(())
        })
        .await?;

        // The missing definition arrives: the waiting tenant is provisioned.
        install_crd(&admin, &group, "Gadget").await?;
        eventually(
            "the waiting tenant provisioned",
            Duration::from_secs(90),
            || async {
                let status = tenants.get(&waiting).await.ok()?.status?;
                status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Provisioned" && c.status == "True")
                    .then_some(())
            },
        )
        .await?;
        let crds = Api::<CustomResourceDefinition>::all(admin.clone());
        for plural in ["widgets", "gadgets"] {
            crds.delete(&format!("{plural}.{group}"), &Default::default())
                .await?;
        }
        Ok(())
    })
    .await;
}
