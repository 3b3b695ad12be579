//! A real public application as tenants commit it: podinfo as its upstream kustomize base and
//! as its Helm chart. For each, two tenants onboarded from a platform repository follow one
//! repository: under the default policy it is applied and the restricted-profile findings are
//! listed as warnings in the tenant's PolicyReport, each naming where it came from; under
//! `restricted` the same repository is refused, each rule named in the TenantSync, and nothing
//! is applied. The chart is rendered with production values chosen for this cluster and a
//! release name of the platform's choosing.

use std::path::Path;
use std::time::Duration;

use berth_e2e::{
    ControlPlane, TestOperator, TestRepo, in_namespace, install_crds, tenant_document,
};
use berth_engine::api::{SyncResult, TenantSync, agent_namespace};
use berth_engine::report::PolicyReport;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{DynamicObject, ListParams};

use crate::support::{eventually, tenant_ready};

/// The rules the upstream podinfo Deployment (chart and kustomize base alike) breaks under the
/// restricted profile.
const RESTRICTED_RULES: [&str; 4] = [
    "no-privilege-escalation",
    "run-as-non-root",
    "require-seccomp",
    "restricted-capabilities",
];

/// Writes every file below `dir` into `repo` under `prefix`.
fn copy_tree(repo: &TestRepo, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            copy_tree(repo, &path, &format!("{prefix}{name}/"));
        } else {
            repo.write(&format!("{prefix}{name}"), std::fs::read(&path).unwrap());
        }
    }
}

async fn sync_status(
    admin: &kube::Client,
    tenant: &str,
) -> Option<berth_engine::api::TenantSyncStatus> {
    let status = Api::<TenantSync>::namespaced(admin.clone(), &agent_namespace(tenant))
        .get_opt("berth")
        .await
        .ok()??
        .status?;
    status.last_attempted_revision.as_ref()?;
    Some(status)
}

/// Onboards `relaxed` (default policy) and `strict` (restricted), each `(name, source spec)`,
/// from a platform repository through an operator, and waits until `relaxed` has applied its
/// revision. Returns what must live as long as the test: the operator and its cache.
async fn onboard(
    cp: &'static ControlPlane,
    admin: &kube::Client,
    platform: &str,
    relaxed: (&str, &str),
    strict: (&str, &str),
) -> Result<(TestOperator, tempfile::TempDir), Box<dyn std::error::Error + Send + Sync>> {
    let platform_repo = TestRepo::new();
    for (tenant, spec) in [relaxed, strict] {
        platform_repo.write(
            &format!("tenants/{tenant}.yaml"),
            tenant_document(platform, tenant, spec),
        );
    }
    platform_repo.write(
        &format!("policies/tenants/{}.json", strict.0),
        r#"{"params": {"profile": "restricted"}}"#,
    );
    platform_repo.commit("two tenants of one application");
    let cache = tempfile::tempdir()?;
    let operator =
        TestOperator::start_platform(cp, platform, cache.path(), &platform_repo.file_url());
    tenant_ready(admin, relaxed.0, Duration::from_secs(120)).await?;
    let status = sync_status(admin, relaxed.0).await.unwrap_or_default();
    assert_eq!(status.result, SyncResult::Applied, "{}", status.message);
    Ok((operator, cache))
}

/// The tenant's PolicyReport, once written.
async fn policy_report(admin: &kube::Client, tenant: &str) -> Result<PolicyReport, String> {
    let reports = Api::<DynamicObject>::namespaced_with(
        admin.clone(),
        &agent_namespace(tenant),
        &berth_engine::report::resource(),
    );
    eventually("the PolicyReport", Duration::from_secs(30), || async {
        let item = reports
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()?;
        serde_json::from_value(serde_json::to_value(item).ok()?).ok()
    })
    .await
}

/// Each restricted rule is a warning about `object` declared at `origin`, and nothing failed.
fn assert_warned(report: &PolicyReport, object: &str, origin: &str) {
    for rule in RESTRICTED_RULES {
        let warning = report.results.iter().find(|r| {
            r.rule == rule && r.result == "warn" && r.resources.iter().any(|o| o.name == object)
        });
        let warning = warning.unwrap_or_else(|| panic!("{rule}: {:?}", report.results));
        assert_eq!(
            warning.properties.get("origin").map(String::as_str),
            Some(origin),
            "{warning:?}"
        );
    }
    assert!(report.summary.warn >= 4, "{:?}", report.summary);
    assert_eq!(report.summary.fail, 0, "{:?}", report.summary);
}

