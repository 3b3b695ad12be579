//! The auditor's report as one self-contained HTML page.

use std::fmt::Write;

use super::AuditReport;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}\
td,th{border:1px solid #999;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#eee}.refused{color:#a00;font-weight:bold}.admitted{color:#070}code{font-size:90%}";

/// Summary table (latest decision per tenant), then every decision per tenant with its
/// denials and warnings.
pub fn html(report: &AuditReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Berth policy audit</title><style>{STYLE}</style></head><body>\n\
         <h1>Berth policy audit</h1>\n<p>Generated {}. {} verified decisions across {} tenants; {} reports failed verification.</p>\n",
        escape(&report.generated_at),
        report.decisions.len(),
        report.by_tenant().len(),
        report.unverified.len()
    );
    out.push_str("<h2>Summary</h2>\n<table><tr><th>Tenant</th><th>Latest revision</th><th>Policy bundle</th><th>Checked at</th><th>Verdict</th><th>Pass</th><th>Fail</th><th>Warn</th><th>Decisions</th></tr>\n");
    for (tenant, decisions) in report.by_tenant() {
        if let Some(latest) = decisions.last() {
            let _ = writeln!(
                out,
                "<tr><td><a href=\"#tenant-{t}\">{t}</a></td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td class=\"{v}\">{v}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&latest.revision),
                escape(&latest.policy_bundle),
                escape(&latest.checked_at),
                latest.pass,
                latest.fail,
                latest.warn,
                decisions.len(),
                t = escape(tenant),
                v = latest.verdict(),
            );
        }
    }
    out.push_str("</table>\n");
    for (tenant, decisions) in report.by_tenant() {
        let _ = writeln!(
            out,
            "<h2 id=\"tenant-{t}\">Tenant {t}</h2>",
            t = escape(tenant)
        );
        for d in decisions {
            let _ = writeln!(
                out,
                "<h3>Revision <code>{}</code> — <span class=\"{v}\">{v}</span></h3>\n<p>Checked {} against policy bundle <code>{}</code>; report {}/{}, signed by key <code>{}</code>: {} passed, {} failed, {} warnings.</p>",
                escape(&d.revision),
                escape(&d.checked_at),
                escape(&d.policy_bundle),
                escape(&d.namespace),
                escape(&d.report),
                escape(&d.signed_by),
                d.pass,
                d.fail,
                d.warn,
                v = d.verdict(),
            );
            let flagged: Vec<_> = d.findings.iter().filter(|f| f.result != "pass").collect();
            if flagged.is_empty() {
                continue;
            }
            out.push_str("<table><tr><th>Result</th><th>Policy / rule</th><th>Object</th><th>Declared in</th><th>Message</th></tr>\n");
            for f in flagged {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td><code>{}/{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&f.result),
                    escape(&f.policy),
                    escape(&f.rule),
                    escape(&f.object),
                    escape(&f.origin),
                    escape(&f.message)
                );
            }
            out.push_str("</table>\n");
        }
    }
    if !report.unverified.is_empty() {
        out.push_str("<h2 id=\"unverified\">Unverified reports</h2>\n<p>These PolicyReports claim to be a tenant's evidence but failed verification; none of them is counted above.</p>\n<table><tr><th>Claimed tenant</th><th>Report</th><th>Why it is not evidence</th></tr>\n");
        for u in &report.unverified {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td><code>{}/{}</code></td><td>{}</td></tr>",
                escape(&u.claimed_tenant),
                escape(&u.namespace),
                escape(&u.name),
                escape(&u.reason)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}
