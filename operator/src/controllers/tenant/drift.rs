//! Drift of what the operator provisioned: someone other than the operator changed or deleted
//! one of its objects (a member deleting the isolation policy their `edit` role allows them to
//! delete, say). The tenant's memo is forgotten and it is reconciled at once, so the berth is
//! put back within seconds instead of at the next periodic resync. Watches metadata only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use berth_engine::api::TENANT_LABEL;
use futures::{Stream, StreamExt};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::ProvisionedFor;
use crate::controllers::FIELD_MANAGER;
use crate::provision::PROVISIONED_LABEL;

/// Per tenant, what its berth was last fully provisioned for and when.
pub(super) type Memo = Arc<Mutex<HashMap<String, (ProvisionedFor, Instant)>>>;

/// Whether the object's main resource was last written by someone other than the operator.
/// (Status writes, such as the quota controller's usage, are not drift.)
pub(super) fn written_by_others(meta: &kube::api::ObjectMeta) -> bool {
    let last = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.subresource.as_deref().unwrap_or_default().is_empty())
        .max_by(|a, b| {
            a.time
                .as_ref()
                .map(|t| t.0)
                .cmp(&b.time.as_ref().map(|t| t.0))
        });
    last.is_some_and(|entry| entry.manager.as_deref() != Some(FIELD_MANAGER))
}

/// Provisioned objects of kind `K` someone else changed or deleted; their tenant's memo is
/// forgotten as they pass.
pub(super) fn drifted<K>(
    client: &Client,
    memo: Memo,
) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let selector = format!("{}={}", PROVISIONED_LABEL.0, PROVISIONED_LABEL.1);
    watcher(
        Api::<PartialObjectMeta<K>>::all(client.clone()),
        watcher::Config::default().labels(&selector),
    )
    .default_backoff()
    .filter_map(move |event| {
        let memo = memo.clone();
        async move {
            let drifted = match event {
                Ok(Event::Delete(object)) => object,
                Ok(Event::Apply(object)) if written_by_others(&object.metadata) => object,
                Ok(_) => return None,
                Err(error) => return Some(Err(error)),
            };
            if let Some(tenant) = drifted.labels().get(TENANT_LABEL) {
                tracing::info!(%tenant, kind = %K::kind(&()), name = %drifted.name_any(), "provisioned object changed by someone else; restoring");
                memo.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(tenant);
            }
            Some(Ok(drifted))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    fn entry(manager: &str, seconds: i64, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            subresource: subresource.map(Into::into),
            time: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap(),
            )),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn the_last_writer_of_the_object_decides_and_status_writes_do_not_count() {
        let meta = |entries: Vec<ManagedFieldsEntry>| kube::api::ObjectMeta {
            managed_fields: Some(entries),
            ..kube::api::ObjectMeta::default()
        };
        assert!(!written_by_others(&meta(vec![entry(
            FIELD_MANAGER,
            1,
            None
        )])));
        assert!(written_by_others(&meta(vec![
            entry(FIELD_MANAGER, 1, None),
            entry("kubectl-edit", 2, None)
        ])));
        assert!(!written_by_others(&meta(vec![
            entry("kubectl-edit", 1, None),
            entry(FIELD_MANAGER, 2, None)
        ])));
        assert!(!written_by_others(&meta(vec![
            entry(FIELD_MANAGER, 1, None),
            entry("kube-controller-manager", 3, Some("status"))
        ])));
    }
}
