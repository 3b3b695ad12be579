//! Platform-repo sync: fetch the platform repository → read and validate every Tenant under
//! its tenants directory (a revision with any problem is refused whole; the applied Tenants
//! stay) → server-side apply the Tenants → delete the Tenants a commit removed (their
//! finalizer offboards them). The applied set and the last result are kept in the ConfigMap
//! `berth-platform` in the operator's namespace. The revision's policy (bundle and data, see
//! `platform::policy`) is checked too and published in the ConfigMap `berth-policy`, from which
//! the Tenant controller gives each tenant its own copy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::{FIELD_MANAGER, legacy};
use berth_engine::api::{MANAGED_BY, Tenant};
use berth_engine::policy::PolicyBundle;
use berth_engine::policy::config_map::{BUNDLE_KEY, PolicyConfig};
use berth_engine::source::{GitSource, SourceError};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DeleteParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::apiserver::{self, ApiError};
use crate::metrics::OperatorMetrics;
use crate::platform::policy::{PlatformPolicyError, read_policy};
use crate::platform::{PlatformError, TenantProblem, read_tenants, validate};

/// Tenants applied at once.
const APPLY_CONCURRENCY: usize = 8;
/// An unchanged platform commit is applied again after this long, correcting drift.
const REAPPLY: Duration = Duration::from_secs(300);

/// The ConfigMap holding the sync's state.
pub const STATE: &str = "berth-platform";
/// The ConfigMap holding the platform's policy: bundle, data, and per-tenant data.
pub const PLATFORM_POLICY: &str = "berth-policy";

