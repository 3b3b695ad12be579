//! Tenant controller: provisions each Tenant's berth with server-side apply, and reports
//! Provisioned, Synced, PolicyCompliant and Ready (mirroring its agent's TenantSync); a
//! finalizer offboards a deleted Tenant (its namespaces are deleted unless the Tenant carries
//! `berth.dev/keep-namespaces: "true"`).

use std::sync::Arc;
use std::time::Duration;

use berth_engine::api::{Tenant, TenantSync};
use berth_engine::apply::FIELD_MANAGER;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::tenant_status::{Decided, decided, derive};
use crate::metrics::OperatorMetrics;
use crate::provision::{self, ProvisionContext, ProvisionError};

/// Finalizer that offboards a Tenant before it goes.
pub const FINALIZER: &str = "berth.dev/offboard";
/// Annotation that keeps a removed tenant's namespaces.
pub const KEEP_NAMESPACES: &str = "berth.dev/keep-namespaces";

/// Why a Tenant could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The spec cannot be provisioned: waits for the next change of the Tenant.
    #[error(transparent)]
    Invalid(#[from] ProvisionError),
    /// The API server refused or failed: retried with backoff.
    #[error("{action} {object}: {source}")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
}

impl TenantError {
    /// A stable label for metrics and conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "InvalidSpec",
            Self::Api { .. } => "ApiError",
        }
    }
}

pub struct Context {
    pub client: Client,
    pub provision: ProvisionContext,
    pub metrics: Arc<OperatorMetrics>,
    /// Label selector of the Tenants this operator manages ("" for all).
    pub selector: String,
}

/// Runs the controller until `stop`, letting running reconciles finish.
pub async fn run(context: Context, stop: CancellationToken) {
    let tenants = Api::<Tenant>::all(context.client.clone());
    let metrics = context.metrics.clone();
    Controller::new(
        tenants,
        watcher::Config::default().labels(&context.selector),
    )
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

async fn apply<K>(api: Api<K>, object: &K) -> Result<(), TenantError>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map(|_| ())
    .map_err(|source| TenantError::Api {
        action: "applying",
        object: format!("{} {name}", K::kind(&())),
        source,
    })
}

async fn apply_namespaced<K>(client: &Client, object: &K) -> Result<(), TenantError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let ns = object.namespace().unwrap_or_default();
    apply(Api::namespaced(client.clone(), &ns), object).await
}

async fn provision_tenant(tenant: &Tenant, context: &Context) -> Result<Action, TenantError> {
    let outcome = match provision::build(tenant, &context.provision) {
        Ok(desired) => apply_all(&context.client, &desired).await,
        Err(e) => Err(TenantError::from(e)),
    };
    let provisioned = match &outcome {
        Ok(()) => decided(
            "Provisioned",
            "True",
            "Provisioned",
            "namespaces, RBAC, quota, limits and isolation are in place",
        ),
        Err(e) => decided("Provisioned", "False", e.reason(), &e.to_string()),
    };
    set_status(tenant, context, provisioned).await?;
    match outcome {
        // Soon again: the agent's reports are mirrored into the Tenant's status.
        Ok(()) => Ok(Action::requeue(Duration::from_secs(10))),
        // Invalid spec: wait for the next change of the Tenant.
        Err(TenantError::Invalid(e)) => {
            tracing::warn!(tenant = %tenant.name_any(), error = %e, "invalid tenant");
            Ok(Action::await_change())
        }
        Err(e) => Err(e),
    }
}

async fn apply_all(client: &Client, desired: &provision::Desired) -> Result<(), TenantError> {
    // Namespaces first: everything else lives in them.
    for o in &desired.namespaces {
        apply(Api::<Namespace>::all(client.clone()), o).await?;
    }
    apply_namespaced::<ServiceAccount>(client, &desired.service_account).await?;
    for o in &desired.roles {
        apply_namespaced::<Role>(client, o).await?;
    }
    for o in &desired.role_bindings {
        apply_namespaced::<RoleBinding>(client, o).await?;
    }
    for o in &desired.quotas {
        apply_namespaced::<ResourceQuota>(client, o).await?;
    }
    for o in &desired.limit_ranges {
        apply_namespaced::<LimitRange>(client, o).await?;
    }
    for o in &desired.network_policies {
        apply_namespaced::<NetworkPolicy>(client, o).await?;
    }
    Ok(())
}

async fn offboard(tenant: &Tenant, context: &Context) -> Result<Action, TenantError> {
    let name = tenant.name_any();
    let keep = tenant
        .annotations()
        .get(KEEP_NAMESPACES)
        .is_some_and(|v| v == "true");
    if !keep {
        let namespaces = Api::<Namespace>::all(context.client.clone());
        for ns in tenant.namespaces() {
            match namespaces.delete(&ns, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(TenantError::Api {
                        action: "deleting",
                        object: format!("Namespace {ns}"),
                        source,
                    });
                }
            }
        }
    }
    // The tenant's access to its policy lives in the operator's namespace.
    let access = format!("berth-policy-{name}");
    let ns = &context.provision.operator_namespace;
    for result in [
        Api::<RoleBinding>::namespaced(context.client.clone(), ns)
            .delete(&access, &DeleteParams::default())
            .await
            .map(|_| ()),
        Api::<Role>::namespaced(context.client.clone(), ns)
            .delete(&access, &DeleteParams::default())
            .await
            .map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(TenantError::Api {
                    action: "deleting",
                    object: format!("policy access {access}"),
                    source,
                });
            }
        }
    }
    tracing::info!(tenant = %name, kept_namespaces = keep, "offboarded");
    Ok(Action::await_change())
}

/// Writes the derived status (with what the agent reported in its TenantSync) if it changed.
async fn set_status(
    tenant: &Tenant,
    context: &Context,
    provisioned: Decided,
) -> Result<(), TenantError> {
    let name = tenant.name_any();
    let primary = tenant.primary_namespace();
    let sync = Api::<TenantSync>::namespaced(context.client.clone(), &primary)
        .get_opt("berth")
        .await
        .ok()
        .flatten()
        .and_then(|s| s.status);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = derive(
        tenant.status.as_ref(),
        tenant.metadata.generation,
        provisioned,
        sync.as_ref(),
        &now,
    );
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
        .map(|_| ())
        .map_err(|source| TenantError::Api {
            action: "updating the status of",
            object: format!("Tenant {name}"),
            source,
        })
}
