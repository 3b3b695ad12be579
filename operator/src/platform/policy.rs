//! The platform repository's own policy: `policies/bundle.tar.gz` (compiled with
//! `opa build -t wasm`) and `policies/data.json` (parameters for every tenant), with
//! `policies/tenants/<tenant>.json` replacing the parameters for one tenant. Each part is
//! optional: without a bundle the built-in one is distributed, without data `{}`.

use std::collections::BTreeMap;

use berth_engine::policy::config_map::{BUNDLE_KEY, DATA_KEY, PolicyConfig};
use berth_engine::render::SourceFile;

/// Why the platform repository's policy cannot be distributed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlatformPolicyError {
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Reads the policy files under `dir`; JSON files must hold an object.
pub fn read_policy(files: &[SourceFile], dir: &str) -> Result<PolicyConfig, PlatformPolicyError> {
    let dir = dir.trim_matches('/');
    let bundle_path = format!("{dir}/{BUNDLE_KEY}");
    let data_path = format!("{dir}/{DATA_KEY}");
    let tenants_prefix = format!("{dir}/tenants/");
    let mut policy = PolicyConfig {
        bundle: None,
        data: "{}".into(),
        tenant_data: BTreeMap::new(),
    };
    for file in files {
        if file.path == bundle_path {
            policy.bundle = Some(file.content.clone());
        } else if file.path == data_path {
            policy.data = json_object(file)?;
        } else if let Some(name) = file
            .path
            .strip_prefix(&tenants_prefix)
            .and_then(|rest| rest.strip_suffix(".json"))
        {
            policy
                .tenant_data
                .insert(name.to_owned(), json_object(file)?);
        }
    }
    Ok(policy)
}

fn json_object(file: &SourceFile) -> Result<String, PlatformPolicyError> {
    let invalid = |reason: String| PlatformPolicyError::Invalid {
        path: file.path.clone(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&file.content).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid("must be a JSON object (Rego's `data`)".into()));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            content: content.as_bytes().to_vec(),
        }
    }

    #[test]
    fn every_part_is_optional() {
        let policy = read_policy(&[file("tenants/a.yaml", "x")], "policies");
        assert_eq!(
            policy,
            Ok(PolicyConfig {
                bundle: None,
                data: "{}".into(),
                tenant_data: BTreeMap::new(),
            })
        );
    }

    #[test]
    fn bundle_data_and_per_tenant_data_are_read() {
        let policy = read_policy(
            &[
                file("policies/bundle.tar.gz", "bytes"),
                file(
                    "policies/data.json",
                    r#"{"params": {"required_labels": ["team"]}}"#,
                ),
                file("policies/tenants/team-a.json", r#"{"params": {}}"#),
                file("policies/README.md", "ignored"),
            ],
            "policies",
        )
        .unwrap();
        assert_eq!(policy.bundle.as_deref(), Some(&b"bytes"[..]));
        assert_eq!(policy.data, r#"{"params":{"required_labels":["team"]}}"#);
        assert_eq!(policy.tenant_data["team-a"], r#"{"params":{}}"#);
    }

    #[test]
    fn data_that_is_not_a_json_object_is_named() {
        let error = read_policy(&[file("policies/data.json", "[1]")], "policies").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("policies/data.json: must be a JSON object")
        );
        let error = read_policy(&[file("policies/tenants/x.json", "{")], "policies").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("policies/tenants/x.json: not JSON")
        );
    }
}
