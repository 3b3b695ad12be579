//! Report step: a checked revision as a `PolicyReport` (`wgpolicyk8s.io/v1alpha2`, the format
//! Kyverno emits and Policy Reporter reads), typed here for the agent that writes it, the
//! operator's admission webhook that adds to it and the auditor's report that reads it back.
//! Results are capped; the summary is always exact. Reports are signed (`signature`).

mod signature;

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde::{Deserialize, Serialize};

pub use signature::{ReportSigner, SignatureError, key_id, verify};

use crate::api::{MANAGED_BY, TENANT_LABEL};
use crate::check::Checked;
use crate::guard::TenantContext;
use crate::manifest::{ObjectRef, Origin};
use crate::policy::Severity;

/// Results listed in one report; the summary counts all of them.
pub const MAX_RESULTS: usize = 100;
/// The `policy` name guard-rail refusals are reported under.
pub const GUARD_RAILS: &str = "guard-rails";
/// Label naming the commit a report is about.
pub const REVISION_LABEL: &str = "berth.dev/revision";
/// Annotation naming the policy bundle a report's decisions were made with.
pub const BUNDLE_ANNOTATION: &str = "berth.dev/policy-bundle";
/// `source` of results the agent decided before apply.
pub const SOURCE_AGENT: &str = "berth";
/// `source` of results the operator's admission webhook decided.
pub const SOURCE_ADMISSION: &str = "berth-admission";

/// The API resource of PolicyReports (the CRD comes from the platform, or Kyverno).
pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
        "policyreports",
    )
}

/// A `wgpolicyk8s.io/v1alpha2` PolicyReport, the fields Berth writes and reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    pub api_version: String,
    pub kind: String,
    pub metadata: ReportMeta,
    #[serde(default)]
    pub summary: Summary,
    #[serde(default)]
    pub results: Vec<ReportResult>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportMeta {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Set by the API server; never part of what is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// Counts of every result, listed or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub pass: u64,
    #[serde(default)]
    pub fail: u64,
    #[serde(default)]
    pub warn: u64,
    #[serde(default)]
    pub error: u64,
    #[serde(default)]
    pub skip: u64,
}

/// One decision about one object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportResult {
    pub source: String,
    pub policy: String,
    pub rule: String,
    /// pass, fail, warn, error or skip.
    pub result: String,
    pub severity: String,
    pub message: String,
    pub timestamp: Timestamp,
    pub resources: Vec<ResourceRef>,
    /// tenant, revision, commit, policyBundle, origin (and, from admission, user and operation).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    pub seconds: i64,
    #[serde(default)]
    pub nanos: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl From<&ObjectRef> for ResourceRef {
    fn from(o: &ObjectRef) -> Self {
        Self {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
        }
    }
}

impl ResourceRef {
    /// `Kind namespace/name`, as Berth names objects elsewhere.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{} {ns}/{}", self.kind, self.name),
            _ => format!("{} {}", self.kind, self.name),
        }
    }
}

impl PolicyReport {
    /// The tenant the report says it is about (its label).
    pub fn tenant(&self) -> Option<&str> {
        self.metadata.labels.get(TENANT_LABEL).map(String::as_str)
    }

    /// Adds a result, keeping the summary exact and the listed results capped.
    pub fn push(&mut self, result: ReportResult) {
        match result.result.as_str() {
            "pass" => self.summary.pass += 1,
            "fail" => self.summary.fail += 1,
            "warn" => self.summary.warn += 1,
            "error" => self.summary.error += 1,
            _ => self.summary.skip += 1,
        }
        if self.results.len() < MAX_RESULTS {
            self.results.push(result);
        }
    }
}

/// What a report is about.
pub struct ReportContext<'a> {
    pub tenant: &'a TenantContext,
    /// Where the report is kept: the tenant's agent namespace.
    pub namespace: &'a str,
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

/// An empty report of `tenant` named `name` in `namespace`.
pub fn empty_report(tenant: &str, namespace: &str, name: &str) -> PolicyReport {
    PolicyReport {
        api_version: "wgpolicyk8s.io/v1alpha2".into(),
        kind: "PolicyReport".into(),
        metadata: ReportMeta {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            labels: BTreeMap::from([
                (TENANT_LABEL.to_owned(), tenant.to_owned()),
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
            ]),
            ..ReportMeta::default()
        },
        ..PolicyReport::default()
    }
}

