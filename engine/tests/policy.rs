//! The policy gate with the committed default bundle: the real podinfo Deployment passes the
//! default (baseline) profile with warnings and is refused under restricted, and a missing or
//! corrupt bundle fails closed. (Decisions are
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

async fn rules(data: serde_json::Value) -> Vec<(String, Severity)> {
    let bundle = PolicyBundle::from_file(&root().join("policies/bundle.tar.gz"), data)
        .await
        .unwrap();
    let violations = bundle
        .evaluate(&podinfo(), &tenant(), "abc123")
        .await
        .unwrap();
    violations
        .iter()
        .map(|v| (v.finding.rule.clone(), v.finding.severity))
        .collect()
}

#[tokio::test]
async fn the_real_podinfo_deployment_passes_baseline_with_warnings_and_restricted_refuses_it() {
    // Pinned image with requests and limits, but no securityContext and no name label: nothing
    // the baseline Pod Security Standard forbids, several things restricted does.
    let restricted_items = [
        "no-privilege-escalation",
        "recommended-name-label",
        "require-seccomp",
        "restricted-capabilities",
        "run-as-non-root",
    ];
    let expect = |deny: bool| -> Vec<(String, Severity)> {
        restricted_items
            .iter()
            .map(|r| {
                let severity = if deny && *r != "recommended-name-label" {
                    Severity::Deny
                } else {
                    Severity::Warn
                };
                ((*r).to_owned(), severity)
            })
            .collect()
    };
    assert_eq!(rules(json!({})).await, expect(false));
    assert_eq!(
        rules(json!({"params": {"profile": "restricted"}})).await,
        expect(true)
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
