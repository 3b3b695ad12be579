//! Secrets committed encrypted with SOPS (age recipients), as Flux users commit them: after the
//! render, every Secret that carries SOPS metadata has its `data` and `stringData` values
//! replaced by their plaintext, which the real `sops` CLI decrypts from the file the Secret was
//! declared in, inside the render sandbox, with the tenant's age key in its environment.
//!
//! Decrypting after the render is what lets kustomize and helm stay away from the plaintext:
//! they pass the encrypted values through untouched (patches and name prefixes included), and
//! each value is matched with the encrypted file it came from by its ciphertext, which SOPS
//! makes unique with a random nonce. sops checks the file's MAC, so a tampered file is refused
//! whole. The plaintext only ever exists in the agent's memory and in the applied Secret: sops
//! writes it to a pipe, never to a file, and the key reaches sops through its environment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::documents::yaml_options;
use super::sandbox::Launcher;
use super::supervise::{self, Ended, Job, Tool};
use super::{RenderError, RenderLimits, SourceFile, scratch_dir, write_scratch};
use crate::manifest::Manifest;

/// How SOPS writes an encrypted value: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
const ENCRYPTED_PREFIX: &str = "ENC[AES256_GCM,";
/// The fields of a Secret SOPS may encrypt; everything else must stay readable.
const SECRET_FIELDS: [&str; 2] = ["data", "stringData"];
/// What a tenant is told to run when anything else is encrypted.
const ENCRYPT_HINT: &str = "encrypt only a Secret's data and stringData: \
     sops --encrypt --age <recipient> --encrypted-regex '^(data|stringData)$'";

/// The environment variable an agent reads its tenant's age identities from (the operator sets
/// it from the Tenant's `source.decryptionSecret`); never a flag, so no process listing shows it.
pub const AGE_KEY_ENV: &str = "BERTH_SOPS_AGE_KEY";

/// One or more age identities (`AGE-SECRET-KEY-1…` lines). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AgeKey(String);

impl fmt::Debug for AgeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgeKey([redacted])")
    }
}

impl AgeKey {
    /// Parses the text of an age key file (as `age-keygen` writes it): `#` comments, blank
    /// lines, and one or more identities. The error never quotes the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut identities = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !line.starts_with("AGE-SECRET-KEY-1") {
                return Err(format!(
                    "line {} is not an age identity (AGE-SECRET-KEY-1…)",
                    index + 1
                ));
            }
            identities.push(line);
        }
        if identities.is_empty() {
            return Err("holds no age identity (AGE-SECRET-KEY-1…)".into());
        }
        Ok(Self(identities.join("\n")))
    }

    /// The identities, one per line, for the agent's environment.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the identities (hex): tells a changed key apart without holding it.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(self.0.as_bytes()))
    }
}

/// How to run sops, and the key it decrypts with.
#[derive(Clone, Debug)]
pub struct Sops {
    pub program: PathBuf,
    /// Wall-time limit of one `sops decrypt`.
    pub timeout: Duration,
    /// The program that confines sops (see [`super::sandbox`]).
    pub launcher: Launcher,
    /// The tenant's key; without one an encrypted Secret refuses the revision.
    pub key: Option<AgeKey>,
}

impl Default for Sops {
    fn default() -> Self {
        Self {
            program: PathBuf::from("sops"),
            timeout: Duration::from_secs(30),
            launcher: Launcher::default(),
            key: None,
        }
    }
}

