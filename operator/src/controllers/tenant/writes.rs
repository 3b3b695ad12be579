//! The Tenant controller's writes: server-side apply of a berth, pruning what a changed spec
//! dropped, what the agent reads (its policy copy, TenantSync, Deployment and credentials), and
//! deletion.

use super::*;

pub(super) async fn apply<K>(api: Api<K>, object: &K) -> Result<(), TenantError>
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
        .map_err(|source| TenantError::Api {
            action: "listing",
            object: format!("{} {selector}", K::kind(&())),
            source,
        })?;
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
        Err(source) => Err(TenantError::Api {
            action: "deleting",
            object: format!("{}/{name}", api.resource_url()),
            source,
        }),
    }
}

/// What the tenant's agent reads besides its repository: its policy copy and the TenantSync
/// it reports in (labelled, so its changes find their Tenant).
pub(super) async fn apply_agent_inputs(
    tenant: &Tenant,
    context: &Context,
) -> Result<(), TenantError> {
    let name = tenant.name_any();
    let ns = &context.provision.operator_namespace;
    let platform = context
        .policy
        .get(&ObjectRef::new(PLATFORM_POLICY).within(ns));
    let policy = provision::tenant_policy(&name, ns, platform.as_deref());
    apply_namespaced::<ConfigMap>(&context.client, &policy).await?;
    let primary = tenant.primary_namespace();
    if let Some(settings) = &context.deployment {
        let credentials = read_credentials(&context.client, ns, tenant).await?;
        if let Some(source) = &credentials {
            apply_namespaced::<Secret>(&context.client, &agent::agent_secret(tenant, source)?)
                .await?;
        }
        let deployment = agent::agent_deployment(tenant, settings, ns, credentials.as_ref())?;
        apply_namespaced::<Deployment>(&context.client, &deployment).await?;
    }
    let sync = json!({"apiVersion": "berth.dev/v1alpha1", "kind": "TenantSync",
        "metadata": {"name": SYNC_NAME, "namespace": primary, "labels": {TENANT_LABEL: name}},
        "spec": {}});
    Api::<TenantSync>::namespaced(context.client.clone(), &primary)
        .patch(
            SYNC_NAME,
            &PatchParams::apply(SYNC_MANAGER).force(),
            &Patch::Apply(&sync),
        )
        .await
        .map(|_| ())
        .map_err(|source| TenantError::Api {
            action: "applying",
            object: format!("TenantSync {primary}/{SYNC_NAME}"),
            source,
        })
}

/// The tenant's credentials Secret in the operator's namespace, if it declares one.
pub async fn read_credentials(
    client: &Client,
    ns: &str,
    tenant: &Tenant,
) -> Result<Option<Secret>, TenantError> {
    let Some(name) = &tenant.spec.source.credentials_secret else {
        return Ok(None);
    };
    match Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
    {
        Ok(Some(secret)) => Ok(Some(secret)),
        Ok(None) => Err(TenantError::Invalid(ProvisionError::Credentials {
            secret: name.clone(),
            reason: format!("not found in namespace {ns}"),
        })),
        Err(source) => Err(TenantError::Api {
            action: "reading",
            object: format!("Secret {ns}/{name}"),
            source,
        }),
    }
}
