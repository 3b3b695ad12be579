//! The operator's requests to the API server: one error for any that fails (what the operator
//! was doing to which object, and the server's answer), and its server-side apply.

use std::fmt::Debug;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A request the API server refused or failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {object}: {source}")]
pub struct ApiError {
    /// What the operator was doing, e.g. `applying`.
    pub action: &'static str,
    /// `Kind name` or `Kind namespace/name`.
    pub object: String,
    #[source]
    pub source: kube::Error,
}

impl ApiError {
    /// For `map_err`: the failure of `action` on `object`.
    pub fn of(action: &'static str, object: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let object = object.into();
        move |source| Self {
            action,
            object,
            source,
        }
    }
}

/// Server-side applies `object` as `name` with the field manager `manager`, forced: the
/// operator owns every field it declares, so what others changed there is set back. `failed`
/// names the request (`ApiError::of`).
pub async fn apply<K, T>(
    api: &Api<K>,
    manager: &str,
    name: &str,
    object: &T,
    failed: impl FnOnce(kube::Error) -> ApiError,
) -> Result<K, ApiError>
where
    K: Clone + DeserializeOwned + Debug,
    T: Serialize + Debug,
{
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(failed)
}