/// Marks every SOPS-encrypted Secret of a render ([`Manifest::encrypted`]) and drops its SOPS
/// metadata, refusing encrypted objects of any other kind and encrypted fields other than
/// `data` and `stringData`. With `sops`, then replaces each encrypted value by its plaintext;
/// without (`berth-agent check`, which has no key), the values stay encrypted, which the
/// policy step cannot tell apart since it sees every Secret's values redacted.
pub fn decrypt(
    files: &[SourceFile],
    manifests: &mut [Manifest],
    sops: Option<&Sops>,
    limits: &RenderLimits,
) -> Result<(), RenderError> {
    for manifest in manifests.iter_mut() {
        mark(manifest)?;
    }
    let encrypted: Vec<&mut Manifest> = manifests
        .iter_mut()
        .filter(|m| m.encrypted == Some(true))
        .collect();
    let (Some(sops), Some(first)) = (sops, encrypted.first()) else {
        return Ok(());
    };
    let Some(key) = &sops.key else {
        return Err(RenderError::Decrypt {
            file: first.origin.to_string(),
            reason: format!(
                "{} is encrypted with SOPS, and this tenant has no decryption key \
                 (the platform names one in the Tenant's source.decryptionSecret)",
                first.reference
            ),
        });
    };
    let mut wanted = BTreeSet::new();
    for manifest in &encrypted {
        for_each_secret_value(&manifest.object, &mut |value| {
            if let Some(text) = value.as_str().filter(|t| t.starts_with(ENCRYPTED_PREFIX)) {
                wanted.insert(text.to_owned());
            }
        });
    }
    let mut plaintexts = BTreeMap::new();
    for file in files {
        let Some(values) = encrypted_values(file) else {
            continue;
        };
        if values.iter().any(|v| wanted.contains(v)) {
            plaintexts.extend(sops.decrypt_file(file, key, limits)?);
        }
    }
    for manifest in encrypted {
        replace_values(manifest, &plaintexts)?;
    }
    Ok(())
}

/// Sets `encrypted` and drops the SOPS metadata if the object carries some.
fn mark(manifest: &mut Manifest) -> Result<(), RenderError> {
    let Some(map) = manifest.object.as_object_mut() else {
        return Ok(());
    };
    if !map.contains_key("sops") {
        return Ok(());
    }
    let refused = |reason: String| RenderError::Decrypt {
        file: manifest.origin.to_string(),
        reason,
    };
    if manifest.reference.kind != "Secret" || manifest.reference.api_version != "v1" {
        return Err(refused(format!(
            "{} carries SOPS metadata; only Secrets are decrypted ({ENCRYPT_HINT})",
            manifest.reference
        )));
    }
    map.remove("sops");
    let mut outside = None;
    for (field, value) in map.iter() {
        if !SECRET_FIELDS.contains(&field.as_str()) && outside.is_none() {
            outside = encrypted_path(value, field);
        }
    }
    if let Some(path) = outside {
        return Err(refused(format!(
            "{}: {path} is encrypted ({ENCRYPT_HINT})",
            manifest.reference
        )));
    }
    manifest.encrypted = Some(true);
    Ok(())
}

/// The path of the first encrypted value below `value`, if any.
fn encrypted_path(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) if s.starts_with(ENCRYPTED_PREFIX) => Some(path.to_owned()),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| encrypted_path(v, &format!("{path}.{k}"))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| encrypted_path(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

fn for_each_secret_value(object: &Value, visit: &mut impl FnMut(&Value)) {
    for field in SECRET_FIELDS {
        if let Some(Value::Object(values)) = object.get(field) {
            values.values().for_each(&mut *visit);
        }
    }
}

/// Replaces every encrypted value of the Secret by its plaintext.
fn replace_values(
    manifest: &mut Manifest,
    plaintexts: &BTreeMap<String, Value>,
) -> Result<(), RenderError> {
    for field in SECRET_FIELDS {
        let Some(Value::Object(values)) = manifest.object.get_mut(field) else {
            continue;
        };
        for (key, value) in values.iter_mut() {
            let Some(text) = value.as_str().filter(|t| t.starts_with(ENCRYPTED_PREFIX)) else {
                continue;
            };
            let Some(plain) = plaintexts.get(text) else {
                return Err(RenderError::Decrypt {
                    file: manifest.origin.to_string(),
                    reason: format!(
                        "{}: {field}.{key} is encrypted, but no SOPS-encrypted file of the \
                         revision holds that value (values must come from an encrypted file \
                         unchanged)",
                        manifest.reference
                    ),
                });
            };
            *value = plain.clone();
        }
    }
    Ok(())
}

/// Every encrypted value of a SOPS-encrypted YAML file; `None` for any other file.
fn encrypted_values(file: &SourceFile) -> Option<BTreeSet<String>> {
    let text = std::str::from_utf8(&file.content).ok()?;
    if !text.contains(ENCRYPTED_PREFIX) {
        return None;
    }
    let documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, yaml_options()).ok()?;
    let mut values = BTreeSet::new();
    for document in documents.iter().filter(|d| d.get("sops").is_some()) {
        collect_encrypted(document, &mut values);
    }
    (!values.is_empty()).then_some(values)
}

