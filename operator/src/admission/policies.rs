//! The policies admission evaluates: each tenant's own policy ConfigMap (`berth-policy-<tenant>`,
//! the very bundle and data its agent loads), compiled once per bundle digest and shared by
//! every tenant using it, reloaded when the ConfigMap changes. A tenant whose policy cannot be
//! loaded gets no admission at all (fail closed).

use std::collections::HashMap;
use std::sync::Arc;

use berth_engine::policy::config_map;
use berth_engine::policy::{CompiledPolicy, PolicyBundle};
use k8s_openapi::api::core::v1::ConfigMap;
use tokio::sync::Mutex;

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
        let policy = config_map::parse(config_map).map_err(|e| e.to_string())?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, policy.bundle)
            .as_ref()
            .to_vec();
        let compiled = {
            // Held while compiling, so a burst of requests compiles a new bundle once.
            let mut compiled = self.compiled.lock().await;
            match compiled.get(&digest) {
                Some(c) => c.clone(),
                None => {
                    let c = Arc::new(
                        CompiledPolicy::compile(&policy.source_name, policy.bundle)
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                    compiled.insert(digest, c.clone());
                    c
                }
            }
        };
        let bundle = Arc::new(PolicyBundle::new(compiled, policy.data));
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
