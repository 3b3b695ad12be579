//! Report step: a checked revision as a `PolicyReport` (`wgpolicyk8s.io/v1alpha2`, the format
//! Kyverno emits and Policy Reporter reads). Results are capped; the summary is always exact.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::guard::TenantContext;
use crate::manifest::{ObjectRef, Origin};
use crate::pipeline::Checked;
use crate::policy::Severity;

/// Results listed in one report; the summary counts all of them.
pub const MAX_RESULTS: usize = 100;
/// The `policy` name guard-rail refusals are reported under.
pub const GUARD_RAILS: &str = "guard-rails";
/// Label on every report naming its tenant.
pub const TENANT_LABEL: &str = "berth.dev/tenant";

/// What a report is about.
pub struct ReportContext<'a> {
    pub tenant: &'a TenantContext,
    /// The commit id.
    pub revision: &'a str,
    pub bundle_version: &'a str,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
}

/// The report's object name: one report per tenant, revision and policy bundle.
pub fn report_name(tenant: &str, revision: &str, bundle_version: &str) -> String {
    let short: String = revision.chars().take(12).collect();
    let bundle: String = bundle_version
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .chars()
        .take(8)
        .collect();
    format!("berth-{tenant}-{short}-{bundle}")
}

/// Builds the PolicyReport for a checked revision, in the tenant's primary namespace.
pub fn policy_report(checked: &Checked, context: &ReportContext<'_>) -> Value {
    let namespace = context
        .tenant
        .namespaces
        .first()
        .cloned()
        .unwrap_or_default();
    let mut results = Vec::new();
    let mut flagged = BTreeSet::new();
    let (mut fail, mut warn) = (0usize, 0usize);
    for r in &checked.refusals {
        fail += 1;
        flagged.insert(r.object.identity());
        results.push(result(
            context,
            GUARD_RAILS,
            r.reason.label(),
            "fail",
            "high",
            &r.reason.to_string(),
            &r.object,
            &r.origin,
        ));
    }
    for v in &checked.violations {
        let (outcome, severity) = match v.finding.severity {
            Severity::Deny => {
                fail += 1;
                flagged.insert(v.object.identity());
                ("fail", "high")
            }
            Severity::Warn => {
                warn += 1;
                ("warn", "medium")
            }
        };
        results.push(result(
            context,
            &v.finding.policy,
            &v.finding.rule,
            outcome,
            severity,
            &v.finding.message,
            &v.object,
            &v.origin,
        ));
    }
    let mut pass = 0usize;
    for m in &checked.manifests {
        if !flagged.contains(&m.reference.identity()) {
            pass += 1;
            results.push(result(
                context,
                "berth",
                "admitted",
                "pass",
                "info",
                "passed guard rails and every deny rule",
                &m.reference,
                &m.origin,
            ));
        }
    }
    results.truncate(MAX_RESULTS);
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": report_name(&context.tenant.name, context.revision, context.bundle_version),
            "namespace": namespace,
            "labels": {
                TENANT_LABEL: context.tenant.name,
                "berth.dev/revision": context.revision,
                "app.kubernetes.io/managed-by": "berth",
            },
            "annotations": {"berth.dev/policy-bundle": context.bundle_version},
        },
        "summary": {"pass": pass, "fail": fail, "warn": warn, "error": 0, "skip": 0},
        "results": results,
    })
}

#[allow(clippy::too_many_arguments)]
fn result(
    context: &ReportContext<'_>,
    policy: &str,
    rule: &str,
    outcome: &str,
    severity: &str,
    message: &str,
    object: &ObjectRef,
    origin: &Origin,
) -> Value {
    json!({
        "source": "berth",
        "policy": policy,
        "rule": rule,
        "result": outcome,
        "severity": severity,
        "message": message,
        "timestamp": {"seconds": context.timestamp, "nanos": 0},
        "resources": [{
            "apiVersion": object.api_version,
            "kind": object.kind,
            "namespace": object.namespace,
            "name": object.name,
        }],
        "properties": {
            "tenant": context.tenant.name,
            "revision": context.revision,
            "commit": context.revision,
            "policyBundle": context.bundle_version,
            "origin": origin.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::{Refusal, RefusalReason};
    use crate::manifest::Manifest;
    use crate::policy::{Finding, Violation};

    fn object(name: &str) -> Manifest {
        Manifest {
            origin: Origin {
                file: "a.yaml".into(),
                document: 1,
            },
            reference: ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("team-a".into()),
                name: name.into(),
            },
            object: json!({}),
        }
    }

    #[test]
    fn summary_is_exact_while_results_are_capped() {
        let manifests: Vec<Manifest> = (0..150).map(|i| object(&format!("cm{i}"))).collect();
        let denied = &manifests[0];
        let checked = Checked {
            refusals: vec![Refusal {
                object: manifests[1].reference.clone(),
                origin: manifests[1].origin.clone(),
                reason: RefusalReason::KindNotAllowed,
            }],
            violations: vec![Violation {
                object: denied.reference.clone(),
                origin: denied.origin.clone(),
                finding: Finding {
                    policy: "p".into(),
                    rule: "r".into(),
                    severity: Severity::Deny,
                    message: "no".into(),
                },
            }],
            manifests: manifests.clone(),
        };
        let tenant = TenantContext {
            name: "team-a".into(),
            namespaces: vec!["team-a".into()],
            allowed_kinds: vec![],
        };
        let report = policy_report(
            &checked,
            &ReportContext {
                tenant: &tenant,
                revision: "0123456789abcdef",
                bundle_version: "sha256:x",
                timestamp: 1,
            },
        );
        assert_eq!(
            report["summary"],
            json!({"pass": 148, "fail": 2, "warn": 0, "error": 0, "skip": 0})
        );
        assert_eq!(
            report["results"].as_array().map(Vec::len),
            Some(MAX_RESULTS)
        );
        assert_eq!(report["metadata"]["name"], "berth-team-a-0123456789ab-x");
        assert_eq!(report["results"][0]["policy"], GUARD_RAILS);
        assert_eq!(
            report["results"][1]["properties"]["revision"],
            "0123456789abcdef"
        );
    }
}