/// Why a platform revision was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PlatformSyncError {
    #[error("fetching the platform repository: {0}")]
    Fetch(#[source] SourceError),
    #[error("fetching the platform repository: the fetch stopped: {0}")]
    FetchTask(#[source] tokio::task::JoinError),
    #[error("reading tenants: {0}")]
    Read(#[source] PlatformError),
    #[error("revision refused, nothing applied: {}", joined(.0))]
    Invalid(Vec<TenantProblem>),
    #[error("revision refused, nothing applied: {0}")]
    Policy(#[source] PlatformPolicyError),
    #[error("revision refused, nothing applied: {0}")]
    Bundle(#[source] berth_engine::policy::PolicyError),
    #[error("encoding Tenant {name}: {source}")]
    Encode {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
}

fn joined(problems: &[TenantProblem]) -> String {
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

pub struct PlatformSync {
    pub client: Client,
    pub source: GitSource,
    /// Directory of the repository holding Tenant documents.
    pub dir: String,
    pub operator_namespace: String,
    pub interval: Duration,
    pub metrics: Arc<OperatorMetrics>,
    /// Directory of the repository holding the platform's policy.
    pub policy_dir: String,
    /// The commit applied last and when: re-applied only after `REAPPLY` (to correct drift).
    pub last_applied: tokio::sync::Mutex<Option<(String, std::time::Instant)>>,
    /// The last bundle that loaded, so an unchanged bundle is not compiled again every sync.
    pub checked_bundle: tokio::sync::Mutex<Option<Vec<u8>>>,
}

impl PlatformSync {
    /// Syncs every interval until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            // A sync is not cut short by `stop`: its writes are idempotent, but a half-done
            // one would only be finished by the next leader.
            match self.sync().await {
                Ok(Some(revision)) => {
                    OperatorMetrics::count(&self.metrics.platform_syncs, "applied");
                    tracing::info!(%revision, "platform repository applied");
                }
                Ok(None) => tracing::debug!("platform repository unchanged"),
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

    /// Fetches and, unless the commit was applied a moment ago, applies it; `None` when there
    /// was nothing to do (idle syncs write nothing).
    async fn sync(&self) -> Result<Option<String>, PlatformSyncError> {
        let source = self.source.clone();
        let interrupt = Arc::new(AtomicBool::new(false));
        let revision = tokio::task::spawn_blocking(move || source.fetch(&interrupt))
            .await
            .map_err(PlatformSyncError::FetchTask)?
            .map_err(PlatformSyncError::Fetch)?;
        let mut last = self.last_applied.lock().await;
        if let Some((commit, at)) = last.as_ref()
            && *commit == revision.commit
            && at.elapsed() < REAPPLY
        {
            return Ok(None);
        }
        *last = None;
        let tenants = read_tenants(&revision.files, &self.dir).map_err(PlatformSyncError::Read)?;
        let problems = validate(&tenants, &self.operator_namespace);
        if !problems.is_empty() {
            return Err(PlatformSyncError::Invalid(problems));
        }
        let policy =
            read_policy(&revision.files, &self.policy_dir).map_err(PlatformSyncError::Policy)?;
        self.check_bundle(&policy).await?;
        self.publish_policy(&policy, &revision.commit).await?;
        let api = Api::<Tenant>::all(self.client.clone());
        // Recorded before the Tenants are applied: the Tenant controller provisions only the
        // Tenants the platform repository declares, and reads them from this record.
        let previous = self.previous().await;
        let inventory: Vec<String> = tenants.iter().map(|(_, t)| t.name_any()).collect();
        self.record(Some(&revision.commit), &inventory, "applying")
            .await?;
        // A few at a time: a commit onboarding hundreds of tenants should not take minutes.
        let mut declared = BTreeSet::new();
        for chunk in tenants.chunks(APPLY_CONCURRENCY) {
            let mut batch = Vec::with_capacity(chunk.len());
            for (_, tenant) in chunk {
                batch.push(self.apply_tenant(&api, tenant));
            }
            for name in futures::future::join_all(batch).await {
                declared.insert(name?);
            }
        }
        for name in previous.difference(&declared) {
            let ours = match api.get_opt(name).await {
                Ok(Some(t)) => t
                    .labels()
                    .get(MANAGED_BY.0)
                    .is_some_and(|v| v == MANAGED_BY.1),
                Ok(None) => false,
                Err(source) => {
                    return Err(ApiError::of("reading", format!("Tenant {name}"))(source).into());
                }
            };
            if ours {
                api.delete(name, &DeleteParams::default())
                    .await
                    .map_err(ApiError::of("deleting", format!("Tenant {name}")))?;
                tracing::info!(tenant = %name, "removed from the platform repository: offboarding");
            }
        }
        self.record(Some(&revision.commit), &inventory, "applied")
            .await?;
        *last = Some((revision.commit.clone(), std::time::Instant::now()));
        Ok(Some(revision.commit))
    }

    /// Applies one Tenant as the platform declares it; returns its name.
    async fn apply_tenant(
        &self,
        api: &Api<Tenant>,
        tenant: &Tenant,
    ) -> Result<String, PlatformSyncError> {
        let name = tenant.name_any();
        let mut object =
            serde_json::to_value(tenant).map_err(|source| PlatformSyncError::Encode {
                name: name.clone(),
                source,
            })?;
        let mut labels = tenant.labels().clone();
        labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
        object["metadata"] =
            json!({"name": name, "labels": labels, "annotations": tenant.annotations()});
        let failed = ApiError::of("applying", format!("Tenant {name}"));
        let applied = apiserver::apply(api, FIELD_MANAGER, &name, &object, failed).await?;
        if legacy::holds_legacy_fields(&applied) {
            legacy::release(api, &applied).await?;
        }
        Ok(name)
    }

    /// Refuses a bundle that does not load as the agents would load it.
    async fn check_bundle(&self, policy: &PolicyConfig) -> Result<(), PlatformSyncError> {
        let Some(bundle) = &policy.bundle else {
            return Ok(());
        };
        let mut checked = self.checked_bundle.lock().await;
        if checked.as_ref() == Some(bundle) {
            return Ok(());
        }
        let path = format!("{}/{BUNDLE_KEY}", self.policy_dir.trim_matches('/'));
        PolicyBundle::from_bytes(&path, bundle, json!({}))
            .await
            .map_err(PlatformSyncError::Bundle)?;
        *checked = Some(bundle.clone());
        Ok(())
    }

    async fn publish_policy(
        &self,
        policy: &PolicyConfig,
        commit: &str,
    ) -> Result<(), PlatformSyncError> {
        let config_map = policy.to_config_map(ObjectMeta {
            name: Some(PLATFORM_POLICY.into()),
            namespace: Some(self.operator_namespace.clone()),
            labels: Some(BTreeMap::from([(MANAGED_BY.0.into(), MANAGED_BY.1.into())])),
            annotations: Some(BTreeMap::from([(
                "berth.dev/platform-revision".into(),
                commit.to_owned(),
            )])),
            ..ObjectMeta::default()
        });
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), &self.operator_namespace);
        let failed = ApiError::of(
            "publishing the policy in",
            format!("ConfigMap {PLATFORM_POLICY}"),
        );
        apiserver::apply(&api, FIELD_MANAGER, PLATFORM_POLICY, &config_map, failed).await?;
        Ok(())
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
            let failed = ApiError::of("recording the sync in", format!("ConfigMap {STATE}"));
            apiserver::apply(&api, manager, STATE, &state, failed).await?;
        }
        Ok(())
    }
}
