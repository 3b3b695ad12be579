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
        .env("BERTH_KUSTOMIZE", kustomize())
        .output()
        .unwrap()
}

fn kustomize() -> std::path::PathBuf {
    let program = std::env::var_os("BERTH_KUSTOMIZE")
        .map(std::path::PathBuf::from)
        .expect("BERTH_KUSTOMIZE (cargo sets it from .cargo/config.toml)");
    assert!(
        program.is_file(),
        "kustomize not found at {}: run `make tools`, which installs the pinned one there",
        program.display()
    );
    program
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

/// podinfo as a tenant would harden it: an overlay on the unchanged upstream manifests.
fn hardened_podinfo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir(&base).unwrap();
    for entry in std::fs::read_dir(podinfo()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), base.join(entry.file_name())).unwrap();
    }
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources: [base]\nlabels:\n- pairs: {app.kubernetes.io/name: podinfo}\npatches:\n- path: hardening.yaml\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hardening.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo}\nspec:\n  template:\n    spec:\n      securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}\n      containers:\n      - name: podinfod\n        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n",
    )
    .unwrap();
    dir
}

/// Policy data selecting the restricted profile.
fn restricted() -> tempfile::NamedTempFile {
    let data = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(data.path(), r#"{"params": {"profile": "restricted"}}"#).unwrap();
    data
}

#[test]
fn upstream_podinfo_passes_with_warnings_and_is_refused_under_restricted() {
    let out = check(&podinfo(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("WARNING  Deployment team-a/podinfo"),
        "{text}"
    );
    assert!(
        text.contains(
            "3 objects checked: 0 refused by guard rails, 0 denied by policy, 5 warnings"
        ),
        "{text}"
    );

    let data = restricted();
    let restricted = ["--policy-data", data.path().to_str().unwrap()];
    let out = check(&podinfo(), &restricted);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for rule in [
        "no-privilege-escalation",
        "run-as-non-root",
        "require-seccomp",
        "restricted-capabilities",
    ] {
        assert!(
            text.contains(&format!("[pod-security/{rule}]")),
            "{rule}: {text}"
        );
    }
    assert!(
        text.contains(
            "3 objects checked: 0 refused by guard rails, 4 denied by policy, 1 warnings"
        ),
        "{text}"
    );

    let hardened = hardened_podinfo();
    let out = check(hardened.path(), &restricted);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "3 objects checked: 0 refused by guard rails, 0 denied by policy, 0 warnings"
        ),
        "{text}"
    );
}

#[test]
fn platform_parameters_change_the_verdict() {
    let data = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        data.path(),
        r#"{"params": {"profile": "restricted", "warn_rules": ["pod-security/*"]}}"#,
    )
    .unwrap();
    let out = check(
        &podinfo(),
        &["--policy-data", data.path().to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("downgraded to warn"), "{text}");
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
        // An unpinned image only warns under the default profile.
        xml.contains("<testsuite name=\"berth-check\" tests=\"2\" failures=\"1\">"),
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
