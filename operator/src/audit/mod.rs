//! The auditor's report: every tenant's PolicyReports gathered with read-only access and
//! written as HTML (a summary table and per-tenant detail), JSON and CSV. Says which revision
//! of which tenant was checked against which policy bundle, when, with what result.

mod html;

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

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
    /// File and document it was declared in.
    pub origin: String,
}

/// One checked revision of one tenant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub tenant: String,
    pub namespace: String,
    pub revision: String,
    pub policy_bundle: String,
    /// RFC 3339 time the revision was checked.
    pub checked_at: String,
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

/// All decisions, by tenant then time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AuditReport {
    pub generated_at: String,
    pub decisions: Vec<Decision>,
}

impl AuditReport {
    /// Builds the report from PolicyReport objects (as JSON); reports not written by Berth
    /// (no `berth.dev/tenant` label) are left out.
    pub fn from_policy_reports(reports: &[Value], generated_at: &str) -> Self {
        let mut decisions: Vec<Decision> = reports.iter().filter_map(decision).collect();
        decisions.sort_by(|a, b| {
            (&a.tenant, &a.checked_at, &a.revision).cmp(&(&b.tenant, &b.checked_at, &b.revision))
        });
        Self {
            generated_at: generated_at.to_owned(),
            decisions,
        }
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

    /// One row per finding, with the decision's context on every row.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "tenant,namespace,revision,policy_bundle,checked_at,verdict,policy,rule,result,severity,object,origin,message\n",
        );
        for d in &self.decisions {
            for f in &d.findings {
                let fields = [
                    d.tenant.as_str(),
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
                ];
                let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                let _ = writeln!(out, "{}", row.join(","));
            }
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

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn decision(report: &Value) -> Option<Decision> {
    let tenant = report
        .pointer("/metadata/labels/berth.dev~1tenant")?
        .as_str()?
        .to_owned();
    let count = |key: &str| {
        report
            .pointer(&format!("/summary/{key}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let results = report
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let checked_at = results
        .first()
        .and_then(|r| r.pointer("/timestamp/seconds"))
        .and_then(Value::as_i64)
        .and_then(|s| k8s_openapi::jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| text(report, "/metadata/creationTimestamp"));
    let findings = results
        .iter()
        .map(|r| {
            let resource = r.pointer("/resources/0").cloned().unwrap_or_default();
            let namespace = text(&resource, "/namespace");
            let object = if namespace.is_empty() {
                format!("{} {}", text(&resource, "/kind"), text(&resource, "/name"))
            } else {
                format!(
                    "{} {}/{}",
                    text(&resource, "/kind"),
                    namespace,
                    text(&resource, "/name")
                )
            };
            Finding {
                policy: text(r, "/policy"),
                rule: text(r, "/rule"),
                result: text(r, "/result"),
                severity: text(r, "/severity"),
                message: text(r, "/message"),
                object,
                origin: text(r, "/properties/origin"),
            }
        })
        .collect();
    Some(Decision {
        tenant,
        namespace: text(report, "/metadata/namespace"),
        revision: text(report, "/metadata/labels/berth.dev~1revision"),
        policy_bundle: text(report, "/metadata/annotations/berth.dev~1policy-bundle"),
        checked_at,
        pass: count("pass"),
        fail: count("fail"),
        warn: count("warn"),
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(tenant: &str, revision: &str, seconds: i64, fail: u64) -> Value {
        json!({
            "metadata": {
                "name": format!("berth-{tenant}-{revision}"),
                "namespace": tenant,
                "labels": {"berth.dev/tenant": tenant, "berth.dev/revision": revision},
                "annotations": {"berth.dev/policy-bundle": "sha256:abc"},
            },
            "summary": {"pass": 1, "fail": fail, "warn": 0},
            "results": [{
                "policy": "pod-security", "rule": "no-privileged", "result": if fail > 0 { "fail" } else { "pass" },
                "severity": "high", "message": "container \"app\" runs privileged, <b>",
                "timestamp": {"seconds": seconds, "nanos": 0},
                "resources": [{"kind": "Deployment", "namespace": tenant, "name": "web"}],
                "properties": {"origin": "web.yaml (document 1)"},
            }],
        })
    }

    #[test]
    fn decisions_are_grouped_and_exported() {
        let reports = [
            report("team-b", "r2", 20, 0),
            report("team-a", "r1", 10, 1),
            json!({"metadata": {"name": "not-berth"}}),
        ];
        let audit = AuditReport::from_policy_reports(&reports, "2026-11-27T00:00:00Z");
        assert_eq!(audit.decisions.len(), 2);
        assert_eq!(audit.decisions[0].tenant, "team-a");
        assert_eq!(audit.decisions[0].verdict(), "refused");
        assert_eq!(audit.decisions[0].checked_at, "1970-01-01T00:00:10Z");
        assert_eq!(
            audit.decisions[0].findings[0].object,
            "Deployment team-a/web"
        );
        let csv = audit.csv();
        assert!(csv.contains("\"team-a\",\"team-a\",\"r1\",\"sha256:abc\",\"1970-01-01T00:00:10Z\",\"refused\",\"pod-security\",\"no-privileged\",\"fail\""), "{csv}");
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
