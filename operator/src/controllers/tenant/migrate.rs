//! Moving a tenant provisioned by an earlier operator, which kept the agent's identity, status
//! and workload in the tenant's primary namespace (within reach of the tenant's members), to
//! the agent's own namespace: the agent's record of what it applied moves with it, so nothing
//! the tenant applied is lost, re-created or orphaned, and the old identity goes.

use super::*;

/// Called once the agent's namespace and TenantSync exist: carries the old TenantSync's status
/// (the inventory the agent prunes from) over, unless the new one has its own already, then
/// deletes the old identity, workload, credentials copy and TenantSync. Each step is
/// idempotent, so an interrupted migration is finished by the next reconcile.
pub(super) async fn from_primary_namespace(
    client: &Client,
    tenant: &Tenant,
) -> Result<(), TenantError> {
    let primary = tenant.primary_namespace();
    let home = tenant.agent_namespace();
    let old_syncs = Api::<TenantSync>::namespaced(client.clone(), &primary);
    let old = old_syncs.get_opt(SYNC_NAME).await.map_err(ApiError::of(
        "reading",
        format!("TenantSync {primary}/{SYNC_NAME}"),
    ))?;
    if let Some(status) = old.and_then(|o| o.status) {
        let new_syncs = Api::<TenantSync>::namespaced(client.clone(), &home);
        let new = new_syncs.get(SYNC_NAME).await.map_err(ApiError::of(
            "reading",
            format!("TenantSync {home}/{SYNC_NAME}"),
        ))?;
        if new.status.is_none() {
            new_syncs
                .patch_status(
                    SYNC_NAME,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
                .map_err(ApiError::of(
                    "moving the status to",
                    format!("TenantSync {home}/{SYNC_NAME}"),
                ))?;
            tracing::info!(tenant = %tenant.name_any(), objects = status.inventory.len(), "agent status moved to its own namespace");
        }
    }
    delete(old_syncs, SYNC_NAME).await?;
    delete(
        Api::<Deployment>::namespaced(client.clone(), &primary),
        provision::AGENT,
    )
    .await?;
    delete(
        Api::<Secret>::namespaced(client.clone(), &primary),
        agent::AGENT_GIT_SECRET,
    )
    .await?;
    delete(
        Api::<ServiceAccount>::namespaced(client.clone(), &primary),
        provision::AGENT,
    )
    .await
}
