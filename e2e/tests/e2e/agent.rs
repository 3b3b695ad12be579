//! The tenant agent against the real control plane and real Git: apply, prune, drift, the
//! policy gate, guard rails with RBAC behind them, and hostile or broken repositories.

use berth_e2e::{TestRepo, TestTenant, free_addr, http_get, in_namespace, peak_rss_kib};
use berth_engine::api::{SyncResult, TENANT_LABEL, TenantSync, TenantSyncStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use std::time::Duration;

use crate::support::eventually;

/// The agent's test-only switch that turns the guard rails off.
const SKIP_GUARD_RAILS: &[(&str, &str)] = &[("BERTH_TEST_UNSAFE_SKIP_GUARD_RAILS", "1")];

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value}\n")
}

fn deployment(name: &str, image: &str, privileged: bool) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app.kubernetes.io/name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      securityContext: {{runAsNonRoot: true, runAsUser: 1000}}
      containers:
      - name: app
        image: {image}
        securityContext: {{privileged: {privileged}, allowPrivilegeEscalation: false}}
        resources:
          requests: {{cpu: 10m, memory: 16Mi}}
          limits: {{cpu: 100m, memory: 64Mi}}
"#
    )
}

/// Commits ConfigMap `settings` with `value`, applies it and returns the commit.
fn apply_settings(tenant: &TestTenant, repo: &TestRepo, value: &str) -> String {
    repo.write("config.yaml", config_map("settings", value));
    let commit = repo.commit(value);
    assert_eq!(
        tenant.run_once(&repo.file_url(), &[]).status.code(),
        Some(0)
    );
    commit
}

async fn status(client: &Client, ns: &str) -> TenantSyncStatus {
    Api::<TenantSync>::namespaced(client.clone(), ns)
        .get("berth")
        .await
        .expect("TenantSync berth")
        .status
        .unwrap_or_default()
}

/// Nine levels of nine aliases: a billion "lol"s if expanded.
fn alias_bomb() -> String {
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\na: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n",
    );
    let mut previous = 'a';
    for name in 'b'..='j' {
        let refs = vec![format!("*{previous}"); 9].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        previous = name;
    }
    bomb
}

async fn policy_report(client: &Client, ns: &str, revision: &str) -> serde_json::Value {
    let reports = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        ns,
        &berth_engine::report::resource(),
    );
    let list = reports
        .list(&kube::api::ListParams::default().labels(&format!(
            "{}={revision}",
            berth_engine::report::REVISION_LABEL
        )))
        .await
        .expect("listing PolicyReports");
    assert_eq!(list.items.len(), 1, "one report for revision {revision}");
    serde_json::to_value(&list.items[0]).expect("report JSON")
}

async fn data(client: &Client, ns: &str, name: &str) -> Option<String> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get ConfigMap")
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("key").cloned())
}

