//! The Tenant controller's writes: server-side apply of a berth, pruning what a changed spec
//! dropped, what the agent reads (its policy copy, TenantSync, Deployment and credentials), and
//! deletion.

use super::*;

/// Server-side applies `object` as the operator; releases what an earlier operator applied
/// under the agent's field manager.
pub(super) async fn apply<K>(api: Api<K>, object: &K) -> Result<(), TenantError>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = object.name_any();
    let failed = ApiError::of("applying", format!("{} {name}", K::kind(&())));
    let applied = apiserver::apply(&api, FIELD_MANAGER, &name, object, failed).await?;
    if legacy::holds_legacy_fields(&applied) {
        legacy::release(&api, &applied).await?;
    }
    Ok(())
}

pub(super) async fn apply_namespaced<K>(client: &Client, object: &K) -> Result<(), TenantError>
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

pub(super) async fn apply_all(
    client: &Client,
    desired: &provision::Desired,
) -> Result<(), TenantError> {
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

/// Deletes what the operator provisioned for the tenant earlier and its spec no longer
/// declares: a removed member's RoleBindings, a dropped quota, a namespace taken off the list
/// (unless the Tenant keeps namespaces). Only objects carrying the operator's own label are
/// candidates, never what the agent applied.
pub(super) async fn prune(
    tenant: &Tenant,
    desired: &provision::Desired,
    context: &Context,
) -> Result<(), TenantError> {
    let client = &context.client;
    let selector = format!(
        "{TENANT_LABEL}={},{}={}",
        tenant.name_any(),
        PROVISIONED_LABEL.0,
        PROVISIONED_LABEL.1
    );
    prune_kind::<Role>(client, &selector, &desired.roles).await?;
    prune_kind::<RoleBinding>(client, &selector, &desired.role_bindings).await?;
    prune_kind::<ResourceQuota>(client, &selector, &desired.quotas).await?;
    prune_kind::<LimitRange>(client, &selector, &desired.limit_ranges).await?;
    prune_kind::<NetworkPolicy>(client, &selector, &desired.network_policies).await?;
    if !keeps_namespaces(tenant) {
        prune_kind::<Namespace>(client, &selector, &desired.namespaces).await?;
    }
    Ok(())
}

pub(super) async fn prune_kind<K>(
    client: &Client,
    selector: &str,
    desired: &[K],
) -> Result<(), TenantError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let key = |o: &K| (o.namespace(), o.name_any());
    let wanted: std::collections::BTreeSet<_> = desired.iter().map(key).collect();
    let found = Api::<K>::all(client.clone())
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .map_err(ApiError::of(
            "listing",
            format!("{} {selector}", K::kind(&())),
        ))?;
    for object in found.items {
        let (ns, name) = (object.metadata.namespace.clone(), object.name_any());
        if wanted.contains(&(ns.clone(), name.clone())) {
            continue;
        }
        // A dynamic Api addresses namespaced and cluster-scoped kinds alike.
        let resource = kube::api::ApiResource::erase::<K>(&());
        let api = match &ns {
            Some(ns) => {
                Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &resource)
            }
            None => Api::<kube::api::DynamicObject>::all_with(client.clone(), &resource),
        };
        delete(api, &name).await?;
        tracing::info!(kind = %K::kind(&()), namespace = ?ns, %name, "pruned: no longer declared");
    }
    Ok(())
}

/// Deletes an object in the background; one already gone is fine.
pub(super) async fn delete<K>(api: Api<K>, name: &str) -> Result<(), TenantError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => {
            Err(ApiError::of("deleting", format!("{}/{name}", api.resource_url()))(source).into())
        }
    }
}

/// The TenantSync the agent reports in, in its namespace (labelled, so its changes find their
/// Tenant). The agent owns its status.
pub(super) async fn ensure_sync(client: &Client, tenant: &Tenant) -> Result<(), TenantError> {
    let home = tenant.agent_namespace();
    let mut sync = TenantSync::new(SYNC_NAME, Default::default());
    sync.metadata.namespace = Some(home.clone());
    sync.metadata.labels = Some(std::collections::BTreeMap::from([(
        TENANT_LABEL.to_owned(),
        tenant.name_any(),
    )]));
    let failed = ApiError::of("applying", format!("TenantSync {home}/{SYNC_NAME}"));
    let syncs = Api::<TenantSync>::namespaced(client.clone(), &home);
    apiserver::apply(&syncs, FIELD_MANAGER, SYNC_NAME, &sync, failed).await?;
    Ok(())
}

/// What the tenant's agent reads besides its repository: its policy copy, its report signing
/// key and, in deployment mode, its Deployment and its copies of the credentials and age key.
/// Returns the tenant's report keys as the status publishes them.
pub(super) async fn apply_agent_inputs(
    tenant: &Tenant,
    context: &Context,
    policy: &ConfigMap,
    secrets: &AgentSecrets,
) -> Result<Vec<ReportKey>, TenantError> {
    let ns = &context.provision.operator_namespace;
    apply_namespaced::<ConfigMap>(&context.client, policy).await?;
    let report_keys = report_keys(&context.client, tenant).await?;
    if let Some(settings) = &context.deployment {
        let copies = agent::agent_secrets(tenant, secrets);
        for copy in &copies {
            apply_namespaced::<Secret>(&context.client, copy).await?;
        }
        // Only a changed spec can have dropped a Secret: the copy goes with it.
        if !provisioned_at_this_generation(tenant) {
            let home = Api::<Secret>::namespaced(context.client.clone(), &tenant.agent_namespace());
            for name in [agent::AGENT_GIT_SECRET, agent::AGENT_SOPS_SECRET] {
                if !copies.iter().any(|c| c.name_any() == name) {
                    delete(home.clone(), name).await?;
                }
            }
        }
        let deployment = agent::agent_deployment(tenant, settings, ns, secrets)?;
        apply_namespaced::<Deployment>(&context.client, &deployment).await?;
    }
    Ok(report_keys)
}

/// The tenant's report signing key (created once, kept in the agent's namespace) and every
/// public key its reports were ever signed with: a key is only ever added, so reports signed
/// before a key was replaced still verify.
async fn report_keys(client: &Client, tenant: &Tenant) -> Result<Vec<ReportKey>, TenantError> {
    let home = tenant.agent_namespace();
    let secrets = Api::<Secret>::namespaced(client.clone(), &home);
    let object = format!("Secret {home}/{}", agent::REPORT_KEY_SECRET);
    let existing = secrets
        .get_opt(agent::REPORT_KEY_SECRET)
        .await
        .map_err(ApiError::of("reading", object))?
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(agent::REPORT_KEY_FILE))
        .and_then(|key| ReportSigner::from_pkcs8(&key.0).ok());
    let signer = match existing {
        Some(signer) => signer,
        // None yet, or one that is not a key any more: a new one (the old public key stays
        // published, so what it signed still verifies).
        None => {
            let (pkcs8, signer) = ReportSigner::generate().map_err(TenantError::Keys)?;
            apply_namespaced(client, &agent::report_key_secret(tenant, pkcs8)).await?;
            tracing::info!(tenant = %tenant.name_any(), key = %signer.public_key().id, "report signing key created");
            signer
        }
    };
    let mut keys = tenant
        .status
        .as_ref()
        .map(|s| s.report_keys.clone())
        .unwrap_or_default();
    let key = signer.public_key();
    if !keys.iter().any(|k| k.id == key.id) {
        keys.push(key);
    }
    Ok(keys)
}
