//! The auditor's report: every tenant's PolicyReports gathered with read-only access,
//! verified (`verify`), and written as HTML (a summary table and per-tenant detail), JSON and
//! CSV. Says which revision of which tenant was checked against which policy bundle, when,
//! with what result; reports that fail verification are listed apart and never counted.

mod html;
mod verify;

use std::collections::BTreeMap;
use std::fmt::Write;

use berth_engine::api::{TENANT_LABEL, Tenant};
use berth_engine::report::{BUNDLE_ANNOTATION, PolicyReport, REVISION_LABEL, SOURCE_ADMISSION};
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde::Serialize;

pub use html::html;

/// One finding of a checked revision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub policy: String,
    pub rule: String,
    /// pass, fail, warn, error or skip.
    pub result: String,
    pub severity: String,
    pub message: String,
    /// `Kind namespace/name`.
    pub object: String,
    /// File and document it was declared in (for admission: the user and operation).
    pub origin: String,
}

/// One checked revision of one tenant (or, from admission, the writes of one hour).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub tenant: String,
    pub namespace: String,
    pub report: String,
    pub revision: String,
    pub policy_bundle: String,
    /// RFC 3339 time the revision was checked.
    pub checked_at: String,
    /// The key that signed the report.
    pub signed_by: String,
    pub pass: u64,
    pub fail: u64,
    pub warn: u64,
    /// Results as recorded (capped per report; the counts above are exact).
    pub findings: Vec<Finding>,
}

impl Decision {
    pub fn verdict(&self) -> &'static str {
        if self.fail > 0 { "refused" } else { "admitted" }
    }
}

/// A report that claims to be a tenant's evidence but failed verification.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Unverified {
    pub namespace: String,
    pub name: String,
    /// The tenant its label names.
    pub claimed_tenant: String,
    pub reason: String,
}

/// All decisions, by tenant then time, and what could not be verified.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AuditReport {
    pub generated_at: String,
    pub decisions: Vec<Decision>,
    pub unverified: Vec<Unverified>,
}

impl AuditReport {
    /// Builds the report from PolicyReport objects as listed: Berth's, those labelled with a
    /// tenant, checked against the Tenants. One that does not even parse is unverified too, so
    /// a malformed report cannot keep the others from being reported.
    pub fn from_policy_reports(
        listed: &[DynamicObject],
        tenants: &[Tenant],
        generated_at: &str,
    ) -> Self {
        let by_name: BTreeMap<String, Tenant> = tenants
            .iter()
            .map(|t| (t.metadata.name.clone().unwrap_or_default(), t.clone()))
            .collect();
        let mut audit = Self {
            generated_at: generated_at.to_owned(),
            ..Self::default()
        };
        for object in listed {
            let Some(claimed) = object.labels().get(TENANT_LABEL) else {
                continue;
            };
            let parsed = serde_json::to_value(object).and_then(serde_json::from_value);
            let report: PolicyReport = match parsed {
                Ok(report) => report,
                Err(e) => {
                    audit.unverified.push(Unverified {
                        namespace: object.namespace().unwrap_or_default(),
                        name: object.name_any(),
                        claimed_tenant: claimed.clone(),
                        reason: format!("not a PolicyReport as Berth writes them: {e}"),
                    });
                    continue;
                }
            };
            let report = &report;
            match verify::check(report, &by_name) {
                Ok(key) => audit.decisions.push(decision(report, key)),
                Err(why) => audit.unverified.push(Unverified {
                    namespace: report.metadata.namespace.clone(),
                    name: report.metadata.name.clone(),
                    claimed_tenant: report.tenant().unwrap_or_default().to_owned(),
                    reason: why.to_string(),
                }),
            }
        }
        audit.decisions.sort_by(|a, b| {
            (&a.tenant, &a.checked_at, &a.revision).cmp(&(&b.tenant, &b.checked_at, &b.revision))
        });
        audit
            .unverified
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        audit
    }

    /// Decisions grouped by tenant, in tenant order.
    pub fn by_tenant(&self) -> BTreeMap<&str, Vec<&Decision>> {
        let mut map: BTreeMap<&str, Vec<&Decision>> = BTreeMap::new();
        for d in &self.decisions {
            map.entry(d.tenant.as_str()).or_default().push(d);
        }
        map
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// One row per finding, with the decision's context on every row; then one row per
    /// unverified report (verdict `unverified`, the reason as message).
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "tenant,namespace,revision,policy_bundle,checked_at,verdict,policy,rule,result,severity,object,origin,message\n",
        );
        let mut row = |fields: [&str; 13]| {
            let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            let _ = writeln!(out, "{}", row.join(","));
        };
        for d in &self.decisions {
            for f in &d.findings {
                row([
                    &d.tenant,
                    &d.namespace,
                    &d.revision,
                    &d.policy_bundle,
                    &d.checked_at,
                    d.verdict(),
                    &f.policy,
                    &f.rule,
                    &f.result,
                    &f.severity,
                    &f.object,
                    &f.origin,
                    &f.message,
                ]);
            }
        }
        for u in &self.unverified {
            let object = format!("PolicyReport {}/{}", u.namespace, u.name);
            row([
                &u.claimed_tenant,
                &u.namespace,
                "",
                "",
                "",
                "unverified",
                "",
                "",
                "",
                "",
                &object,
                "",
                &u.reason,
            ]);
        }
        out
    }
}

