//! The admission webhook's certificates: a CA the operator makes once (its certificate is the
//! `caBundle` the API server trusts) and a short-lived serving certificate it signs, renewed
//! when a third of its life is left or when the names it must cover change. Both are kept in
//! a Secret in the operator's namespace, so a new leader serves the same chain. The serving
//! certificate is swapped in place, without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The Secret holding the webhook's CA and serving certificate.
pub const TLS_SECRET: &str = "berth-admission-tls";
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const CERT: &str = "tls.crt";
const KEY: &str = "tls.key";
/// When the serving certificate expires (Unix seconds) and the names it covers.
const NOT_AFTER: &str = "berth.dev/not-after";
const NAMES: &str = "berth.dev/names";

const CA_LIFE_SECONDS: i64 = 10 * 365 * 86_400;
/// Serving certificates live 90 days and are renewed with 30 left.
pub const CERT_LIFE_SECONDS: i64 = 90 * 86_400;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("making the webhook's certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("loading the webhook's serving certificate: {0}")]
    Load(String),
}

/// The CA and the serving certificate, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    pub ca_pem: String,
    ca_key_pem: String,
    cert_pem: String,
    key_pem: String,
    /// Unix seconds.
    not_after: i64,
    names: Vec<String>,
}

fn ca_params(not_before: i64) -> Result<CertificateParams, TlsError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Berth admission webhook CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = validity(not_before, CA_LIFE_SECONDS);
    Ok(ca)
}

fn validity(from: i64, life: i64) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let at = |s| {
        time::OffsetDateTime::from_unix_timestamp(s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    // A minute back, for clocks a little behind ours.
    (at(from - 60), at(from + life))
}

impl Material {
    /// A new CA and a serving certificate for `names` (DNS names or IP addresses).
    pub fn generate(names: &[String], now: i64) -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params(now)?.self_signed(&ca_key)?;
        Self::issue(ca_cert.pem(), ca_key, names, now)
    }

    /// A new serving certificate from the same CA.
    pub fn renew(&self, names: &[String], now: i64) -> Result<Self, TlsError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        Self::issue(self.ca_pem.clone(), ca_key, names, now)
    }

    fn issue(
        ca_pem: String,
        ca_key: KeyPair,
        names: &[String],
        now: i64,
    ) -> Result<Self, TlsError> {
        let ca_key_pem = ca_key.serialize_pem();
        // The same subject and key make the same issuer: no need to parse the CA certificate.
        let issuer = Issuer::new(ca_params(now)?, ca_key);
        let mut leaf = CertificateParams::new(names.to_vec())?;
        leaf.distinguished_name
            .push(DnType::CommonName, "berth-operator admission webhook");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        (leaf.not_before, leaf.not_after) = validity(now, CERT_LIFE_SECONDS);
        let key = KeyPair::generate()?;
        let cert = leaf.signed_by(&key, &issuer)?;
        Ok(Self {
            ca_pem,
            ca_key_pem,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: now + CERT_LIFE_SECONDS,
            names: names.to_vec(),
        })
    }

    /// Whether the serving certificate must be replaced: it covers other names, or a third
    /// of its life or less is left.
    pub fn needs_renewal(&self, names: &[String], now: i64) -> bool {
        self.names != names || now >= self.not_after - CERT_LIFE_SECONDS / 3
    }

    /// The material a Secret holds, if it is complete.
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let text = |key: &str| {
            data.get(key)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
        };
        let annotations = secret.metadata.annotations.as_ref()?;
        Some(Self {
            ca_pem: text(CA_CERT)?,
            ca_key_pem: text(CA_KEY)?,
            cert_pem: text(CERT)?,
            key_pem: text(KEY)?,
            not_after: annotations.get(NOT_AFTER)?.parse().ok()?,
            names: annotations
                .get(NAMES)?
                .split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    pub fn to_secret(&self, namespace: &str) -> Secret {
        let bytes = |text: &str| ByteString(text.as_bytes().to_vec());
        Secret {
            metadata: ObjectMeta {
                name: Some(TLS_SECRET.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([(
                    berth_engine::api::MANAGED_BY.0.into(),
                    berth_engine::api::MANAGED_BY.1.into(),
                )])),
                annotations: Some(BTreeMap::from([
                    (NOT_AFTER.into(), self.not_after.to_string()),
                    (NAMES.into(), self.names.join(",")),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([
                (CA_CERT.into(), bytes(&self.ca_pem)),
                (CA_KEY.into(), bytes(&self.ca_key_pem)),
                (CERT.into(), bytes(&self.cert_pem)),
                (KEY.into(), bytes(&self.key_pem)),
            ])),
            ..Secret::default()
        }
    }

    /// The serving certificate and key, for rustls.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let load = |e: &dyn std::fmt::Display| TlsError::Load(e.to_string());
        let chain =
            vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| load(&e))?];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| load(&e))?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        CertifiedKey::from_der(chain, key, &provider)
            .map(Arc::new)
            .map_err(|e| load(&e))
    }
}

/// Serves whichever serving certificate is current.
#[derive(Debug)]
pub struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self(RwLock::new(key))
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    fn names() -> Vec<String> {
        vec![
            "127.0.0.1".into(),
            "berth-admission.berth-system.svc".into(),
        ]
    }

    #[test]
    fn renewal_keeps_the_ca_and_comes_when_a_third_of_the_life_is_left() {
        let now = 1_800_000_000;
        let first = Material::generate(&names(), now).unwrap();
        assert!(!first.needs_renewal(&names(), now));
        assert!(!first.needs_renewal(&names(), now + CERT_LIFE_SECONDS / 2));
        assert!(first.needs_renewal(&names(), now + CERT_LIFE_SECONDS * 2 / 3));
        assert!(
            first.needs_renewal(&["other.example".into()], now),
            "new names"
        );
        let renewed = first.renew(&names(), now + 61 * 86_400).unwrap();
        assert_eq!(renewed.ca_pem, first.ca_pem, "the caBundle stays valid");
        assert_ne!(renewed.cert_pem, first.cert_pem);
        assert!(renewed.certified_key().is_ok());
        // Kept in a Secret and read back as it was.
        let secret = renewed.to_secret("berth-system");
        assert_eq!(Material::from_secret(&secret), Some(renewed));
    }

    #[test]
    fn a_renewed_certificate_is_trusted_through_the_original_ca() {
        let now = 1_800_000_000;
        let first = Material::generate(&names(), now).unwrap();
        let renewed = first.renew(&names(), now + 100).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(first.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let leaf = CertificateDer::from_pem_slice(renewed.cert_pem.as_bytes()).unwrap();
        let at = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            (now + 200) as u64,
        ));
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &rustls::pki_types::ServerName::try_from("berth-admission.berth-system.svc")
                    .unwrap(),
                &[],
                at,
            )
            .unwrap();
    }
}
