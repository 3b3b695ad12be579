//! The Secrets a Tenant names in the operator's namespace (its Git credentials and its SOPS age
//! key), each handed to the tenant only if the platform labelled it for that tenant.

use berth_engine::render::AgeKey;

use super::*;

/// Keys of a decryption Secret holding age identities (Flux's convention).
const AGE_KEY_SUFFIX: &str = ".agekey";

/// The tenant's credentials Secret, if it declares one.
pub async fn read_credentials(
    client: &Client,
    ns: &str,
    tenant: &Tenant,
) -> Result<Option<Secret>, TenantError> {
    let Some(name) = &tenant.spec.source.credentials_secret else {
        return Ok(None);
    };
    read(client, ns, tenant, "credentials", name)
        .await
        .map(Some)
}

/// The age identities of the tenant's decryption Secret (every key ending in `.agekey`), if it
/// declares one.
pub async fn read_decryption_key(
    client: &Client,
    ns: &str,
    tenant: &Tenant,
) -> Result<Option<AgeKey>, TenantError> {
    let Some(name) = &tenant.spec.source.decryption_secret else {
        return Ok(None);
    };
    let secret = read(client, ns, tenant, "decryption", name).await?;
    age_key(name, &secret)
        .map(Some)
        .map_err(TenantError::Invalid)
}

/// The identities of every `.agekey` entry of `secret`; the error names the Secret and entry,
/// never the key.
fn age_key(name: &str, secret: &Secret) -> Result<AgeKey, ProvisionError> {
    let invalid = |reason: String| ProvisionError::Secret {
        role: "decryption",
        secret: name.to_owned(),
        reason,
    };
    let mut text = String::new();
    for (entry, value) in secret.data.iter().flatten() {
        if !entry.ends_with(AGE_KEY_SUFFIX) {
            continue;
        }
        let value = std::str::from_utf8(&value.0)
            .map_err(|_| invalid(format!("{entry} is not UTF-8 text")))?;
        AgeKey::parse(value).map_err(|reason| invalid(format!("{entry} {reason}")))?;
        text.push_str(value);
        text.push('\n');
    }
    if text.is_empty() {
        return Err(invalid(format!(
            "holds no entry ending in {AGE_KEY_SUFFIX} (an age key file, as age-keygen writes it)"
        )));
    }
    AgeKey::parse(&text).map_err(invalid)
}

async fn read(
    client: &Client,
    ns: &str,
    tenant: &Tenant,
    role: &'static str,
    name: &str,
) -> Result<Secret, TenantError> {
    let invalid = |reason: String| {
        TenantError::Invalid(ProvisionError::Secret {
            role,
            secret: name.to_owned(),
            reason,
        })
    };
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(ApiError::of("reading", format!("Secret {ns}/{name}")))?
        .ok_or_else(|| invalid(format!("not found in namespace {ns}")))?;
    // The operator's namespace holds every tenant's Secrets and the webhook Secrets: a Tenant
    // may only name one the platform labelled for it.
    if secret.labels().get(TENANT_LABEL) != Some(&tenant.name_any()) {
        return Err(invalid(format!(
            "not labelled {TENANT_LABEL}={}: a Secret is handed to a tenant only if the platform labelled it for that tenant",
            tenant.name_any()
        )));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    const IDENTITY: &str =
        "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";

    fn secret(entries: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn every_agekey_entry_is_one_of_the_identities() {
        let file = format!("# created: 2026-12-08\n# public key: age1x\n{IDENTITY}\n");
        let key = age_key(
            "team-a-sops",
            &secret(&[("a.agekey", &file), ("b.agekey", IDENTITY), ("note", "x")]),
        )
        .unwrap();
        assert_eq!(key.text(), format!("{IDENTITY}\n{IDENTITY}"));
    }

    #[test]
    fn a_secret_without_a_usable_key_is_refused_by_name_without_quoting_it() {
        let none = age_key("team-a-sops", &secret(&[("key", IDENTITY)]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            none,
            "decryption Secret team-a-sops: holds no entry ending in .agekey (an age key file, as age-keygen writes it)"
        );
        let bad = age_key("team-a-sops", &secret(&[("age.agekey", "hunter2")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            bad,
            "decryption Secret team-a-sops: age.agekey line 1 is not an age identity (AGE-SECRET-KEY-1…)"
        );
    }
}
