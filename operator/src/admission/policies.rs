//! The policies admission evaluates: each tenant's own policy ConfigMap (`berth-policy-<tenant>`,
//! the very bundle and data its agent loads), compiled once per bundle digest and shared by
//! every tenant using it, reloaded when the ConfigMap changes. A tenant whose policy cannot be
//! loaded gets no admission at all (fail closed).

use std::collections::HashMap;
use std::sync::Arc;

use berth_engine::policy::{CompiledPolicy, PolicyBundle};
use k8s_openapi::api::core::v1::ConfigMap;
use tokio::sync::Mutex;

use crate::platform::policy::{BUNDLE_KEY, DATA_KEY};

/// Compiled modules by digest of the bundle, and each tenant's bundle by the resourceVersion
/// of its ConfigMap.
#[derive(Default)]
pub struct Policies {
    compiled: Mutex<HashMap<Vec<u8>, Arc<CompiledPolicy>>>,
    tenants: Mutex<HashMap<String, (String, Arc<PolicyBundle>)>>,
}

impl Policies {
    /// The tenant's policy as `config_map` holds it.
    pub async fn get(
        &self,
        tenant: &str,
        config_map: &ConfigMap,
    ) -> Result<Arc<PolicyBundle>, String> {
        let version = config_map
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        if let Some((loaded, bundle)) = self.tenants.lock().await.get(tenant)
            && *loaded == version
        {
            return Ok(bundle.clone());
        }
        let name = config_map.metadata.name.clone().unwrap_or_default();
        let bytes = config_map
            .binary_data
            .as_ref()
            .and_then(|d| d.get(BUNDLE_KEY))
            .ok_or_else(|| format!("policy ConfigMap {name} has no binaryData {BUNDLE_KEY}"))?;
        let data = match config_map.data.as_ref().and_then(|d| d.get(DATA_KEY)) {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| format!("policy ConfigMap {name}: {DATA_KEY}: {e}"))?,
            None => serde_json::json!({}),
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes.0)
            .as_ref()
            .to_vec();
        let compiled = {
            // Held while compiling, so a burst of requests compiles a new bundle once.
            let mut compiled = self.compiled.lock().await;
            match compiled.get(&digest) {
                Some(c) => c.clone(),
                None => {
                    let c = Arc::new(
                        CompiledPolicy::compile(&format!("ConfigMap {name}"), &bytes.0)
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                    compiled.insert(digest, c.clone());
                    c
                }
            }
        };
        let bundle = Arc::new(PolicyBundle::new(compiled, data));
        self.tenants
            .lock()
            .await
            .insert(tenant.to_owned(), (version, bundle.clone()));
        Ok(bundle)
    }

    /// Forgets tenants that are gone and bundles no tenant uses any more.
    pub async fn retain(&self, tenants: &[String]) {
        let mut by_tenant = self.tenants.lock().await;
        by_tenant.retain(|t, _| tenants.contains(t));
        let in_use: Vec<String> = by_tenant.values().map(|(_, b)| b.version.clone()).collect();
        self.compiled
            .lock()
            .await
            .retain(|_, c| in_use.contains(&c.version));
    }
}
