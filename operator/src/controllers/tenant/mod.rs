//! Tenant controller: provisions each Tenant's berth with server-side apply (`writes`), and
//! reports Provisioned, Synced, PolicyCompliant and Ready (`status`, mirroring its agent's
//! TenantSync); a finalizer offboards a deleted Tenant (`offboard`).

mod discovery;
mod drift;
mod migrate;
mod offboard;
mod secrets;
mod status;
mod writes;

use offboard::{keeps_namespaces, offboard};
pub use secrets::{read_credentials, read_decryption_key};
use writes::{apply_agent_inputs, apply_all, delete, ensure_sync, prune};

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use berth_engine::api::{ReportKey, SYNC_NAME, TENANT_LABEL, Tenant, TenantSync};
use berth_engine::policy::Profile;
use berth_engine::report::ReportSigner;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, ResourceQuota, Secret};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::{self, ObjectRef, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::platform::{PLATFORM_POLICY, STATE};
use super::{FIELD_MANAGER, legacy};
use crate::apiserver::{self, ApiError};
use crate::metrics::OperatorMetrics;
use crate::provision::agent::{self, AgentSecrets, DeploymentSettings};
use crate::provision::{self, PROVISIONED_LABEL, ProvisionContext, ProvisionError};
use status::{Decided, decided, derive};

/// Finalizer that offboards a Tenant before it goes.
pub const FINALIZER: &str = "berth.dev/offboard";

/// Tenants reconciled at once.
const RECONCILE_CONCURRENCY: u16 = 16;

/// Provisioned objects are re-applied this often, correcting drift.
const RESYNC: Duration = Duration::from_secs(300);

/// Annotation that keeps a removed tenant's namespaces.
pub const KEEP_NAMESPACES: &str = "berth.dev/keep-namespaces";

/// Why a Tenant could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The spec cannot be provisioned: waits for the next change of the Tenant.
    #[error(transparent)]
    Invalid(#[from] ProvisionError),
    /// The tenant's report signing key could not be made.
    #[error(transparent)]
    Keys(#[from] berth_engine::report::SignatureError),
    /// The API server refused or failed: retried with backoff.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl TenantError {
    /// A stable label for metrics and conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(ProvisionError::NotDeclared) => "NotDeclared",
            Self::Invalid(ProvisionError::KindNotServed(_)) => "KindNotServed",
            Self::Invalid(_) => "InvalidSpec",
            Self::Keys(_) => "SigningKey",
            Self::Api(_) => "ApiError",
        }
    }
}

/// What the Tenant controller needs to run.
pub struct Settings {
    pub client: Client,
    pub provision: ProvisionContext,
    pub metrics: Arc<OperatorMetrics>,
    /// Label selector of the Tenants this operator manages ("" for all).
    pub selector: String,
    /// Set when agents run as Deployments (`--agent-mode deployment`).
    pub deployment: Option<DeploymentSettings>,
    /// Provision only Tenants the platform repository declares (when it syncs one): a Tenant
    /// created in the cluster by other means gets a condition saying so, and nothing else.
    pub platform_only: bool,
}

struct Context {
    client: Client,
    provision: ProvisionContext,
    deployment: Option<DeploymentSettings>,
    /// The platform policy ConfigMap, as last seen.
    policy: reflector::Store<ConfigMap>,
    /// The platform sync's state (the Tenants the platform repository declares), as last seen.
    state: reflector::Store<ConfigMap>,
    /// Every Tenant this operator manages, as last seen.
    tenants: reflector::Store<Tenant>,
    platform_only: bool,
    /// Per tenant, what its berth was last fully provisioned for and when.
    provisioned: drift::Memo,
}

/// What a full provisioning depends on besides time: the Tenant's spec and the platform policy.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ProvisionedFor {
    generation: Option<i64>,
    policy_version: Option<String>,
}

impl Context {
    fn platform_object(
        &self,
        store: &reflector::Store<ConfigMap>,
        name: &str,
    ) -> Option<Arc<ConfigMap>> {
        store.get(&ObjectRef::new(name).within(&self.provision.operator_namespace))
    }

    fn provisioned_for(&self, tenant: &Tenant) -> ProvisionedFor {
        let platform = self.platform_object(&self.policy, PLATFORM_POLICY);
        ProvisionedFor {
            generation: tenant.metadata.generation,
            policy_version: platform.and_then(|cm| cm.metadata.resource_version.clone()),
        }
    }

