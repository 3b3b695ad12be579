//! Upgrading from the layout of earlier operators, which applied with the agent's field
//! manager (`berth`): the operator's own objects are released from it, so what the operator
//! no longer declares is removed and the agent's manager owns nothing of the operator's.

use kube::api::DynamicObject;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::apiserver::{self, ApiError};

/// The field manager earlier operators applied with.
const LEGACY_MANAGER: &str = berth_engine::apply::FIELD_MANAGER;

/// Whether `object` (as a server-side apply returned it) still has fields applied by the
/// legacy manager.
pub fn holds_legacy_fields<K: Resource>(object: &K) -> bool {
    object.meta().managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() == Some(LEGACY_MANAGER)
            && entry.operation.as_deref() == Some("Apply")
    })
}

/// Applies an empty configuration as the legacy manager: it then owns nothing, so fields only
/// it owned are removed and those the operator (re)declared stay, owned by the operator.
pub async fn release<K>(api: &Api<K>, object: &K) -> Result<(), ApiError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut metadata = json!({"name": object.name_any()});
    if let Some(ns) = object.namespace() {
        metadata["namespace"] = ns.into();
    }
    let empty = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": metadata,
    });
    let resource = kube::api::ApiResource::erase::<K>(&());
    let dynamic: Api<DynamicObject> = match object.namespace() {
        Some(ns) => Api::namespaced_with(api.clone().into_client(), &ns, &resource),
        None => Api::all_with(api.clone().into_client(), &resource),
    };
    let name = object.name_any();
    let failed = ApiError::of(
        "releasing the earlier field manager of",
        format!("{} {name}", K::kind(&())),
    );
    apiserver::apply(&dynamic, LEGACY_MANAGER, &name, &empty, failed).await?;
    Ok(())
}
