//! Kinds the platform allows that Berth does not know by name (a CustomResourceDefinition's,
//! say): their resource and scope, from the API server's discovery, so the agent's Role names
//! exactly them. A group the cluster does not serve leaves the kind out, and provisioning says
//! which kind it waits for.

use super::*;

use crate::provision::{DiscoveredKind, DiscoveredKinds, undiscovered};

/// The discovered kinds among the tenant's allowed kinds (those the cluster serves).
pub(super) async fn discover(
    client: &Client,
    tenant: &Tenant,
) -> Result<DiscoveredKinds, TenantError> {
    let mut found = DiscoveredKinds::new();
    for (group, kind) in undiscovered(&tenant.spec.allowed_kinds) {
        let api_group = match kube::discovery::group(client, &group).await {
            Ok(api_group) => api_group,
            // Not served (yet): the kind stays undiscovered, and provisioning says so.
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(kube::Error::Discovery(_)) => continue,
            Err(source) => {
                return Err(
                    ApiError::of("discovering", format!("API group {group}"))(source).into(),
                );
            }
        };
        if let Some((resource, capabilities)) = api_group
            .recommended_resources()
            .into_iter()
            .find(|(r, _)| r.kind == kind)
        {
            found.insert(
                format!("{group}/{kind}"),
                DiscoveredKind {
                    resource: resource.plural,
                    namespaced: capabilities.scope == kube::discovery::Scope::Namespaced,
                },
            );
        }
    }
    Ok(found)
}