    /// Whether the berth was provisioned for exactly this, recently: most reconciles only
    /// mirror the agent's TenantSync and need no write but the status.
    fn is_fresh(&self, name: &str, wanted: &ProvisionedFor) -> bool {
        let memo = self
            .provisioned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        memo.get(name)
            .is_some_and(|(done, at)| done == wanted && at.elapsed() < RESYNC)
    }

    /// The tenant's policy copy as it is to be published: the platform's bundle and data.
    fn tenant_policy(&self, tenant: &Tenant) -> ConfigMap {
        let platform = self.platform_object(&self.policy, PLATFORM_POLICY);
        provision::tenant_policy(
            &tenant.name_any(),
            &self.provision.operator_namespace,
            platform.as_deref(),
        )
    }

    /// Why the Tenant may not be provisioned although its spec is valid on its own: it is not
    /// declared by the platform repository, or it claims a namespace an older Tenant has.
    fn refusal(&self, tenant: &Tenant) -> Option<ProvisionError> {
        let name = tenant.name_any();
        if self.platform_only {
            let declared = self
                .platform_object(&self.state, STATE)
                .and_then(|state| state.data.clone())
                .and_then(|data| data.get("tenants").cloned())
                .and_then(|tenants| serde_json::from_str::<Vec<String>>(&tenants).ok())
                .is_some_and(|tenants| tenants.contains(&name));
            if !declared {
                return Some(ProvisionError::NotDeclared);
            }
        }
        let problems = crate::platform::validate(
            &[(format!("Tenant {name}"), tenant.clone())],
            &self.provision.operator_namespace,
        );
        if let Some(problem) = problems.first() {
            return Some(ProvisionError::Invalid(problem.problem.clone()));
        }
        let mine = tenant.namespaces();
        let created = |t: &Tenant| t.metadata.creation_timestamp.as_ref().map(|c| c.0);
        self.tenants
            .state()
            .iter()
            .filter(|other| other.name_any() != name && created(other) <= created(tenant))
            .find_map(|other| {
                let ns = other
                    .namespaces()
                    .into_iter()
                    .find(|ns| mine.contains(ns))?;
                Some(ProvisionError::Invalid(format!(
                    "namespace {ns} is already claimed by tenant {}",
                    other.name_any()
                )))
            })
    }

    fn remember(&self, name: &str, done: Option<ProvisionedFor>) {
        let mut memo = self
            .provisioned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match done {
            Some(done) => memo.insert(name.to_owned(), (done, Instant::now())),
            None => memo.remove(name),
        };
    }
}

/// Runs the controller until `stop`, letting running reconciles finish. A Tenant is
/// reconciled when it changes, when its agent's TenantSync changes (its status is mirrored),
/// when the platform policy changes (every tenant gets the new copy), and every few minutes
/// (drift of the provisioned objects is corrected).
pub async fn run(settings: Settings, stop: CancellationToken) {
    let Settings {
        client,
        provision,
        metrics,
        selector,
        deployment,
        platform_only,
    } = settings;
    let tenants = Api::<Tenant>::all(client.clone());
    // The platform policy and the platform sync's state (which Tenants the repository declares).
    let (policy, policy_changes) =
        config_map(&client, &provision.operator_namespace, PLATFORM_POLICY);
    let (state, state_changes) = config_map(&client, &provision.operator_namespace, STATE);
    let platform_changes = futures::stream::select(policy_changes, state_changes);
    let memo = drift::Memo::default();
    let controller = Controller::new(tenants, watcher::Config::default().labels(&selector));
    let context = Context {
        client: client.clone(),
        provision,
        deployment,
        policy,
        state,
        tenants: controller.store(),
        platform_only,
        provisioned: memo.clone(),
    };
    let tenant_of = |object: &dyn TenantLabelled| {
        object
            .tenant_label()
            .map(|tenant| ObjectRef::<Tenant>::new(&tenant))
    };
    controller
        // Bounded, so a thousand tenants arriving at once queue instead of all being in flight.
        .with_config(
            kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY),
        )
        .watches(
            Api::<TenantSync>::all(client.clone()),
            watcher::Config::default().labels(TENANT_LABEL),
            move |sync| tenant_of(&sync),
        )
        .watches_stream(
            drift::drifted::<NetworkPolicy>(&client, memo.clone()),
            move |o| tenant_of(&o),
        )
        .watches_stream(drift::drifted::<Role>(&client, memo.clone()), move |o| {
            tenant_of(&o)
        })
        .watches_stream(
            drift::drifted::<RoleBinding>(&client, memo.clone()),
            move |o| tenant_of(&o),
        )
        .watches_stream(
            drift::drifted::<ResourceQuota>(&client, memo.clone()),
            move |o| tenant_of(&o),
        )
        .watches_stream(
            drift::drifted::<LimitRange>(&client, memo.clone()),
            move |o| tenant_of(&o),
        )
        .watches_stream(drift::drifted::<ServiceAccount>(&client, memo), move |o| {
            tenant_of(&o)
        })
        .reconcile_all_on(platform_changes)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, error_policy, Arc::new(context))
        .for_each(|result| {
            let metrics = metrics.clone();
            async move {
                match result {
                    Ok((object, _)) => {
                        OperatorMetrics::count(&metrics.tenant_reconciles, "ok");
                        tracing::debug!(tenant = %object.name, "reconciled");
                    }
                    // A TenantSync of a Tenant this operator does not manage (another shard's).
                    Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
                        tracing::debug!(tenant = %object.name, "not managed here");
                    }
                    Err(error) => {
                        OperatorMetrics::count(&metrics.tenant_reconciles, "error");
                        tracing::warn!(%error, "tenant reconcile failed");
                    }
                }
            }
        })
        .await;
}

