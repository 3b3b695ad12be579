//! Report signatures: who wrote a PolicyReport is established cryptographically, not by
//! labels. The operator gives each tenant an Ed25519 key (a Secret in the tenant's agent
//! namespace) and publishes its public half in the Tenant's status; the agent (and the
//! operator's admission webhook) sign every report they write; the auditor's report and the
//! agent itself verify. The signature covers the report's name, namespace, labels, annotations,
//! summary and results, so a report moved, relabelled or edited no longer verifies.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use std::collections::BTreeMap;

use super::{PolicyReport, ReportResult, Summary};
use crate::api::ReportKey;

/// Annotation holding a report's signature: `ed25519:<key id>:<base64 signature>`.
pub const SIGNATURE_ANNOTATION: &str = "berth.dev/signature";

/// Why a report's signature does not hold, or a key cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the report is not signed")]
    Unsigned,
    #[error("the signature annotation is malformed")]
    Malformed,
    #[error("signed with key {0}, which is not one of the tenant's report keys")]
    UnknownKey(String),
    #[error("the signature does not match the report's content (edited, moved or forged)")]
    Invalid,
    #[error("report signing key: {0}")]
    Key(String),
}

/// What a signature covers: everything an auditor reads, nothing the API server sets.
#[derive(Serialize)]
struct Signed<'a> {
    name: &'a str,
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
    annotations: BTreeMap<&'a str, &'a str>,
    summary: &'a Summary,
    results: &'a [ReportResult],
}

fn signed_bytes(report: &PolicyReport) -> Vec<u8> {
    let m = &report.metadata;
    let signed = Signed {
        name: &m.name,
        namespace: &m.namespace,
        labels: &m.labels,
        annotations: m
            .annotations
            .iter()
            .filter(|(k, _)| k.as_str() != SIGNATURE_ANNOTATION)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        summary: &report.summary,
        results: &report.results,
    };
    // Plain structs, ordered maps and strings: serialising cannot fail and is deterministic.
    serde_json::to_vec(&signed).unwrap_or_default()
}

/// The id of a public key: the first 8 bytes of its SHA-256, hex.
pub fn key_id(public_key: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_key);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tenant's signing key.
pub struct ReportSigner {
    pair: Ed25519KeyPair,
    id: String,
}

impl ReportSigner {
    /// A new key; returns it as PKCS#8 (to keep in a Secret) and ready to sign.
    pub fn generate() -> Result<(Vec<u8>, Self), SignatureError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| SignatureError::Key("generating a key failed".into()))?;
        let pkcs8 = document.as_ref().to_vec();
        let signer = Self::from_pkcs8(&pkcs8)?;
        Ok((pkcs8, signer))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, SignatureError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| SignatureError::Key(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        let id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, id })
    }

    /// The public half, as the Tenant's status publishes it.
    pub fn public_key(&self) -> ReportKey {
        ReportKey {
            id: self.id.clone(),
            public_key: STANDARD.encode(self.pair.public_key().as_ref()),
        }
    }

    /// Signs the report in place (replacing any earlier signature).
    pub fn sign(&self, report: &mut PolicyReport) {
        let signature = self.pair.sign(&signed_bytes(report));
        report.metadata.annotations.insert(
            SIGNATURE_ANNOTATION.into(),
            format!(
                "ed25519:{}:{}",
                self.id,
                STANDARD.encode(signature.as_ref())
            ),
        );
    }

    /// Whether this key signed the report as it is now.
    pub fn signed(&self, report: &PolicyReport) -> bool {
        verify(report, std::slice::from_ref(&self.public_key())).is_ok()
    }
}

/// Verifies the report's signature against the tenant's published keys; returns the id of the
/// key that signed it.
pub fn verify(report: &PolicyReport, keys: &[ReportKey]) -> Result<String, SignatureError> {
    let annotation = report
        .metadata
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or(SignatureError::Unsigned)?;
    let mut parts = annotation.splitn(3, ':');
    let (Some("ed25519"), Some(id), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SignatureError::Malformed);
    };
    let signature = STANDARD
        .decode(signature)
        .map_err(|_| SignatureError::Malformed)?;
    let key = keys
        .iter()
        .find(|k| k.id == id)
        .ok_or_else(|| SignatureError::UnknownKey(id.to_owned()))?;
    let public_key = STANDARD
        .decode(&key.public_key)
        .map_err(|_| SignatureError::Key(format!("published key {id} is not base64")))?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&signed_bytes(report), &signature)
        .map_err(|_| SignatureError::Invalid)?;
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TENANT_LABEL;
    use crate::report::{Timestamp, empty_report};

    fn report() -> PolicyReport {
        let mut r = empty_report("team-a", "berth-agent-team-a", "berth-team-a-abc-123");
        r.push(ReportResult {
            source: "berth".into(),
            policy: "pod-security".into(),
            rule: "no-privileged".into(),
            result: "fail".into(),
            severity: "high".into(),
            message: "privileged".into(),
            timestamp: Timestamp {
                seconds: 7,
                nanos: 0,
            },
            ..ReportResult::default()
        });
        r
    }

    #[test]
    fn a_signed_report_verifies_with_the_published_key_only() {
        let (pkcs8, signer) = ReportSigner::generate().unwrap();
        let mut r = report();
        assert_eq!(
            verify(&r, &[signer.public_key()]),
            Err(SignatureError::Unsigned)
        );
        signer.sign(&mut r);
        assert_eq!(
            verify(&r, &[signer.public_key()]),
            Ok(signer.public_key().id)
        );
        // The same key restored from its PKCS#8 form.
        assert!(ReportSigner::from_pkcs8(&pkcs8).unwrap().signed(&r));
        let (_, other) = ReportSigner::generate().unwrap();
        assert!(matches!(
            verify(&r, &[other.public_key()]),
            Err(SignatureError::UnknownKey(_))
        ));
        // Round trip through JSON (as read back from the API server, with server fields).
        let mut value = serde_json::to_value(&r).unwrap();
        value["metadata"]["uid"] = "x".into();
        value["metadata"]["resourceVersion"] = "42".into();
        let back: PolicyReport = serde_json::from_value(value).unwrap();
        assert!(signer.signed(&back));
    }

    #[test]
    fn moving_relabelling_or_editing_breaks_the_signature() {
        let (_, signer) = ReportSigner::generate().unwrap();
        let keys = [signer.public_key()];
        let mut signed = report();
        signer.sign(&mut signed);
        let edits: [fn(&mut PolicyReport); 5] = [
            |r| r.metadata.namespace = "team-b".into(),
            |r| {
                r.metadata
                    .labels
                    .insert(TENANT_LABEL.into(), "team-b".into());
            },
            |r| r.summary.fail = 0,
            |r| r.results[0].result = "pass".into(),
            |r| {
                r.metadata
                    .annotations
                    .insert("berth.dev/policy-bundle".into(), "sha256:other".into());
            },
        ];
        for edit in edits {
            let mut r = signed.clone();
            edit(&mut r);
            assert_eq!(verify(&r, &keys), Err(SignatureError::Invalid));
        }
        let mut r = signed.clone();
        r.metadata
            .annotations
            .insert(SIGNATURE_ANNOTATION.into(), "rsa:whatever".into());
        assert_eq!(verify(&r, &keys), Err(SignatureError::Malformed));
    }
}