fn collect_encrypted(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) if s.starts_with(ENCRYPTED_PREFIX) => {
            out.insert(s.clone());
        }
        Value::Object(map) => map.values().for_each(|v| collect_encrypted(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_encrypted(v, out)),
        _ => {}
    }
}

/// Pairs each encrypted value with its plaintext, walking the encrypted and the decrypted
/// documents side by side.
fn pair_values(encrypted: &Value, plain: &Value, out: &mut BTreeMap<String, Value>) {
    match (encrypted, plain) {
        (Value::String(s), plain) if s.starts_with(ENCRYPTED_PREFIX) => {
            out.insert(s.clone(), plain.clone());
        }
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                if let Some(other) = b.get(key) {
                    pair_values(value, other, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (value, other) in a.iter().zip(b) {
                pair_values(value, other, out);
            }
        }
        _ => {}
    }
}

impl Sops {
    /// Decrypts one file with `sops decrypt` in the sandbox; the map of its encrypted values
    /// to their plaintext.
    fn decrypt_file(
        &self,
        file: &SourceFile,
        key: &AgeKey,
        limits: &RenderLimits,
    ) -> Result<BTreeMap<String, Value>, RenderError> {
        let refused = |reason: String| RenderError::Decrypt {
            file: file.path.clone(),
            reason,
        };
        let scratch = scratch_dir()?;
        // Only the encrypted file is written; its plaintext comes back through a pipe.
        let name = "encrypted.yaml";
        write_scratch(scratch.path(), [(name, file.content.as_slice())])?;
        let args = [
            "decrypt",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            name,
        ]
        .map(Into::into)
        .to_vec();
        let job = Job {
            tool: Tool::Sops,
            launcher: &self.launcher,
            program: &self.program,
            args,
            env: vec![
                ("HOME".into(), scratch.path().into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("SOPS_AGE_KEY".into(), key.0.clone().into()),
                // No upstream release lookup (the sandbox has no network anyway).
                ("SOPS_DISABLE_VERSION_CHECK".into(), "1".into()),
            ],
            current_dir: scratch.path(),
            timeout: self.timeout,
        };
        let plaintext = match supervise::run(job, limits)? {
            Ended::Success(stdout) => stdout,
            Ended::Failed(stderr) => return Err(refused(sops_error(&stderr))),
        };
        let text = String::from_utf8(plaintext)
            .map_err(|_| refused("sops decrypted it to something other than UTF-8".into()))?;
        let parse = |text: &str| {
            serde_saphyr::from_multiple_with_options::<Value>(text, yaml_options())
                .map_err(|_| refused("sops decrypted it to malformed YAML".into()))
        };
        let (encrypted, plain) = (
            parse(&String::from_utf8_lossy(&file.content))?,
            parse(&text)?,
        );
        let mut pairs = BTreeMap::new();
        for (encrypted, plain) in encrypted.iter().zip(&plain) {
            pair_values(encrypted, plain, &mut pairs);
        }
        Ok(pairs)
    }
}

/// What sops says went wrong, fit for a Tenant's status: its first line that says something
/// and is not a warning (sops names the key groups it tried and the file's MAC, never
/// plaintext), bounded.
fn sops_error(stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("[warning]"))
        .unwrap_or("sops failed without a message");
    let mut message: String = line.chars().take(300).collect();
    if message.len() < line.len() {
        message.push('…');
    }
    format!("SOPS decryption failed: {message} (is the file encrypted for this tenant's age key?)")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::manifest::{ObjectRef, Origin};

    fn secret(object: Value) -> Manifest {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("s")
            .to_owned();
        Manifest {
            origin: Origin {
                file: "app/secret.yaml".into(),
                document: 1,
            },
            reference: ObjectRef {
                api_version: object["apiVersion"].as_str().unwrap_or("v1").into(),
                kind: object["kind"].as_str().unwrap_or("Secret").into(),
                namespace: None,
                name,
            },
            object,
            encrypted: Some(false),
        }
    }

    const CIPHER: &str = "ENC[AES256_GCM,data:abc=,iv:x,tag:y,type:str]";

    #[test]
    fn age_keys_are_parsed_without_quoting_the_text() {
        let key =
            AgeKey::parse("# created: now\n# public key: age1xyz\nAGE-SECRET-KEY-1ABC\n").unwrap();
        assert_eq!(format!("{key:?}"), "AgeKey([redacted])");
        assert_eq!(
            AgeKey::parse("AGE-SECRET-KEY-1A\nhunter2\n").unwrap_err(),
            "line 2 is not an age identity (AGE-SECRET-KEY-1…)"
        );
        assert!(AgeKey::parse("# nothing\n").is_err());
    }

    #[test]
    fn encrypted_secrets_are_marked_and_lose_their_sops_metadata() {
        let mut manifests = vec![
            secret(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                "data": {"password": CIPHER}, "sops": {"mac": "m"}}),
            ),
            secret(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain"},
                "data": {"password": "aHVudGVyMg=="}}),
            ),
        ];
        decrypt(&[], &mut manifests, None, &RenderLimits::default()).unwrap();
        assert_eq!(manifests[0].encrypted, Some(true));
        assert!(manifests[0].object.get("sops").is_none());
        assert_eq!(manifests[0].object["data"]["password"], CIPHER);
        assert_eq!(manifests[1].encrypted, Some(false));
    }

    #[test]
    fn only_the_values_of_secrets_may_be_encrypted() {
        let cases = [
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "sops": {}}),
                "app/secret.yaml (document 1): ConfigMap c carries SOPS metadata; only Secrets are decrypted",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a": CIPHER}}, "sops": {}}),
                "app/secret.yaml (document 1): Secret s: metadata.labels.a is encrypted",
            ),
        ];
        for (object, expected) in cases {
            let mut manifests = vec![secret(object)];
            let error = decrypt(&[], &mut manifests, None, &RenderLimits::default())
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(expected), "{error}");
        }
    }

    #[test]
    fn without_a_key_an_encrypted_secret_refuses_the_revision() {
        let mut manifests = vec![secret(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"p": CIPHER}, "sops": {}}),
        )];
        let error = decrypt(
            &[],
            &mut manifests,
            Some(&Sops::default()),
            &RenderLimits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("app/secret.yaml (document 1): Secret db is encrypted with SOPS, and this tenant has no decryption key"),
            "{error}"
        );
    }

    #[test]
    fn values_are_paired_with_their_plaintext_and_replaced() {
        let other = "ENC[AES256_GCM,data:eA==,iv:b,tag:c,type:str]";
        let encrypted =
            json!({"kind": "Secret", "data": {"a": CIPHER, "b": "plain"}, "list": [other]});
        let plain =
            json!({"kind": "Secret", "data": {"a": "aHVudGVyMg==", "b": "plain"}, "list": ["x"]});
        let mut pairs = BTreeMap::new();
        pair_values(&encrypted, &plain, &mut pairs);
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[other], "x");
        let mut manifest = secret(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db"}, "data": {"a": CIPHER}}));
        replace_values(&mut manifest, &pairs).unwrap();
        assert_eq!(manifest.object["data"]["a"], "aHVudGVyMg==");

        let mut unknown = secret(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db"}, "stringData": {"k": "ENC[AES256_GCM,data:other]"}}));
        let error = replace_values(&mut unknown, &pairs)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("Secret db: stringData.k is encrypted, but no SOPS-encrypted file"),
            "{error}"
        );
    }

    #[test]
    fn sops_errors_keep_their_first_line() {
        let stderr = "[warning] failed to retrieve latest version\n\
            Failed to get the data key required to decrypt the SOPS file.\n\nGroup 0: FAILED\n";
        assert_eq!(
            sops_error(stderr),
            "SOPS decryption failed: Failed to get the data key required to decrypt the SOPS file. (is the file encrypted for this tenant's age key?)"
        );
    }
}
