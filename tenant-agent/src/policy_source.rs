//! Where the agent's policy comes from: a fixed bundle (the built-in one or `--bundle`), or the
//! platform's ConfigMap, re-read when it changes. Tenants cannot change that ConfigMap (it lives
//! outside their namespaces). An invalid update is refused and the previous bundle stays, also
//! across restarts (the last good bundle is kept in the agent's cache directory); with no valid
//! bundle at all, reconciles fail: the gate fails closed.

use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::policy::PolicyBundle;
use berth_engine::policy::config_map::{self, BUNDLE_KEY, DATA_KEY};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use tokio::sync::Mutex;

pub enum PolicySource {
    Fixed(Arc<PolicyBundle>),
    ConfigMap(Box<PlatformPolicy>),
}

/// The platform's policy ConfigMap and what was loaded from it.
pub struct PlatformPolicy {
    pub api: Api<ConfigMap>,
    pub name: String,
    /// Where the last good bundle and data are kept for the next start.
    pub cache: PathBuf,
    /// The resourceVersion loaded and its bundle.
    pub loaded: Mutex<Option<(String, Arc<PolicyBundle>)>>,
}

/// The bundle to check a revision with, and why an update was not taken, if one was refused.
pub struct CurrentPolicy {
    pub bundle: Arc<PolicyBundle>,
    pub refused_update: Option<String>,
}

/// Why a revision cannot be checked: no policy bundle has loaded (the gate fails closed).
#[derive(Debug, thiserror::Error)]
#[error("no valid policy bundle, nothing is applied: {why}")]
pub struct NoPolicy {
    /// Why the platform's bundle could not be taken.
    why: String,
}

impl PolicySource {
    pub async fn current(&self) -> Result<CurrentPolicy, NoPolicy> {
        let platform = match self {
            Self::Fixed(bundle) => {
                return Ok(CurrentPolicy {
                    bundle: bundle.clone(),
                    refused_update: None,
                });
            }
            Self::ConfigMap(platform) => platform,
        };
        let (api, name, cache, loaded) = (
            &platform.api,
            &platform.name,
            &platform.cache,
            &platform.loaded,
        );
        let mut loaded = loaded.lock().await;
        if loaded.is_none()
            && let Some(bundle) = load_cached(cache).await
        {
            tracing::info!(bundle = %bundle.version, "last good policy bundle restored from the cache");
            *loaded = Some((String::new(), Arc::new(bundle)));
        }
        let keep = |loaded: &Option<(String, Arc<PolicyBundle>)>, why: String| match loaded {
            Some((_, bundle)) => Ok(CurrentPolicy {
                bundle: bundle.clone(),
                refused_update: Some(why),
            }),
            None => Err(NoPolicy { why }),
        };
        let config_map = match api.get_opt(name).await {
            Ok(Some(cm)) => cm,
            Ok(None) => return keep(&loaded, format!("policy ConfigMap {name} not found")),
            Err(e) => return keep(&loaded, format!("reading policy ConfigMap {name}: {e}")),
        };
        let version = config_map
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        if let Some((loaded_version, bundle)) = loaded.as_ref()
            && *loaded_version == version
        {
            return Ok(CurrentPolicy {
                bundle: bundle.clone(),
                refused_update: None,
            });
        }
        match parse(&config_map).await {
            Ok((bundle, raw, data)) => {
                if let Err(e) = save_cached(cache, &raw, &data).await {
                    tracing::warn!(error = %e, "keeping the policy bundle in the cache");
                }
                tracing::info!(configmap = %name, bundle = %bundle.version, "policy bundle loaded");
                let bundle = Arc::new(bundle);
                *loaded = Some((version, bundle.clone()));
                Ok(CurrentPolicy {
                    bundle,
                    refused_update: None,
                })
            }
            Err(why) => {
                tracing::warn!(configmap = %name, reason = %why, "policy update refused");
                keep(&loaded, why)
            }
        }
    }
}

/// The bundle, its raw bytes and its data.
async fn parse(
    config_map: &ConfigMap,
) -> Result<(PolicyBundle, Vec<u8>, serde_json::Value), String> {
    let policy = config_map::parse(config_map).map_err(|e| e.to_string())?;
    let parsed = PolicyBundle::from_bytes(&policy.source_name, policy.bundle, policy.data.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok((parsed, policy.bundle.to_vec(), policy.data))
}

/// Keeps the bundle and its data (the ConfigMap's keys as file names) for the next start. Each
/// file is written aside and renamed over the old one, so a crash never leaves half a bundle.
async fn save_cached(
    cache: &std::path::Path,
    bundle: &[u8],
    data: &serde_json::Value,
) -> std::io::Result<()> {
    let (cache, bundle, data) = (cache.to_owned(), bundle.to_vec(), data.to_string());
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&cache)?;
        for (key, content) in [(DATA_KEY, data.as_bytes()), (BUNDLE_KEY, &bundle)] {
            let mut file = tempfile::NamedTempFile::new_in(&cache)?;
            std::io::Write::write_all(&mut file, content)?;
            file.persist(cache.join(key))?;
        }
        Ok(())
    })
    .await?
}

async fn load_cached(cache: &std::path::Path) -> Option<PolicyBundle> {
    let bundle = tokio::fs::read(cache.join(BUNDLE_KEY)).await.ok()?;
    let data = tokio::fs::read_to_string(cache.join(DATA_KEY)).await.ok()?;
    let data = serde_json::from_str(&data).ok()?;
    PolicyBundle::from_bytes("the cached last good bundle", &bundle, data)
        .await
        .ok()
}
