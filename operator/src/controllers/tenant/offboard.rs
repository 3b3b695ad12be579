//! Offboarding a deleted Tenant: the namespaces provisioned for it and its agent's namespace
//! go (never a namespace it claimed without owning it); or, when kept,
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
        let secrets = [
            agent::AGENT_GIT_SECRET,
            agent::AGENT_SOPS_SECRET,
            agent::REPORT_KEY_SECRET,
        ];
        for secret in secrets {
            delete(Api::<Secret>::namespaced(client.clone(), &home), secret).await?;
        }
        delete(
            Api::<ServiceAccount>::namespaced(client.clone(), &home),
            provision::AGENT,
        )
        .await?;
    } else {
        let namespaces = Api::<Namespace>::all(client.clone());
        for ns in tenant.namespaces() {
            if provisioned_for(&namespaces, &ns, &name).await? {
                delete(namespaces.clone(), &ns).await?;
            } else {
                tracing::info!(tenant = %name, namespace = %ns, "not provisioned for this tenant; left alone");
            }
        }
        // Its name is reserved for this tenant's agent.
        delete(namespaces, &home).await?;
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

/// Whether namespace `ns` was provisioned for `tenant`: a Tenant refused for claiming a
/// namespace it does not own (another tenant's, `kube-system`) must not take it with it.
async fn provisioned_for(
    namespaces: &Api<Namespace>,
    ns: &str,
    tenant: &str,
) -> Result<bool, TenantError> {
    let found = namespaces
        .get_opt(ns)
        .await
        .map_err(ApiError::of("reading", format!("Namespace {ns}")))?;
    Ok(found.is_some_and(|n| {
        let labels = n.labels();
        labels.get(TENANT_LABEL).map(String::as_str) == Some(tenant)
            && labels.get(PROVISIONED_LABEL.0).map(String::as_str) == Some(PROVISIONED_LABEL.1)
    }))
}
