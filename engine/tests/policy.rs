//! The policy gate with the committed default bundle: the real podinfo Deployment is judged as
//! the restricted rules say, and a missing or corrupt bundle fails closed. (Decisions are
//! compared with `opa eval` on a large corpus in `e2e/tests/policy_differential.rs`.)
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use berth_engine::guard::TenantContext;
use berth_engine::manifest::Manifest;
use berth_engine::policy::{PolicyBundle, PolicyError, Severity, findings};
use berth_engine::render::{SourceFile, parse_file};
use serde_json::json;

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
        ..TenantContext::default()
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