/// Builds the PolicyReport for a checked revision (unsigned).
pub fn policy_report(checked: &Checked, context: &ReportContext<'_>) -> PolicyReport {
    let name = report_name(
        &context.tenant.name,
        context.revision,
        context.bundle_version,
    );
    let mut report = empty_report(&context.tenant.name, context.namespace, &name);
    report
        .metadata
        .labels
        .insert(REVISION_LABEL.into(), context.revision.into());
    report
        .metadata
        .annotations
        .insert(BUNDLE_ANNOTATION.into(), context.bundle_version.into());
    let mut flagged = BTreeSet::new();
    let result = |policy: &str, rule: &str, outcome: &str, message: &str, object, origin| {
        agent_result(context, policy, rule, outcome, message, object, origin)
    };
    for r in &checked.refusals {
        flagged.insert(r.object.identity());
        report.push(result(
            GUARD_RAILS,
            r.reason.label(),
            "fail",
            &r.reason.to_string(),
            &r.object,
            &r.origin,
        ));
    }
    for v in &checked.violations {
        let outcome = match v.finding.severity {
            Severity::Deny => {
                flagged.insert(v.object.identity());
                "fail"
            }
            Severity::Warn => "warn",
        };
        report.push(result(
            &v.finding.policy,
            &v.finding.rule,
            outcome,
            &v.finding.message,
            &v.object,
            &v.origin,
        ));
    }
    for m in &checked.manifests {
        if !flagged.contains(&m.reference.identity()) {
            report.push(result(
                "berth",
                "admitted",
                "pass",
                "passed guard rails and every deny rule",
                &m.reference,
                &m.origin,
            ));
        }
    }
    report
}

/// The severity a result of this outcome is reported with.
pub fn severity(outcome: &str) -> &'static str {
    match outcome {
        "fail" => "high",
        "warn" => "medium",
        _ => "info",
    }
}

fn agent_result(
    context: &ReportContext<'_>,
    policy: &str,
    rule: &str,
    outcome: &str,
    message: &str,
    object: &ObjectRef,
    origin: &Origin,
) -> ReportResult {
    ReportResult {
        source: SOURCE_AGENT.into(),
        policy: policy.into(),
        rule: rule.into(),
        result: outcome.into(),
        severity: severity(outcome).into(),
        message: message.into(),
        timestamp: Timestamp {
            seconds: context.timestamp,
            nanos: 0,
        },
        resources: vec![object.into()],
        properties: BTreeMap::from([
            ("tenant".into(), context.tenant.name.clone()),
            ("revision".into(), context.revision.into()),
            ("commit".into(), context.revision.into()),
            ("policyBundle".into(), context.bundle_version.into()),
            ("origin".into(), origin.to_string()),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::{Refusal, RefusalReason};
    use crate::manifest::Manifest;
    use crate::policy::{Finding, Violation};
    use serde_json::json;

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
            encrypted: Some(false),
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
            ..TenantContext::default()
        };
        let report = policy_report(
            &checked,
            &ReportContext {
                tenant: &tenant,
                namespace: "berth-agent-team-a",
                revision: "0123456789abcdef",
                bundle_version: "sha256:x",
                timestamp: 1,
            },
        );
        assert_eq!(
            report.summary,
            Summary {
                pass: 148,
                fail: 2,
                ..Summary::default()
            }
        );
        assert_eq!(report.results.len(), MAX_RESULTS);
        assert_eq!(report.metadata.name, "berth-team-a-0123456789ab-x");
        assert_eq!(report.metadata.namespace, "berth-agent-team-a");
        assert_eq!(report.tenant(), Some("team-a"));
        assert_eq!(report.results[0].policy, GUARD_RAILS);
        assert_eq!(report.results[1].properties["revision"], "0123456789abcdef");
        // The shape Policy Reporter reads.
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(value["results"][0]["timestamp"]["seconds"], 1);
        assert_eq!(value["results"][0]["resources"][0]["apiVersion"], "v1");
        assert_eq!(
            value["metadata"]["labels"]["berth.dev/revision"],
            "0123456789abcdef"
        );
    }
}