async fn reconcile(
    tenant: Arc<Tenant>,
    context: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<TenantError>> {
    let api = Api::<Tenant>::all(context.client.clone());
    finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            Event::Apply(tenant) => provision_tenant(&tenant, &context).await,
            Event::Cleanup(tenant) => offboard(&tenant, &context).await,
        }
    })
    .await
}

fn error_policy(
    _: Arc<Tenant>,
    error: &kube::runtime::finalizer::Error<TenantError>,
    _: Arc<Context>,
) -> Action {
    tracing::warn!(%error, "tenant will be retried");
    Action::requeue(Duration::from_secs(10))
}

async fn provision_tenant(tenant: &Tenant, context: &Context) -> Result<Action, TenantError> {
    // What is provisioned depends on the platform's policy and state: never decide on a
    // watch that has not listed them yet.
    for store in [&context.policy, &context.state] {
        if tokio::time::timeout(Duration::from_secs(30), store.wait_until_ready())
            .await
            .is_err()
        {
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
    }
    let name = tenant.name_any();
    let wanted = context.provisioned_for(tenant);
    let outcome = if context.is_fresh(&name, &wanted) {
        Ok(Provisioned::as_recorded(tenant))
    } else {
        let outcome = provision_steps(tenant, context).await;
        context.remember(&name, outcome.is_ok().then_some(wanted));
        outcome
    };
    let provisioned = match &outcome {
        Ok(_) => decided(
            "Provisioned",
            "True",
            "Provisioned",
            "namespaces, RBAC, quota, limits and isolation are in place",
        ),
        Err(e) => decided("Provisioned", "False", e.reason(), &e.to_string()),
    };
    let done = outcome.as_ref().ok().cloned();
    set_status(tenant, context, provisioned, done).await?;
    match outcome {
        Ok(_) => Ok(Action::requeue(RESYNC)),
        // A CustomResourceDefinition may be installed without the Tenant changing.
        Err(TenantError::Invalid(e @ ProvisionError::KindNotServed(_))) => {
            tracing::warn!(tenant = %tenant.name_any(), error = %e, "tenant waits for a kind");
            Ok(Action::requeue(Duration::from_secs(30)))
        }
        // A Secret it names may be created or mended without the Tenant changing.
        Err(TenantError::Invalid(e @ ProvisionError::Secret { .. })) => {
            tracing::warn!(tenant = %tenant.name_any(), error = %e, "tenant waits for a Secret");
            Ok(Action::requeue(Duration::from_secs(30)))
        }
        // Invalid spec: wait for the next change of the Tenant.
        Err(TenantError::Invalid(e)) => {
            tracing::warn!(tenant = %tenant.name_any(), error = %e, "invalid tenant");
            Ok(Action::await_change())
        }
        Err(e) => Err(e),
    }
}

/// What a provisioned berth publishes in the Tenant's status.
#[derive(Clone, Debug)]
struct Provisioned {
    agent_namespace: String,
    report_keys: Vec<ReportKey>,
}

impl Provisioned {
    /// As the status already says (the berth was provisioned recently for the same spec).
    fn as_recorded(tenant: &Tenant) -> Self {
        Self {
            agent_namespace: tenant.agent_namespace(),
            report_keys: tenant
                .status
                .as_ref()
                .map(|s| s.report_keys.clone())
                .unwrap_or_default(),
        }
    }
}

/// Build → apply → migrate an earlier layout → prune → what the agent reads, stopping at the
/// first failure.
async fn provision_steps(tenant: &Tenant, context: &Context) -> Result<Provisioned, TenantError> {
    if let Some(refusal) = context.refusal(tenant) {
        return Err(refusal.into());
    }
    let policy = context.tenant_policy(tenant);
    let inputs = provision::Inputs {
        profile: profile_of(&policy),
        discovered: discovery::discover(&context.client, tenant).await?,
    };
    let desired = provision::build(tenant, &context.provision, &inputs)?;
    apply_all(&context.client, &desired).await?;
    ensure_sync(&context.client, tenant).await?;
    // An agent namespace in the status means this layout is in place already.
    let migrated = tenant
        .status
        .as_ref()
        .is_some_and(|s| s.agent_namespace.is_some());
    if !migrated {
        migrate::from_primary_namespace(&context.client, tenant).await?;
    }
    // Listing every kind is not free: only a spec not yet provisioned can have dropped something.
    if !provisioned_at_this_generation(tenant) {
        prune(tenant, &desired, context).await?;
    }
    // Checked in either agent mode, so an unusable Secret shows on the Tenant.
    let ns = &context.provision.operator_namespace;
    let secrets = AgentSecrets {
        credentials: read_credentials(&context.client, ns, tenant).await?,
        decryption_key: read_decryption_key(&context.client, ns, tenant).await?,
    };
    let report_keys = apply_agent_inputs(tenant, context, &policy, &secrets).await?;
    Ok(Provisioned {
        agent_namespace: tenant.agent_namespace(),
        report_keys,
    })
}

/// The tenant's policy profile, as its policy data selects it.
fn profile_of(policy: &ConfigMap) -> Profile {
    let data = berth_engine::policy::config_map::data(policy)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    Profile::from_data(&data)
}

fn provisioned_at_this_generation(tenant: &Tenant) -> bool {
    tenant.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == "Provisioned"
                && c.status == "True"
                && c.observed_generation == tenant.metadata.generation
        })
    })
}