/// The strict tenant's revision is refused with each restricted rule named for its podinfo
/// Deployment `object` declared at `origin`, and that Deployment was not applied.
async fn assert_refused(
    admin: &kube::Client,
    strict: &str,
    object: &str,
    origin: &str,
) -> Result<(), String> {
    let status = eventually(
        "the strict tenant's result",
        Duration::from_secs(120),
        || async {
            sync_status(admin, strict)
                .await
                .filter(|s| s.result == SyncResult::Refused)
        },
    )
    .await?;
    for rule in RESTRICTED_RULES {
        let refused = status.refused.iter().find(|r| r.rule == rule);
        let refused = refused.unwrap_or_else(|| panic!("{rule}: {:?}", status.refused));
        assert_eq!(refused.object, format!("Deployment {strict}/{object}"));
        assert_eq!(refused.origin, origin);
    }
    let applied = Api::<Deployment>::namespaced(admin.clone(), strict)
        .get_opt(object)
        .await
        .map_err(|e| e.to_string())?;
    assert!(applied.is_none(), "a refused revision was applied");
    Ok(())
}

#[tokio::test]
async fn podinfo_as_kustomize_applies_with_warnings_by_default_and_is_refused_under_restricted() {
    in_namespace("podinfo", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let (relaxed, strict) = (
            format!("{}-d", platform.name),
            format!("{}-s", platform.name),
        );
        let repo = TestRepo::new();
        let base = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../engine/tests/fixtures/podinfo-kustomize");
        copy_tree(&repo, &base, "apps/podinfo/");
        repo.commit("podinfo, its upstream kustomize base");
        let spec = format!(
            "  source: {{url: '{}', interval: 2s, path: apps/podinfo}}\n",
            repo.file_url()
        );
        let _running = onboard(
            cp,
            &admin,
            &platform.name,
            (&relaxed, &spec),
            (&strict, &spec),
        )
        .await?;
        Api::<Deployment>::namespaced(admin.clone(), &relaxed)
            .get("podinfo")
            .await?;
        Api::<HorizontalPodAutoscaler>::namespaced(admin.clone(), &relaxed)
            .get("podinfo")
            .await?;
        let origin = "kustomize build apps/podinfo (document 2)";
        assert_warned(&policy_report(&admin, &relaxed).await?, "podinfo", origin);
        assert_refused(&admin, &strict, "podinfo", origin).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn podinfo_as_a_helm_chart_applies_with_warnings_by_default_and_is_refused_under_restricted()
{
    in_namespace("helm", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let (relaxed, strict) = (
            format!("{}-d", platform.name),
            format!("{}-s", platform.name),
        );
        let repo = TestRepo::new();
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/podinfo-chart");
        copy_tree(&repo, &chart, "apps/podinfo/");
        repo.write(
            "clusters/default/podinfo.yaml",
            "hpa:\n  enabled: true\n  maxReplicas: 4\n",
        );
        repo.commit("podinfo chart");

        // This cluster (the operator's default name) layers its own values over the chart's
        // production values; other clusters would get the production values alone.
        let relaxed_spec = format!(
            "  source:\n    url: '{}'\n    interval: 2s\n    path: apps/podinfo\n    releaseName: shop\n    valuesFiles: [apps/podinfo/values-prod.yaml]\n    clusters:\n      default: {{valuesFiles: [apps/podinfo/values-prod.yaml, clusters/default/podinfo.yaml]}}\n",
            repo.file_url()
        );
        let strict_spec = format!(
            "  source: {{url: '{}', interval: 2s, path: apps/podinfo}}\n",
            repo.file_url()
        );
        // Default policy: applied, rendered as the release `shop` with this cluster's values.
        let _running = onboard(cp, &admin, &platform.name, (&relaxed, &relaxed_spec), (&strict, &strict_spec)).await?;
        // The cluster's own values file (last, so it wins over the production values' 5).
        let hpa = Api::<HorizontalPodAutoscaler>::namespaced(admin.clone(), &relaxed)
            .get("shop-podinfo")
            .await?;
        assert_eq!(hpa.spec.max_replicas, 4);
        // The production values: redis, and the podinfo Deployment's memory limit.
        let deployments = Api::<Deployment>::namespaced(admin.clone(), &relaxed);
        deployments.get("shop-podinfo-redis").await?;
        let podinfo = deployments.get("shop-podinfo").await?;
        let limits = podinfo.spec.template.spec.unwrap_or_default().containers[0]
            .resources
            .clone()
            .unwrap_or_default()
            .limits
            .unwrap_or_default();
        assert_eq!(limits["memory"].0, "256Mi");

        // Its PolicyReport lists the restricted-profile findings as warnings, by template, and
        // under restricted the same chart is refused.
        let origin = "apps/podinfo/templates/deployment.yaml (document 1)";
        assert_warned(&policy_report(&admin, &relaxed).await?, "shop-podinfo", origin);
        assert_refused(&admin, &strict, &format!("{strict}-podinfo"), origin).await?;
        Ok(())
    })
    .await;
}