#[tokio::test]
async fn commits_are_applied_pruned_and_drift_is_reverted() {
    in_namespace("agent-apply", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-apply", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("apps/config.yaml", config_map("settings", "v1"))
            .write(
                "apps/web.yaml",
                deployment("web", "registry.example/web:1.0.0", false),
            );
        let first = repo.commit("first");

        let out = tenant.run_once(&repo.file_url(), &[]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            data(&admin, &ns.name, "settings").await.as_deref(),
            Some("v1")
        );
        let web = Api::<Deployment>::namespaced(admin.clone(), &ns.name)
            .get("web")
            .await?;
        let labels = web.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get(TENANT_LABEL).map(String::as_str),
            Some("team-apply")
        );
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.result, SyncResult::Applied);
        assert_eq!(s.last_applied_revision.as_deref(), Some(first.as_str()));
        assert_eq!((s.counts.objects, s.counts.applied), (2, 2));

        // A kubectl edit of a managed field is reverted on the next reconcile.
        let edit = json!({"data": {"key": "edited-by-hand"}});
        Api::<ConfigMap>::namespaced(admin.clone(), &ns.name)
            .patch("settings", &PatchParams::default(), &Patch::Merge(&edit))
            .await?;
        assert_eq!(
            tenant.run_once(&repo.file_url(), &[]).status.code(),
            Some(0)
        );
        assert_eq!(
            data(&admin, &ns.name, "settings").await.as_deref(),
            Some("v1")
        );

        // Nothing to change: no object and not even the status is written.
        let versions = |admin: Client, ns: String, home: String| async move {
            let cm = Api::<ConfigMap>::namespaced(admin.clone(), &ns)
                .get("settings")
                .await
                .expect("cm");
            let sync = Api::<TenantSync>::namespaced(admin, &home)
                .get("berth")
                .await
                .expect("sync");
            (cm.metadata.resource_version, sync.metadata.resource_version)
        };
        let before = versions(admin.clone(), ns.name.clone(), tenant.home.clone()).await;
        assert_eq!(
            tenant.run_once(&repo.file_url(), &[]).status.code(),
            Some(0)
        );
        assert_eq!(
            versions(admin.clone(), ns.name.clone(), tenant.home.clone()).await,
            before
        );

        // Removing a manifest prunes its object, and only that one.
        repo.remove("apps/config.yaml");
        let second = repo.commit("drop settings");
        assert_eq!(
            tenant.run_once(&repo.file_url(), &[]).status.code(),
            Some(0)
        );
        assert_eq!(data(&admin, &ns.name, "settings").await, None);
        assert!(
            Api::<Deployment>::namespaced(admin.clone(), &ns.name)
                .get_opt("web")
                .await?
                .is_some()
        );
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.counts.pruned, 1);
        assert_eq!(s.last_applied_revision.as_deref(), Some(second.as_str()));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_denied_object_refuses_the_whole_revision() {
    in_namespace("agent-deny", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-deny", &ns.name).await;
        let repo = TestRepo::new();
        let good = apply_settings(&tenant, &repo, "good");

        repo.write("config.yaml", config_map("settings", "changed"))
            .write(
                "web.yaml",
                deployment("web", "registry.example/web:1.0.0", true),
            );
        repo.commit("privileged");
        let out = tenant.run_once(&repo.file_url(), &[]);
        assert_eq!(out.status.code(), Some(2), "refused revisions exit 2");

        // Nothing of the refused revision is applied: the ConfigMap keeps the good value.
        assert_eq!(
            data(&admin, &ns.name, "settings").await.as_deref(),
            Some("good")
        );
        assert!(
            Api::<Deployment>::namespaced(admin.clone(), &ns.name)
                .get_opt("web")
                .await?
                .is_none()
        );
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.result, SyncResult::Refused);
        assert_eq!(s.last_applied_revision.as_deref(), Some(good.as_str()));
        assert_eq!(s.refused.len(), 1);
        let refused = &s.refused[0];
        assert_eq!(refused.object, format!("Deployment {}/web", ns.name));
        assert_eq!(
            (refused.policy.as_str(), refused.rule.as_str()),
            ("pod-security", "no-privileged")
        );
        assert_eq!(refused.message, "container app runs privileged");
        assert_eq!(refused.origin, "web.yaml (document 1)");

        // The Event says the same.
        let events =
            Api::<k8s_openapi::api::events::v1::Event>::namespaced(admin.clone(), &tenant.home)
                .list(&Default::default())
                .await?;
        let refusal = events
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("Refused"))
            .expect("a Refused event");
        let note = refusal.note.clone().unwrap_or_default();
        assert!(
            note.contains(&format!(
                "Deployment {}/web [pod-security/no-privileged] container app runs privileged",
                ns.name
            )),
            "{note}"
        );
        assert_eq!(
            refusal.regarding.as_ref().and_then(|r| r.name.as_deref()),
            Some("berth")
        );

        // And the PolicyReport of the refused revision names object, rule and message.
        let report = policy_report(
            &admin,
            &tenant.home,
            &s.last_attempted_revision.clone().unwrap_or_default(),
        )
        .await;
        assert_eq!(report["summary"]["fail"], 1);
        assert_eq!(report["summary"]["pass"], 1);
        let fail = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["result"] == "fail")
            .unwrap();
        assert_eq!(fail["rule"], "no-privileged");
        assert_eq!(fail["message"], "container app runs privileged");
        assert_eq!(fail["resources"][0]["name"], "web");
        assert_eq!(fail["properties"]["tenant"], "team-deny");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn guard_rails_refuse_foreign_namespaces_and_cluster_kinds_and_rbac_backs_them() {
    in_namespace("agent-guard", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-guard", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("mine.yaml", config_map("mine", "v"))
            .write(
                "theirs.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: theirs, namespace: kube-system}\ndata: {key: x}\n",
            )
            .write(
                "escalate.yaml",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: e2e-escalate}\nrules: []\n",
            );
        repo.commit("escape attempts");

        assert_eq!(tenant.run_once(&repo.file_url(), &[]).status.code(), Some(2));
        let s = status(&admin, &tenant.home).await;
        let mut reasons: Vec<(String, String)> =
            s.refused.iter().map(|r| (r.object.clone(), r.rule.clone())).collect();
        reasons.sort();
        assert_eq!(
            reasons,
            [
                ("ClusterRole e2e-escalate".to_owned(), "ClusterScoped".to_owned()),
                ("ConfigMap kube-system/theirs".to_owned(), "OutsideTenant".to_owned()),
            ]
        );
        assert_eq!(data(&admin, &ns.name, "mine").await, None, "nothing of a refused revision");

        // With the guard rails off (test-only switch), the policy's tenancy rules refuse.
        let out = tenant.run_once_with_env(&repo.file_url(), &[], SKIP_GUARD_RAILS);
        assert_eq!(out.status.code(), Some(2));
        let mut rules: Vec<String> = status(&admin, &tenant.home)
            .await
            .refused
            .iter()
            .map(|r| format!("{}/{}", r.policy, r.rule))
            .collect();
        rules.sort();
        assert_eq!(rules, ["tenancy/namespace-in-tenant", "tenancy/no-cluster-scoped"]);

        // And with those rules disabled as well, the API server's RBAC still refuses.
        let data = tempfile::NamedTempFile::new()?;
        std::fs::write(data.path(), r#"{"params": {"disabled_rules": ["tenancy/*"]}}"#)?;
        let data_path = data.path().to_string_lossy().into_owned();
        let out = tenant.run_once_with_env(
            &repo.file_url(),
            &["--policy-data", &data_path],
            SKIP_GUARD_RAILS,
        );
        assert_eq!(out.status.code(), Some(1));
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.result, SyncResult::Failed);
        // RBAC's 403 is not taken for a full quota.
        assert_eq!(s.reason.as_deref(), Some("ApplyFailed"));
        assert!(s.message.contains("forbidden") && s.message.contains("403"), "{}", s.message);
        let kube_system = Api::<ConfigMap>::namespaced(admin.clone(), "kube-system");
        assert!(kube_system.get_opt("theirs").await?.is_none());
        let roles = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone());
        assert!(roles.get_opt("e2e-escalate").await?.is_none());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn broken_and_hostile_repositories_change_nothing() {
    in_namespace("agent-hostile", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-hostile", &ns.name).await;
        let repo = TestRepo::new();
        let good = apply_settings(&tenant, &repo, "good");

        type Breakage = Box<dyn Fn(&TestRepo)>;
        let cases: Vec<(&str, Breakage, &str)> = vec![
            (
                "malformed YAML",
                Box::new(|r| {
                    r.write("bad.yaml", "kind: [unclosed\n");
                }),
                "bad.yaml (document 1): malformed document",
            ),
            (
                "invalid UTF-8",
                Box::new(|r| {
                    r.write("bin.yaml", [0x6b, 0x3a, 0xff, 0xfe]);
                }),
                "bin.yaml: not valid UTF-8",
            ),
            (
                "symlink to /etc/passwd",
                Box::new(|r| {
                    r.symlink("passwd.yaml", "/etc/passwd");
                }),
                "passwd.yaml: symbolic links are not allowed",
            ),
            (
                "kustomization escaping the repository",
                Box::new(|r| {
                    r.write("kustomization.yaml", "resources:\n- ../../\n");
                }),
                "points outside the repository",
            ),
            (
                "remote base",
                Box::new(|r| {
                    r.write(
                        "kustomization.yaml",
                        "resources:\n- https://github.com/org/repo//base?ref=v1\n",
                    );
                }),
                "resources[0]: remote reference",
            ),
            (
                "duplicate objects",
                Box::new(|r| {
                    r.write("dup.yaml", config_map("settings", "dup"));
                }),
                "duplicate of ConfigMap",
            ),
            (
                "a 100 MB file",
                Box::new(|r| {
                    r.write("huge.yaml", vec![b'#'; 100 * 1024 * 1024]);
                }),
                "huge.yaml is 104857600 bytes",
            ),
            (
                "a YAML alias bomb",
                Box::new(|r| {
                    r.write("bomb.yaml", alias_bomb());
                }),
                "bomb.yaml (document 1): malformed document",
            ),
            (
                "more objects than the default limit of 5000",
                Box::new(|r| {
                    let many: String = (0..5001)
                        .map(|i| format!("---\n{}", config_map(&format!("c{i}"), "x")))
                        .collect();
                    r.write("many.yaml", many);
                }),
                "the revision renders to more than 5000 objects",
            ),
        ];
        for (name, break_it, expected) in cases {
            let scratch = TestRepo::new();
            scratch.write("config.yaml", config_map("settings", "changed"));
            break_it(&scratch);
            scratch.commit(name);
            let out = tenant.run_once(&scratch.file_url(), &[]);
            assert_eq!(out.status.code(), Some(1), "{name}");
            let peak = peak_rss_kib(&out);
            eprintln!("{name}: peak RSS {peak} KiB");
            assert!(peak < 256 * 1024, "{name}: peak RSS {peak} KiB");
            let s = status(&admin, &tenant.home).await;
            assert_eq!(s.result, SyncResult::Failed, "{name}");
            assert!(s.message.contains(expected), "{name}: {}", s.message);
            assert_eq!(
                data(&admin, &ns.name, "settings").await.as_deref(),
                Some("good"),
                "{name}"
            );
            assert_eq!(
                s.last_applied_revision.as_deref(),
                Some(good.as_str()),
                "{name}"
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn force_push_deleted_branch_and_unreachable_server() {
    in_namespace("agent-history", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-history", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("config.yaml", config_map("settings", "one"));
        repo.commit("one");
        assert_eq!(
            tenant.run_once(&repo.file_url(), &[]).status.code(),
            Some(0)
        );

        // Force-pushed history is followed.
        repo.write("config.yaml", config_map("settings", "rewritten"));
        let rewritten = repo.force_push_new_history("rewritten");
        assert_eq!(
            tenant.run_once(&repo.file_url(), &[]).status.code(),
            Some(0)
        );
        assert_eq!(
            data(&admin, &ns.name, "settings").await.as_deref(),
            Some("rewritten")
        );
        assert_eq!(
            status(&admin, &tenant.home).await.last_applied_revision,
            Some(rewritten.clone())
        );

        // A deleted branch keeps the last good revision and says so.
        repo.delete_branch();
        assert_eq!(
            tenant.run_once(&repo.file_url(), &[]).status.code(),
            Some(1)
        );
        let s = status(&admin, &tenant.home).await;
        assert!(
            s.message.contains("branch main does not exist"),
            "{}",
            s.message
        );
        assert_eq!(s.last_applied_revision, Some(rewritten.clone()));
        assert_eq!(
            data(&admin, &ns.name, "settings").await.as_deref(),
            Some("rewritten")
        );

        // An unreachable server likewise.
        let out = tenant.run_once("https://127.0.0.1:9/nowhere.git", &["--git-timeout", "2s"]);
        assert_eq!(out.status.code(), Some(1));
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.reason.as_deref(), Some("FetchFailed"));
        assert!(
            s.message
                .starts_with("fetching https://127.0.0.1:9/nowhere.git"),
            "{}",
            s.message
        );
        assert_eq!(s.last_applied_revision, Some(rewritten));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn the_running_agent_syncs_at_once_when_triggered_and_serves_metrics() {
    in_namespace("agent-loop", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-loop", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("config.yaml", config_map("settings", "one"));
        repo.commit("one");
        let addr = free_addr();
        let mut agent = tenant.spawn(
            &repo.file_url(),
            &["--interval", "1h", "--metrics-addr", &addr],
        );
        let http = |path: &'static str| {
            let addr = addr.clone();
            async move { http_get(&addr, path).await }
        };
        eventually("the first reconcile", Duration::from_secs(60), || async {
            data(&admin, &ns.name, "settings")
                .await
                .filter(|v| v == "one")
        })
        .await?;
        eventually("/readyz", Duration::from_secs(10), || async {
            http("/readyz").await.filter(|(code, _)| *code == 200)
        })
        .await?;

        // A new commit is picked up long before the 1h interval, once a sync is requested.
        repo.write("config.yaml", config_map("settings", "two"));
        repo.commit("two");
        let requested = std::time::Instant::now();
        let trigger = json!({"spec": {"syncRequestedAt": "2026-11-27T00:00:00Z"}});
        Api::<TenantSync>::namespaced(admin.clone(), &tenant.home)
            .patch("berth", &PatchParams::default(), &Patch::Merge(&trigger))
            .await?;
        eventually(
            "the triggered reconcile",
            Duration::from_secs(30),
            || async {
                data(&admin, &ns.name, "settings")
                    .await
                    .filter(|v| v == "two")
            },
        )
        .await?;
        eprintln!("trigger to applied: {:?}", requested.elapsed());

        // The reconcile is counted once its status and reports are written.
        let body = eventually(
            "the second reconcile in /metrics",
            Duration::from_secs(10),
            || async {
                http("/metrics")
                    .await
                    .filter(|(code, body)| {
                        *code == 200 && body.contains("berth_objects_applied_total 2")
                    })
                    .map(|(_, body)| body)
            },
        )
        .await?;
        for metric in [
            "berth_reconcile_duration_seconds_count{result=\"Applied\"} 2",
            "berth_objects_applied_total 2",
            "berth_git_fetch_duration_seconds_count 2",
            "berth_last_success_timestamp_seconds",
            "berth_api_requests_total{method=\"PATCH\"}",
        ] {
            assert!(body.contains(metric), "{metric} missing from:\n{body}");
        }
        assert_eq!(http("/healthz").await.map(|(c, _)| c), Some(200));

        // SIGTERM stops it cleanly.
        assert_eq!(agent.terminate(), Some(0), "exit code after SIGTERM");
        Ok(())
    })
    .await;
}
