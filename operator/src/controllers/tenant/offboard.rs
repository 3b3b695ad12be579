//! Offboarding a deleted Tenant: its namespaces and its agent's namespace go; or, when kept,
//! what the tenant deployed and its agent's reports stay while the agent (workload, identity,
//! credentials) goes. Then its policy copy and access in the operator's namespace.

use super::*;

pub(super) fn keeps_namespaces(tenant: &Tenant) -> bool {
    tenant
        .annotations()
        .get(KEEP_NAMESPACES)
        .is_some_and(|v| v == "true")
}

pub(super) async fn offboard(tenant: &Tenant, context: &Context) -> Result<Action, TenantError> {
    let name = tenant.name_any();
    let client = &context.client;
    let keep = keeps_namespaces(tenant);
    let home = tenant.agent_namespace();
    if keep {
        delete(
            Api::<Deployment>::namespaced(client.clone(), &home),
            provision::AGENT,
        )
        .await?;
        for secret in [agent::AGENT_GIT_SECRET, agent::REPORT_KEY_SECRET] {
            delete(Api::<Secret>::namespaced(client.clone(), &home), secret).await?;
        }
        delete(
            Api::<ServiceAccount>::namespaced(client.clone(), &home),
            provision::AGENT,
        )
        .await?;
    } else {
        for ns in tenant.namespaces().into_iter().chain([home]) {
            delete(Api::<Namespace>::all(client.clone()), &ns).await?;
        }
    }
    // The tenant's policy and access to it live in the operator's namespace.
    let access = provision::policy_config_map_name(&name);
    let ns = &context.provision.operator_namespace;
    delete(Api::<ConfigMap>::namespaced(client.clone(), ns), &access).await?;
    delete(Api::<RoleBinding>::namespaced(client.clone(), ns), &access).await?;
    delete(Api::<Role>::namespaced(client.clone(), ns), &access).await?;
    context.remember(&name, None);
    tracing::info!(tenant = %name, kept_namespaces = keep, "offboarded");
    Ok(Action::await_change())
}
