//! Whether a PolicyReport is evidence: it names an existing Tenant, is kept in that tenant's
//! agent namespace (where only the tenant's agent and the operator can write), speaks of that
//! tenant only, and carries a signature by one of the keys the Tenant's status publishes.
//! Labels alone prove nothing: anyone who can create a PolicyReport can set them.

use std::collections::BTreeMap;

use berth_engine::api::Tenant;
use berth_engine::report::{PolicyReport, SignatureError, verify};

/// Why a report is not counted as its tenant's evidence.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unverifiable {
    #[error("no Tenant {0} exists")]
    NoTenant(String),
    #[error("kept in namespace {namespace}, not in tenant {tenant}'s agent namespace {home}")]
    OutsideHome {
        namespace: String,
        tenant: String,
        home: String,
    },
    #[error("a result speaks for tenant {0}")]
    ForeignResult(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// The id of the key that signed the report, if it is its tenant's evidence.
pub fn check(
    report: &PolicyReport,
    tenants: &BTreeMap<String, Tenant>,
) -> Result<String, Unverifiable> {
    let claimed = report.tenant().unwrap_or_default();
    let tenant = tenants
        .get(claimed)
        .ok_or_else(|| Unverifiable::NoTenant(claimed.to_owned()))?;
    let home = tenant.agent_namespace();
    if report.metadata.namespace != home {
        return Err(Unverifiable::OutsideHome {
            namespace: report.metadata.namespace.clone(),
            tenant: claimed.to_owned(),
            home,
        });
    }
    if let Some(other) = report
        .results
        .iter()
        .filter_map(|r| r.properties.get("tenant"))
        .find(|t| *t != claimed)
    {
        return Err(Unverifiable::ForeignResult(other.clone()));
    }
    let keys = tenant
        .status
        .as_ref()
        .map(|s| s.report_keys.as_slice())
        .unwrap_or_default();
    Ok(verify(report, keys)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::api::{TenantSpec, TenantStatus};
    use berth_engine::report::{ReportResult, ReportSigner, empty_report};

    fn world() -> (BTreeMap<String, Tenant>, ReportSigner) {
        let (_, signer) = ReportSigner::generate().unwrap();
        let mut tenant = Tenant::new("team-b", TenantSpec::default());
        tenant.status = Some(TenantStatus {
            report_keys: vec![signer.public_key()],
            ..TenantStatus::default()
        });
        (BTreeMap::from([("team-b".to_owned(), tenant)]), signer)
    }

    fn report(namespace: &str, tenant: &str) -> PolicyReport {
        let mut r = empty_report(tenant, namespace, "r");
        r.push(ReportResult {
            result: "pass".into(),
            properties: BTreeMap::from([("tenant".into(), tenant.into())]),
            ..ReportResult::default()
        });
        r
    }

    #[test]
    fn only_a_signed_report_in_the_tenants_agent_namespace_is_evidence() {
        let (tenants, signer) = world();
        let mut good = report("berth-agent-team-b", "team-b");
        signer.sign(&mut good);
        assert_eq!(check(&good, &tenants), Ok(signer.public_key().id));

        // Planted in another tenant's namespace, labelled team-b.
        let mut planted = report("team-a", "team-b");
        signer.sign(&mut planted);
        assert_eq!(
            check(&planted, &tenants).map_err(|e| e.to_string()),
            Err("kept in namespace team-a, not in tenant team-b's agent namespace berth-agent-team-b".into())
        );
        // In the right place, but unsigned or signed by someone else.
        let unsigned = report("berth-agent-team-b", "team-b");
        assert_eq!(
            check(&unsigned, &tenants),
            Err(Unverifiable::Signature(SignatureError::Unsigned))
        );
        let (_, forger) = ReportSigner::generate().unwrap();
        let mut forged = report("berth-agent-team-b", "team-b");
        forger.sign(&mut forged);
        assert!(matches!(
            check(&forged, &tenants),
            Err(Unverifiable::Signature(SignatureError::UnknownKey(_)))
        ));
        // A tenant that does not exist.
        assert_eq!(
            check(&report("berth-agent-team-x", "team-x"), &tenants).map_err(|e| e.to_string()),
            Err("no Tenant team-x exists".into())
        );
        // A result about someone else.
        let mut mixed = report("berth-agent-team-b", "team-b");
        mixed.results[0]
            .properties
            .insert("tenant".into(), "team-a".into());
        signer.sign(&mut mixed);
        assert_eq!(
            check(&mixed, &tenants),
            Err(Unverifiable::ForeignResult("team-a".into()))
        );
    }
}
