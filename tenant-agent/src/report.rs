//! Formats of a checked revision for people and tools: text, JSON, SARIF 2.1.0 and JUnit XML.

use std::collections::BTreeMap;
use std::fmt::Write;

use berth_engine::check::Checked;
use berth_engine::policy::Severity;
use berth_engine::report::GUARD_RAILS;
use serde_json::{Value, json};

/// One line per finding, then a summary line.
pub fn text(checked: &Checked) -> String {
    let mut out = String::new();
    for r in &checked.refusals {
        let _ = writeln!(out, "REFUSED  {r} [{GUARD_RAILS}/{}]", r.reason.label());
    }
    for v in &checked.violations {
        let tag = match v.finding.severity {
            Severity::Deny => "DENIED ",
            Severity::Warn => "WARNING",
        };
        let _ = writeln!(out, "{tag}  {v}");
    }
    let denies = checked.denies().count();
    let warnings = checked.warnings().count();
    let verdict = if checked.is_refused() {
        "refused: nothing of this revision would be applied"
    } else {
        "clean: the revision would be applied"
    };
    let _ = writeln!(
        out,
        "{} objects checked: {} refused by guard rails, {denies} denied by policy, {warnings} warnings; {verdict}",
        checked.manifests.len(),
        checked.refusals.len(),
    );
    out
}

pub fn json(checked: &Checked) -> Value {
    json!({
        "result": if checked.is_refused() { "refused" } else { "clean" },
        "objects": checked.manifests.len(),
        "refusals": checked.refusals,
        "violations": checked.violations,
    })
}

/// SARIF 2.1.0, as code-scanning tools read it.
pub fn sarif(checked: &Checked) -> Value {
    let mut rules = BTreeMap::new();
    let mut results = Vec::new();
    for r in &checked.refusals {
        let id = format!("{GUARD_RAILS}/{}", r.reason.label());
        rules.insert(id.clone(), r.reason.to_string());
        results.push(sarif_result(
            &id,
            "error",
            &format!("{}: {}", r.object, r.reason),
            &r.origin.file,
        ));
    }
    for v in &checked.violations {
        let id = format!("{}/{}", v.finding.policy, v.finding.rule);
        rules
            .entry(id.clone())
            .or_insert_with(|| v.finding.rule.clone());
        let level = match v.finding.severity {
            Severity::Deny => "error",
            Severity::Warn => "warning",
        };
        results.push(sarif_result(
            &id,
            level,
            &format!("{}: {}", v.object, v.finding.message),
            &v.origin.file,
        ));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "berth-agent",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|(id, text)| json!({"id": id, "shortDescription": {"text": text}})).collect::<Vec<_>>(),
            }},
            "results": results,
        }]
    })
}

fn sarif_result(rule: &str, level: &str, message: &str, file: &str) -> Value {
    json!({
        "ruleId": rule,
        "level": level,
        "message": {"text": message},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": file}}}],
    })
}

/// JUnit XML: one test case per object, failed when refused or denied.
pub fn junit(checked: &Checked) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    for m in &checked.manifests {
        let mut problems: Vec<String> = checked
            .refusals
            .iter()
            .filter(|r| r.object == m.reference)
            .map(|r| format!("[{GUARD_RAILS}/{}] {}", r.reason.label(), r.reason))
            .collect();
        problems.extend(
            checked
                .denies()
                .filter(|v| v.object == m.reference)
                .map(|v| {
                    format!(
                        "[{}/{}] {}",
                        v.finding.policy, v.finding.rule, v.finding.message
                    )
                }),
        );
        let _ = write!(
            cases,
            "    <testcase classname=\"{}\" name=\"{}\">",
            xml(&m.origin.to_string()),
            xml(&m.reference.to_string())
        );
        if !problems.is_empty() {
            failures += 1;
            let _ = write!(
                cases,
                "<failure message=\"{}\">{}</failure>",
                xml(&problems[0]),
                xml(&problems.join("\n"))
            );
        }
        cases.push_str("</testcase>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"berth-check\" tests=\"{}\" failures=\"{failures}\">\n{cases}  </testsuite>\n</testsuites>\n",
        checked.manifests.len()
    )
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
