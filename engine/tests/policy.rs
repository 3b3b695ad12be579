//! The policy gate with the committed default bundle: decisions equal `opa eval`'s on the same
//! input, and a missing or corrupt bundle fails closed.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_engine::guard::TenantContext;
use berth_engine::manifest::Manifest;
use berth_engine::policy::{PolicyBundle, PolicyError, Severity, findings};
use berth_engine::render::{SourceFile, parse_file};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn bundle() -> PolicyBundle {
    PolicyBundle::from_file(&root().join("policies/bundle.tar.gz"), json!({}))
        .await
        .unwrap()
}

fn tenant() -> TenantContext {
    TenantContext {
        name: "team-a".into(),
        namespaces: vec!["team-a".into()],
        allowed_kinds: vec!["*".into()],
    }
}

/// Parsed objects in the tenant's namespace, as the guard rails leave them for policy.
fn manifests(path: &str, yaml: &str) -> Vec<Manifest> {
    let mut parsed = parse_file(&SourceFile {
        path: path.into(),
        content: yaml.as_bytes().to_vec(),
    })
    .unwrap();
    for m in &mut parsed {
        m.set_namespace("team-a");
    }
    parsed
}

fn podinfo() -> Vec<Manifest> {
    let text = std::fs::read_to_string(
        root().join("engine/tests/fixtures/podinfo-kustomize/deployment.yaml"),
    )
    .unwrap();
    manifests("deployment.yaml", &text)
}

/// `opa eval` of the same Rego on the same input, as the reference.
fn opa_eval(input: &Value) -> Value {
    let opa = std::env::var_os("BERTH_OPA")
        .expect("BERTH_OPA must name the opa binary (run through `make`, which installs it)");
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("input.json");
    std::fs::write(&input_path, input.to_string()).unwrap();
    let out = Command::new(opa)
        .args(["eval", "--format", "json", "--data"])
        .arg(root().join("policies/berth"))
        .arg("--input")
        .arg(&input_path)
        .arg("data.berth.violations")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    result["result"][0]["expressions"][0]["value"].clone()
}

fn sorted(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by_key(|v| v.to_string());
    values
}

#[tokio::test]
async fn the_real_podinfo_deployment_is_refused_by_the_restricted_rules() {
    let violations = bundle()
        .await
        .evaluate(&podinfo(), &tenant(), "abc123")
        .await
        .unwrap();
    // Pinned image with requests and limits, but no securityContext and no name label.
    let rules: Vec<(&str, Severity)> = violations
        .iter()
        .map(|v| (v.finding.rule.as_str(), v.finding.severity))
        .collect();
    assert_eq!(
        rules,
        [
            ("no-privilege-escalation", Severity::Deny),
            ("recommended-name-label", Severity::Warn),
            ("run-as-non-root", Severity::Deny),
        ]
    );
}

#[tokio::test]
async fn decisions_equal_opa_eval() {
    let bundle = bundle().await;
    let mut objects = podinfo();
    objects.extend(manifests(
        "cases.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: privileged, labels: {app.kubernetes.io/name: p}}
spec:
  initContainers: [{name: init, image: "busybox"}]
  containers: [{name: app, image: "app:latest", securityContext: {privileged: true}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 0 * * *"
  jobTemplate: {spec: {template: {spec: {containers: [{name: job, image: "registry:5000/job@sha256:00"}]}}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
"#,
    ));
    for object in objects {
        let input = json!({"object": object.object, "tenant": {"name": "team-a", "namespaces": ["team-a"]}, "revision": "abc123"});
        let wasm = bundle
            .evaluate(std::slice::from_ref(&object), &tenant(), "abc123")
            .await
            .unwrap();
        let wasm: Vec<Value> = wasm
            .iter()
            .map(|v| serde_json::to_value(&v.finding).unwrap())
            .collect();
        let reference: Vec<Value> = serde_json::from_value(opa_eval(&input)).unwrap();
        assert_eq!(sorted(wasm), sorted(reference), "{}", object.reference);
    }
}

#[tokio::test]
async fn a_missing_or_corrupt_bundle_fails_closed() {
    let missing = PolicyBundle::from_file(Path::new("/nonexistent/bundle.tar.gz"), json!({})).await;
    assert!(matches!(missing, Err(PolicyError::Read { .. })));
    let corrupt = PolicyBundle::from_bytes("corrupt.tar.gz", b"not a bundle", json!({})).await;
    assert!(
        matches!(corrupt, Err(PolicyError::Corrupt { .. })),
        "{:?}",
        corrupt.err()
    );
}

#[test]
fn an_undefined_result_has_no_findings() {
    assert_eq!(findings(json!([])).unwrap(), []);
    assert!(findings(json!({"not": "a set"})).is_err());
}
