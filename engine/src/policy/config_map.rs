//! The policy ConfigMap contract: how a policy travels from the platform repository to the
//! agents and the admission webhook. The operator publishes the platform's ConfigMap (binaryData
//! `bundle.tar.gz` if the platform has its own bundle, data `data.json` for every tenant and
//! `tenant.<tenant>.json` for one) and gives each tenant a copy holding just its own bundle and
//! data, which its agent and the admission webhook load.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::DEFAULT_BUNDLE;

/// binaryData key of the compiled bundle (`opa build -t wasm`).
pub const BUNDLE_KEY: &str = "bundle.tar.gz";
/// data key of the JSON data (Rego's `data`).
pub const DATA_KEY: &str = "data.json";

/// data key of one tenant's own data in the platform's ConfigMap.
pub fn tenant_data_key(tenant: &str) -> String {
    format!("tenant.{tenant}.json")
}

/// Why a tenant's policy ConfigMap cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigMapError {
    #[error("policy ConfigMap {name} has no binaryData {BUNDLE_KEY}")]
    NoBundle { name: String },
    #[error("policy ConfigMap {name}: {DATA_KEY}: {source}")]
    Data {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The policy a ConfigMap carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// `None`: the built-in bundle.
    pub bundle: Option<Vec<u8>>,
    /// JSON text of the data for every tenant.
    pub data: String,
    /// JSON text of the data for one tenant, replacing `data` (the platform's ConfigMap only).
    pub tenant_data: BTreeMap<String, String>,
}

impl PolicyConfig {
    /// What the platform's ConfigMap (`None`: none published) gives `tenant`: the platform's
    /// bundle or else the built-in one, and the tenant's own data or else the common data or
    /// else `{}`.
    pub fn for_tenant(platform: Option<&ConfigMap>, tenant: &str) -> Self {
        let bundle = platform
            .and_then(bundle)
            .map_or_else(|| DEFAULT_BUNDLE.to_vec(), <[u8]>::to_vec);
        let data = platform
            .and_then(|cm| cm.data.as_ref())
            .and_then(|d| d.get(&tenant_data_key(tenant)).or_else(|| d.get(DATA_KEY)))
            .cloned()
            .unwrap_or_else(|| "{}".into());
        Self {
            bundle: Some(bundle),
            data,
            tenant_data: BTreeMap::new(),
        }
    }

    /// The ConfigMap carrying this policy, with `metadata`.
    pub fn to_config_map(&self, metadata: ObjectMeta) -> ConfigMap {
        let mut data = BTreeMap::from([(DATA_KEY.to_owned(), self.data.clone())]);
        for (tenant, text) in &self.tenant_data {
            data.insert(tenant_data_key(tenant), text.clone());
        }
        ConfigMap {
            metadata,
            binary_data: self
                .bundle
                .as_ref()
                .map(|b| BTreeMap::from([(BUNDLE_KEY.to_owned(), ByteString(b.clone()))])),
            data: Some(data),
            ..ConfigMap::default()
        }
    }
}

/// A tenant's policy ConfigMap as its agent and the admission webhook load it.
pub struct TenantPolicy<'a> {
    /// Names the ConfigMap in errors about the bundle.
    pub source_name: String,
    pub bundle: &'a [u8],
    /// `{}` when the ConfigMap has no data.
    pub data: Value,
}

/// Reads a tenant's policy ConfigMap: the bundle must be there, the data, if any, must be JSON.
pub fn parse(config_map: &ConfigMap) -> Result<TenantPolicy<'_>, ConfigMapError> {
    let name = config_map.metadata.name.clone().unwrap_or_default();
    let bundle =
        bundle(config_map).ok_or_else(|| ConfigMapError::NoBundle { name: name.clone() })?;
    let data = match data(config_map) {
        Some(text) => serde_json::from_str(text).map_err(|source| ConfigMapError::Data {
            name: name.clone(),
            source,
        })?,
        None => serde_json::json!({}),
    };
    Ok(TenantPolicy {
        source_name: format!("ConfigMap {name}"),
        bundle,
        data,
    })
}

/// The bundle of a policy ConfigMap, if it has one.
pub fn bundle(config_map: &ConfigMap) -> Option<&[u8]> {
    config_map
        .binary_data
        .as_ref()
        .and_then(|d| d.get(BUNDLE_KEY))
        .map(|b| b.0.as_slice())
}

/// The common data of a policy ConfigMap (JSON text), if it has any.
pub fn data(config_map: &ConfigMap) -> Option<&str> {
    config_map
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, policy: &PolicyConfig) -> ConfigMap {
        policy.to_config_map(ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        })
    }

    #[test]
    fn what_is_built_is_what_is_parsed() {
        let platform = PolicyConfig {
            bundle: Some(b"bytes".to_vec()),
            data: r#"{"common":1}"#.into(),
            tenant_data: BTreeMap::from([("a".into(), r#"{"own":1}"#.into())]),
        };
        let cm = named("berth-policy", &platform);
        assert_eq!(
            cm.data.as_ref().unwrap().keys().collect::<Vec<_>>(),
            ["data.json", "tenant.a.json"]
        );
        let copy = named("berth-policy-a", &PolicyConfig::for_tenant(Some(&cm), "a"));
        let parsed = parse(&copy).unwrap();
        assert_eq!(parsed.source_name, "ConfigMap berth-policy-a");
        assert_eq!(parsed.bundle, b"bytes");
        assert_eq!(parsed.data, serde_json::json!({"own": 1}));
    }

    #[test]
    fn a_missing_bundle_or_data_that_is_not_json_is_named() {
        let mut cm = named(
            "p",
            &PolicyConfig {
                bundle: None,
                data: "{".into(),
                tenant_data: BTreeMap::new(),
            },
        );
        assert_eq!(
            parse(&cm).err().map(|e| e.to_string()).as_deref(),
            Some("policy ConfigMap p has no binaryData bundle.tar.gz")
        );
        cm.binary_data = Some(BTreeMap::from([(BUNDLE_KEY.into(), ByteString(vec![1]))]));
        assert!(
            parse(&cm)
                .err()
                .is_some_and(|e| e.to_string().starts_with("policy ConfigMap p: data.json: ")),
        );
        cm.data = None;
        assert_eq!(parse(&cm).unwrap().data, serde_json::json!({}));
    }
}
