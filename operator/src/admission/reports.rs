//! Admission denials as evidence: each goes into the tenant's PolicyReport of the hour in its
//! agent's namespace (`berth-<tenant>-admission-<YYYYMMDDHH>`), signed with the tenant's key
//! like the agent's reports, so `berth-operator report` verifies and counts them the same way.
//! Written after the answer, off the request's path.

use std::collections::BTreeMap;

use berth_engine::api::Tenant;
use berth_engine::manifest::Manifest;
use berth_engine::policy::{Severity, Violation};
use berth_engine::report::{
    BUNDLE_ANNOTATION, PolicyReport, ReportResult, ReportSigner, SOURCE_ADMISSION, Timestamp,
    empty_report, severity,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::provision::agent::{REPORT_KEY_FILE, REPORT_KEY_SECRET};

/// Attempts at adding to a report another writer changed in between.
const ATTEMPTS: usize = 3;

/// A denial to record.
pub struct Denial {
    pub tenant: Tenant,
    pub object: Manifest,
    pub user: String,
    pub operation: String,
    pub bundle_version: String,
    pub violations: Vec<Violation>,
}

/// The hourly report name for `seconds` since the epoch.
pub fn report_name(tenant: &str, seconds: i64) -> String {
    let hour = k8s_openapi::jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y%m%d%H").to_string())
        .unwrap_or_default();
    format!("berth-{tenant}-admission-{hour}")
}

/// The denial's results (one per denying rule).
pub fn results(denial: &Denial, seconds: i64) -> Vec<ReportResult> {
    denial
        .violations
        .iter()
        .filter(|v| v.finding.severity == Severity::Deny)
        .map(|v| ReportResult {
            source: SOURCE_ADMISSION.into(),
            policy: v.finding.policy.clone(),
            rule: v.finding.rule.clone(),
            result: "fail".into(),
            severity: severity("fail").into(),
            message: v.finding.message.clone(),
            timestamp: Timestamp { seconds, nanos: 0 },
            resources: vec![(&denial.object.reference).into()],
            properties: BTreeMap::from([
                ("tenant".into(), denial.tenant.name_any()),
                ("policyBundle".into(), denial.bundle_version.clone()),
                (
                    "origin".into(),
                    format!("{} by {}", denial.operation, denial.user),
                ),
                ("user".into(), denial.user.clone()),
                ("operation".into(), denial.operation.clone()),
            ]),
        })
        .collect()
}

/// Adds the denial to the tenant's report of the hour (created if needed), re-signed.
pub async fn record(client: &Client, denial: Denial) -> Result<(), String> {
    let tenant = denial.tenant.name_any();
    let home = denial.tenant.agent_namespace();
    let key = Api::<Secret>::namespaced(client.clone(), &home)
        .get(REPORT_KEY_SECRET)
        .await
        .map_err(|e| format!("reading Secret {home}/{REPORT_KEY_SECRET}: {e}"))?
        .data
        .and_then(|mut d| d.remove(REPORT_KEY_FILE))
        .ok_or_else(|| format!("Secret {home}/{REPORT_KEY_SECRET} holds no key"))?;
    let signer = ReportSigner::from_pkcs8(&key.0).map_err(|e| e.to_string())?;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let name = report_name(&tenant, now);
    let api = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &home,
        &berth_engine::report::resource(),
    );
    let to_object = |r: &PolicyReport| -> Result<DynamicObject, String> {
        serde_json::to_value(r)
            .and_then(serde_json::from_value)
            .map_err(|e| e.to_string())
    };
    for _ in 0..ATTEMPTS {
        let existing = api.get_opt(&name).await.map_err(|e| e.to_string())?;
        let (mut report, create) = match existing {
            None => (empty_report(&tenant, &home, &name), true),
            Some(found) => {
                let report: PolicyReport = serde_json::to_value(found)
                    .and_then(serde_json::from_value)
                    .map_err(|e| format!("PolicyReport {home}/{name}: {e}"))?;
                // Never add to (and so vouch for) a report Berth did not sign.
                if !signer.signed(&report) {
                    return Err(format!(
                        "PolicyReport {home}/{name} exists but is not signed with the tenant's key; denial not recorded"
                    ));
                }
                (report, false)
            }
        };
        report
            .metadata
            .annotations
            .insert(BUNDLE_ANNOTATION.into(), denial.bundle_version.clone());
        for result in results(&denial, now) {
            report.push(result);
        }
        signer.sign(&mut report);
        let outcome = if create {
            api.create(&PostParams::default(), &to_object(&report)?)
                .await
        } else {
            api.replace(&name, &PostParams::default(), &to_object(&report)?)
                .await
        };
        match outcome {
            Ok(_) => return Ok(()),
            // Another denial got there first: read again and add to it.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(format!("writing PolicyReport {home}/{name}: {e}")),
        }
    }
    Err(format!(
        "PolicyReport {home}/{name} kept changing; denial not recorded"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_tenant_and_hour() {
        // 2026-11-30T22:14:28Z
        assert_eq!(
            report_name("team-a", 1_796_076_868),
            "berth-team-a-admission-2026113022"
        );
    }
}
