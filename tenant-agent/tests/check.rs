//! `berth-agent check` as a tenant's CI runs it: exit codes and every output format.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn check(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-agent"))
        .arg("check")
        .arg(dir)
        .args(["--tenant", "team-a", "--namespace", "team-a"])
        .args(extra)
        .env(
            "BERTH_KUSTOMIZE",
            std::env::var_os("BERTH_KUSTOMIZE").expect("BERTH_KUSTOMIZE (run through make)"),
        )
        .output()
        .unwrap()
}

fn podinfo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/podinfo-kustomize")
}

fn hostile() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("web.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: 'app:latest'}]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("other.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: team-b}\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_clean_kustomization_exits_0_with_a_summary() {
    let out = check(&podinfo(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "3 objects checked: 0 refused by guard rails, 0 denied by policy, 1 warnings"
        ),
        "{text}"
    );
}

#[test]
fn refusals_exit_2_in_every_format() {
    let dir = hostile();
    let text = check(dir.path(), &[]);
    assert_eq!(text.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("REFUSED  ConfigMap team-b/x (other.yaml (document 1)): namespace team-b does not belong to the tenant"), "{stdout}");
    assert!(stdout.contains("[images/pinned-image]"), "{stdout}");

    let json = check(dir.path(), &["--output", "json"]);
    assert_eq!(json.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["result"], "refused");
    assert_eq!(v["refusals"][0]["reason"], "outsideTenant");

    let sarif = check(dir.path(), &["--output", "sarif"]);
    let v: Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let rules: Vec<&str> = v["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"guard-rails/OutsideTenant") && rules.contains(&"images/pinned-image"),
        "{rules:?}"
    );

    let junit = check(dir.path(), &["--output", "junit"]);
    let xml = String::from_utf8_lossy(&junit.stdout);
    assert!(
        xml.contains("<testsuite name=\"berth-check\" tests=\"2\" failures=\"2\">"),
        "{xml}"
    );
}

#[test]
fn a_bad_bundle_or_directory_exits_1() {
    let out = check(&podinfo(), &["--bundle", "/nonexistent/bundle.tar.gz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("reading policy bundle /nonexistent/bundle.tar.gz")
    );
    let out = check(Path::new("/nonexistent-dir"), &["--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "error");
}