fn csv_field(text: &str) -> String {
    // Quoted always; a leading formula character is neutralised for spreadsheet safety.
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn decision(report: &PolicyReport, signed_by: String) -> Decision {
    let meta = &report.metadata;
    let checked_at = report
        .results
        .first()
        .and_then(|r| k8s_openapi::jiff::Timestamp::from_second(r.timestamp.seconds).ok())
        .map(|t| t.to_string())
        .or_else(|| meta.creation_timestamp.clone())
        .unwrap_or_default();
    let admission = report.results.iter().any(|r| r.source == SOURCE_ADMISSION);
    let findings = report
        .results
        .iter()
        .map(|r| Finding {
            policy: r.policy.clone(),
            rule: r.rule.clone(),
            result: r.result.clone(),
            severity: r.severity.clone(),
            message: r.message.clone(),
            object: r.resources.first().map(|o| o.display()).unwrap_or_default(),
            origin: r.properties.get("origin").cloned().unwrap_or_default(),
        })
        .collect();
    Decision {
        tenant: report.tenant().unwrap_or_default().to_owned(),
        namespace: meta.namespace.clone(),
        report: meta.name.clone(),
        revision: match meta.labels.get(REVISION_LABEL) {
            Some(revision) => revision.clone(),
            None if admission => "(admission)".into(),
            None => String::new(),
        },
        policy_bundle: meta
            .annotations
            .get(BUNDLE_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        checked_at,
        signed_by,
        pass: report.summary.pass,
        fail: report.summary.fail,
        warn: report.summary.warn,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::api::{TenantSpec, TenantStatus};
    use berth_engine::report::{ReportResult, ReportSigner, ResourceRef, Timestamp, empty_report};
    use serde_json::json;

    fn tenant(name: &str, signer: &ReportSigner) -> Tenant {
        let mut t = Tenant::new(name, TenantSpec::default());
        t.status = Some(TenantStatus {
            report_keys: vec![signer.public_key()],
            ..TenantStatus::default()
        });
        t
    }

    fn report(
        tenant: &str,
        revision: &str,
        seconds: i64,
        fail: bool,
        signer: &ReportSigner,
    ) -> PolicyReport {
        let mut r = empty_report(
            tenant,
            &format!("berth-agent-{tenant}"),
            &format!("berth-{tenant}-{revision}"),
        );
        r.metadata
            .labels
            .insert(REVISION_LABEL.into(), revision.into());
        r.metadata
            .annotations
            .insert(BUNDLE_ANNOTATION.into(), "sha256:abc".into());
        r.push(ReportResult {
            source: "berth".into(),
            policy: "pod-security".into(),
            rule: "no-privileged".into(),
            result: if fail { "fail" } else { "pass" }.into(),
            severity: "high".into(),
            message: "container \"app\" runs privileged, <b>".into(),
            timestamp: Timestamp { seconds, nanos: 0 },
            resources: vec![ResourceRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some(tenant.into()),
                name: "web".into(),
            }],
            properties: BTreeMap::from([
                ("tenant".into(), tenant.into()),
                ("origin".into(), "web.yaml (document 1)".into()),
            ]),
        });
        signer.sign(&mut r);
        r
    }

    #[test]
    fn decisions_are_grouped_and_exported() {
        let (_, signer) = ReportSigner::generate().unwrap();
        let not_berth: PolicyReport = serde_json::from_value(json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "not-berth", "namespace": "x"}}))
        .unwrap();
        let mut planted = report("team-b", "r3", 30, false, &signer);
        planted.metadata.namespace = "team-a".into();
        let reports: Vec<DynamicObject> = [
            report("team-b", "r2", 20, false, &signer),
            report("team-a", "r1", 10, true, &signer),
            not_berth,
            planted,
        ]
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .chain([json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "broken", "namespace": "team-a", "labels": {TENANT_LABEL: "team-a"}},
            "results": "nope"})])
        .map(|r| serde_json::from_value(r).unwrap())
        .collect();
        let tenants = [tenant("team-a", &signer), tenant("team-b", &signer)];
        let audit = AuditReport::from_policy_reports(&reports, &tenants, "2026-11-27T00:00:00Z");
        assert_eq!(audit.decisions.len(), 2);
        assert_eq!(audit.unverified.len(), 2, "{:?}", audit.unverified);
        assert_eq!(audit.unverified[0].name, "berth-team-b-r3");
        assert_eq!(audit.unverified[0].claimed_tenant, "team-b");
        assert!(
            audit.unverified[1].reason.starts_with("not a PolicyReport"),
            "{:?}",
            audit.unverified[1]
        );
        assert_eq!(audit.decisions[0].tenant, "team-a");
        assert_eq!(audit.decisions[0].verdict(), "refused");
        assert_eq!(audit.decisions[0].checked_at, "1970-01-01T00:00:10Z");
        assert_eq!(
            audit.decisions[0].findings[0].object,
            "Deployment team-a/web"
        );
        let csv = audit.csv();
        assert!(csv.contains("\"team-a\",\"berth-agent-team-a\",\"r1\",\"sha256:abc\",\"1970-01-01T00:00:10Z\",\"refused\",\"pod-security\",\"no-privileged\",\"fail\""), "{csv}");
        assert!(
            csv.contains("\"team-b\",\"team-a\",\"\",\"\",\"\",\"unverified\""),
            "{csv}"
        );
        assert!(
            csv.contains("\"container \"\"app\"\" runs privileged, <b>\""),
            "{csv}"
        );
        let html = html(&audit);
        assert!(
            html.contains("container &quot;app&quot; runs privileged, &lt;b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn spreadsheet_formulas_are_neutralised() {
        assert_eq!(csv_field("=cmd()"), "\"'=cmd()\"");
    }
}