/// Writes the derived status (with what the agent reported in its TenantSync) if it changed.
async fn set_status(
    tenant: &Tenant,
    context: &Context,
    provisioned: Decided,
    done: Option<Provisioned>,
) -> Result<(), TenantError> {
    let name = tenant.name_any();
    let sync = Api::<TenantSync>::namespaced(context.client.clone(), &tenant.agent_namespace())
        .get_opt(SYNC_NAME)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.status);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut status = derive(
        tenant.status.as_ref(),
        tenant.metadata.generation,
        provisioned,
        sync.as_ref(),
        &now,
    );
    // Until provisioned in this layout, the previous values stand.
    let previous = tenant.status.clone().unwrap_or_default();
    (status.agent_namespace, status.report_keys) = match done {
        Some(done) => (Some(done.agent_namespace), done.report_keys),
        None => (previous.agent_namespace, previous.report_keys),
    };
    if tenant.status.as_ref() == Some(&status) {
        return Ok(());
    }
    Api::<Tenant>::all(context.client.clone())
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .map_err(ApiError::of(
            "updating the status of",
            format!("Tenant {name}"),
        ))?;
    Ok(())
}

/// One ConfigMap of the operator's namespace, kept current, and a stream that ticks when it
/// changes.
fn config_map(
    client: &Client,
    namespace: &str,
    name: &str,
) -> (
    reflector::Store<ConfigMap>,
    impl futures::Stream<Item = ()> + Send + 'static,
) {
    let (store, writer) = reflector::store::<ConfigMap>();
    let changes = reflector(
        writer,
        watcher(
            Api::<ConfigMap>::namespaced(client.clone(), namespace),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        ),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(|event| async move {
        event
            .map_err(|error| tracing::warn!(%error, "watching the platform's ConfigMaps"))
            .ok()
            .map(|_| ())
    });
    (store, changes)
}

/// Objects that name their tenant by label (what the controller watches besides Tenants).
trait TenantLabelled {
    fn tenant_label(&self) -> Option<String>;
}

impl<K: Resource> TenantLabelled for K {
    fn tenant_label(&self) -> Option<String> {
        self.meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(TENANT_LABEL))
            .cloned()
    }
}
