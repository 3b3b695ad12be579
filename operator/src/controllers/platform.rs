//! Platform-repo sync: fetch the platform repository → read and validate every Tenant under
//! its tenants directory (a revision with any problem is refused whole; the applied Tenants
//! stay) → server-side apply the Tenants → delete the Tenants a commit removed (their
//! finalizer offboards them). The applied set and the last result are kept in the ConfigMap
//! `berth-platform` in the operator's namespace.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use berth_engine::api::Tenant;
use berth_engine::apply::FIELD_MANAGER;
use berth_engine::source::GitSource;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::metrics::OperatorMetrics;
use crate::platform::{read_tenants, validate};

/// The ConfigMap holding the sync's state.
pub const STATE: &str = "berth-platform";
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "berth");

/// Why a platform revision was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PlatformSyncError {
    #[error("fetching the platform repository: {0}")]
    Fetch(String),
    #[error("reading tenants: {0}")]
    Read(String),
    #[error("revision refused, nothing applied: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{action} Tenant {name}: {source}")]
    Api {
        action: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub struct PlatformSync {
    pub client: Client,
    pub source: GitSource,
    /// Directory of the repository holding Tenant documents.
    pub dir: String,
    pub operator_namespace: String,
    pub interval: Duration,
    pub metrics: Arc<OperatorMetrics>,
}

impl PlatformSync {
    /// Syncs every interval until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            // A sync is not cut short by `stop`: its writes are idempotent, but a half-done
            // one would only be finished by the next leader.
            match self.sync().await {
                Ok(revision) => {
                    OperatorMetrics::count(&self.metrics.platform_syncs, "applied");
                    tracing::info!(%revision, "platform repository applied");
                }
                Err(error) => {
                    OperatorMetrics::count(&self.metrics.platform_syncs, "refused");
                    tracing::warn!(%error, "platform repository not applied");
                    let _ = self.record(None, &[], &error.to_string()).await;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn sync(&self) -> Result<String, PlatformSyncError> {
        let source = self.source.clone();
        let interrupt = Arc::new(AtomicBool::new(false));
        let revision = tokio::task::spawn_blocking(move || source.fetch(&interrupt))
            .await
            .map_err(|e| PlatformSyncError::Fetch(e.to_string()))?
            .map_err(|e| PlatformSyncError::Fetch(e.to_string()))?;
        let tenants = read_tenants(&revision.files, &self.dir)
            .map_err(|e| PlatformSyncError::Read(e.to_string()))?;
        let problems = validate(&tenants, &self.operator_namespace);
        if !problems.is_empty() {
            return Err(PlatformSyncError::Invalid(
                problems.iter().map(ToString::to_string).collect(),
            ));
        }
        let api = Api::<Tenant>::all(self.client.clone());
        let mut declared = BTreeSet::new();
        for (_, tenant) in &tenants {
            let name = tenant.name_any();
            let mut object =
                serde_json::to_value(tenant).map_err(|e| PlatformSyncError::Read(e.to_string()))?;
            let mut labels = tenant.labels().clone();
            labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
            object["metadata"] =
                json!({"name": name, "labels": labels, "annotations": tenant.annotations()});
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(|source| PlatformSyncError::Api {
                action: "applying",
                name: name.clone(),
                source,
            })?;
            declared.insert(name);
        }
        for name in self.previous().await.difference(&declared) {
            let ours = match api.get_opt(name).await {
                Ok(Some(t)) => t
                    .labels()
                    .get(MANAGED_BY.0)
                    .is_some_and(|v| v == MANAGED_BY.1),
                Ok(None) => false,
                Err(source) => {
                    return Err(PlatformSyncError::Api {
                        action: "reading",
                        name: name.clone(),
                        source,
                    });
                }
            };
            if ours {
                api.delete(name, &DeleteParams::default())
                    .await
                    .map_err(|source| PlatformSyncError::Api {
                        action: "deleting",
                        name: name.clone(),
                        source,
                    })?;
                tracing::info!(tenant = %name, "removed from the platform repository: offboarding");
            }
        }
        let inventory: Vec<String> = declared.into_iter().collect();
        self.record(Some(&revision.commit), &inventory, "applied")
            .await?;
        Ok(revision.commit)
    }

    /// Tenants the last applied revision declared.
    async fn previous(&self) -> BTreeSet<String> {
        let state = Api::<ConfigMap>::namespaced(self.client.clone(), &self.operator_namespace)
            .get_opt(STATE)
            .await
            .ok()
            .flatten();
        state
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("tenants").cloned())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Records the result. The inventory and revision (one field manager) only change with an
    /// applied revision; the message (another) with every sync, so recording a refusal does not
    /// drop the inventory.
    async fn record(
        &self,
        revision: Option<&str>,
        inventory: &[String],
        message: &str,
    ) -> Result<(), PlatformSyncError> {
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), &self.operator_namespace);
        let mut writes = vec![("berth-platform-status", json!({"message": message}))];
        if let Some(revision) = revision {
            let tenants = serde_json::to_string(inventory).unwrap_or_default();
            writes.push((
                "berth-platform-inventory",
                json!({"revision": revision, "tenants": tenants}),
            ));
        }
        for (manager, data) in writes {
            let state = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": STATE, "namespace": self.operator_namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
                "data": data});
            api.patch(
                STATE,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(&state),
            )
            .await
            .map_err(|source| PlatformSyncError::Api {
                action: "recording the sync of",
                name: STATE.into(),
                source,
            })?;
        }
        Ok(())
    }
}
