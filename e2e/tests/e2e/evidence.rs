//! Reports an auditor can trust: `berth-operator report` counts only PolicyReports kept in a
//! tenant's agent namespace and signed with a key the Tenant's status publishes; one planted
//! elsewhere with the tenant's label (even a faithful copy of a real one) is listed as
//! unverified, never counted; and the agent never takes a report it did not sign for its own.

use std::process::Command;
use std::time::Duration;

use berth_e2e::{TestOperator, TestRepo, binary, in_namespace, install_crds, tenant_document};
use berth_engine::api::{TENANT_LABEL, Tenant, TenantSync, agent_namespace};
use berth_engine::report::{PolicyReport, REVISION_LABEL, report_name, verify};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::support::{eventually, tenant_ready};

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n")
}

fn reports(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &berth_engine::report::resource())
}

async fn typed(report: DynamicObject) -> PolicyReport {
    serde_json::from_value(serde_json::to_value(report).expect("json")).expect("a PolicyReport")
}

/// Runs `berth-operator report` with the admin's kubeconfig; returns audit.json and audit.html.
fn audit(kubeconfig: &std::path::Path) -> (Value, String) {
    let out_dir = tempfile::tempdir().expect("dir");
    let out = Command::new(binary("berth-operator"))
        .args(["report", "--output-dir"])
        .arg(out_dir.path())
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("berth-operator report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(out_dir.path().join("audit.html")).expect("html");
    let json = std::fs::read_to_string(out_dir.path().join("audit.json")).expect("json");
    (serde_json::from_str(&json).expect("audit.json"), html)
}

#[tokio::test]
async fn a_planted_report_is_listed_as_unverified_and_never_counted() {
    in_namespace("evidence", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let (a, b) = (format!("{}-a", platform.name), format!("{}-b", platform.name));
        let repo = TestRepo::new();
        repo.write("app.yaml", config_map("app"));
        repo.commit("app");
        let platform_repo = TestRepo::new();
        for tenant in [&a, &b] {
            let spec = format!("  source: {{url: '{}', interval: 1h}}\n", repo.file_url());
            platform_repo.write(&format!("tenants/{tenant}.yaml"), tenant_document(&platform.name, tenant, &spec));
        }
        platform_repo.commit("onboard a and b");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_platform(cp, &platform.name, cache.path(), &platform_repo.file_url());
        for tenant in [&a, &b] {
            tenant_ready(&admin, tenant, Duration::from_secs(120)).await?;
        }
        let b_home = agent_namespace(&b);
        let b_reports = reports(&admin, &b_home);
        let real = eventually("b's report", Duration::from_secs(30), || async {
            b_reports.list(&ListParams::default()).await.ok()?.items.into_iter().next()
        })
        .await?;
        // The real report verifies against b's published key.
        let keys = Api::<Tenant>::all(admin.clone()).get(&b).await?.status.unwrap_or_default().report_keys;
        assert!(verify(&typed(real.clone()).await, &keys).is_ok());

        // As cluster-admin: a faithful copy of b's report, and a forged one, planted in a's
        // namespace under b's label.
        let mut copy = serde_json::to_value(&real)?;
        copy["metadata"] = json!({"name": "copied", "namespace": a,
            "labels": real.metadata.labels, "annotations": real.metadata.annotations});
        let forged = json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "forged", "namespace": a, "labels": {TENANT_LABEL: b, REVISION_LABEL: "cafe"}},
            "summary": {"pass": 1, "fail": 0}, "results": []});
        for planted in [copy, forged] {
            let planted: DynamicObject = serde_json::from_value(planted)?;
            reports(&admin, &a).create(&PostParams::default(), &planted).await?;
        }

        let (json, html) = audit(&cp.kubeconfig);
        assert!(html.contains("<h2 id=\"unverified\">Unverified reports</h2>"), "{html}");
        assert!(html.contains(&format!("<code>{a}/copied</code>")), "{html}");
        let decisions = json["decisions"].as_array().expect("decisions");
        let of_b: Vec<&Value> = decisions.iter().filter(|d| d["tenant"] == b.as_str()).collect();
        assert_eq!(of_b.len(), 1, "only the real report counts for b: {of_b:?}");
        assert_eq!(of_b[0]["namespace"], b_home.as_str());
        let unverified = json["unverified"].as_array().expect("unverified");
        let mut planted: Vec<(&str, &str)> = unverified
            .iter()
            .filter(|u| u["namespace"] == a.as_str())
            .map(|u| (u["name"].as_str().unwrap_or_default(), u["claimed_tenant"].as_str().unwrap_or_default()))
            .collect();
        planted.sort();
        assert_eq!(planted, [("copied", b.as_str()), ("forged", b.as_str())]);
        assert!(
            unverified
                .iter()
                .filter(|u| u["namespace"] == a.as_str())
                .all(|u| u["reason"].as_str().unwrap_or_default().contains("not in tenant")),
            "{unverified:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn the_agent_never_takes_a_report_it_did_not_sign_for_its_own() {
    in_namespace("own-reports", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-t", platform.name);
        let home = agent_namespace(&tenant);
        let repo = TestRepo::new();
        repo.write("app.yaml", config_map("app"));
        repo.commit("app");
        let platform_repo = TestRepo::new();
        let spec = format!("  source: {{url: '{}', interval: 1h}}\n", repo.file_url());
        platform_repo.write(&format!("tenants/{tenant}.yaml"), tenant_document(&platform.name, &tenant, &spec));
        platform_repo.commit("onboard");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_platform(cp, &platform.name, cache.path(), &platform_repo.file_url());
        tenant_ready(&admin, &tenant, Duration::from_secs(120)).await?;
        let syncs = Api::<TenantSync>::namespaced(admin.clone(), &home);
        let bundle = syncs.get("berth").await?.status.unwrap_or_default().policy_bundle.unwrap_or_default();

        // The name the agent will give the next revision's report, taken first by someone else.
        repo.write("second.yaml", config_map("second"));
        let commit = repo.commit("second");
        let name = report_name(&tenant, &commit, &bundle);
        let squatter: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": name, "namespace": home, "labels": {TENANT_LABEL: tenant, REVISION_LABEL: commit}},
            "summary": {"pass": 2, "fail": 0}, "results": []}))?;
        reports(&admin, &home).create(&PostParams::default(), &squatter).await?;
        syncs.patch("berth", &PatchParams::default(), &Patch::Merge(json!({"spec": {"syncRequestedAt": "2026-11-29T00:00:00Z"}}))).await?;
        eventually("the second revision applied", Duration::from_secs(60), || async {
            let status = syncs.get("berth").await.ok()?.status?;
            (status.last_applied_revision.as_deref() == Some(commit.as_str())).then_some(())
        })
        .await?;

        // Its decision is recorded under another name, signed; the squatter is left as it was.
        let keys = Api::<Tenant>::all(admin.clone()).get(&tenant).await?.status.unwrap_or_default().report_keys;
        let mut theirs = None;
        let mut signed = Vec::new();
        for item in reports(&admin, &home).list(&ListParams::default().labels(&format!("{REVISION_LABEL}={commit}"))).await?.items {
            let report = typed(item).await;
            if report.metadata.name == name {
                theirs = Some(report);
            } else if verify(&report, &keys).is_ok() {
                signed.push(report.metadata.name.clone());
            }
        }
        assert!(theirs.is_some_and(|r| r.results.is_empty()), "the squatter was overwritten");
        assert_eq!(signed.len(), 1, "one signed report of the agent's for {commit}: {signed:?}");
        assert!(signed[0].starts_with(&format!("{name}-")), "{signed:?}");
        Ok(())
    })
    .await;
}
