//! Apply step: server-side apply of a checked revision under one field manager, skipping what
//! is already in place, then pruning what the previous revision applied and this one dropped.

mod diff;
mod order;

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities};
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::Mutex;

pub use diff::{first_difference, is_subset};
pub use order::{tier, tiers};

use crate::api::{MANAGED_BY, TENANT_LABEL};
use crate::guard::Scope;
use crate::manifest::{Manifest, ObjectRef};

/// The field manager the agent applies a tenant's objects with (the operator has its own).
pub const FIELD_MANAGER: &str = "berth";

/// Why applying a revision failed. The object is named; the message is the API server's.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("discovering the API of {object}: {source}")]
    Discovery {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing {resource} in {namespace}: {source}")]
    List {
        resource: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object} was refused by the API server (dry run, nothing applied): {}", api_message(.source))]
    DryRun {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying {object}: {}", api_message(.source))]
    Apply {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying {object}: kind is not served by the API server")]
    NotServed { object: String },
    #[error(
        "{object} exists and was not created by this tenant's agent: Berth never takes over an object it did not create (rename it in the repository, or delete the existing one)"
    )]
    NotOurs { object: String },
    #[error("pruning {object}: {source}")]
    Prune {
        object: String,
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// The API server's answer, when it refused the object itself (dry run or apply), for the
    /// caller to tell causes apart by their Status rather than by the message.
    pub fn refusal(&self) -> Option<&kube::core::Status> {
        match self {
            Self::DryRun {
                source: kube::Error::Api(status),
                ..
            }
            | Self::Apply {
                source: kube::Error::Api(status),
                ..
            } => Some(status),
            _ => None,
        }
    }
}

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Objects created or changed.
    pub applied: Vec<ObjectRef>,
    /// Objects already as declared.
    pub unchanged: usize,
    /// Objects deleted because the revision no longer declares them.
    pub pruned: Vec<ObjectRef>,
    /// What Berth now manages: the next reconcile prunes from this.
    pub inventory: Vec<ObjectRef>,
}

/// Applies revisions for one tenant with one client (the tenant's ServiceAccount).
pub struct Applier {
    client: Client,
    tenant: String,
    concurrency: usize,
    resources: Mutex<HashMap<GroupVersionKind, Option<(ApiResource, ApiCapabilities)>>>,
}

impl Applier {
    pub fn new(client: Client, tenant: &str, concurrency: usize) -> Self {
        Self {
            client,
            tenant: tenant.to_owned(),
            concurrency: concurrency.max(1),
            resources: Mutex::new(HashMap::new()),
        }
    }

    /// The scope of every kind in `manifests`, from the API server's discovery (cached).
    pub async fn scopes(
        &self,
        manifests: &[Manifest],
    ) -> Result<HashMap<GroupVersionKind, Scope>, ApplyError> {
        let mut scopes = HashMap::new();
        for m in manifests {
            let gvk = gvk(&m.reference);
            if scopes.contains_key(&gvk) {
                continue;
            }
            let scope = match self.resource(&m.reference).await? {
                None => Scope::Unknown,
                Some((_, caps)) if caps.scope == discovery::Scope::Namespaced => Scope::Namespaced,
                Some(_) => Scope::Cluster,
            };
            scopes.insert(gvk, scope);
        }
        Ok(scopes)
    }

    async fn resource(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<(ApiResource, ApiCapabilities)>, ApplyError> {
        let gvk = gvk(object);
        if let Some(found) = self.resources.lock().await.get(&gvk) {
            return Ok(found.clone());
        }
        let found = match discovery::pinned_kind(&self.client, &gvk).await {
            Ok(found) => Some(found),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(source) => {
                return Err(ApplyError::Discovery {
                    object: object.to_string(),
                    source,
                });
            }
        };
        self.resources.lock().await.insert(gvk, found.clone());
        Ok(found)
    }

    async fn api(&self, object: &ObjectRef) -> Result<Api<DynamicObject>, ApplyError> {
        let (resource, _) = self
            .resource(object)
            .await?
            .ok_or_else(|| ApplyError::NotServed {
                object: object.to_string(),
            })?;
        Ok(match &object.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        })
    }

    /// Applies `manifests` (already through guard rails and policy) and prunes what
    /// `previous` holds that they no longer declare. Changed objects are first applied as a
    /// dry run, so a revision the API server would refuse changes nothing.
    pub async fn apply(
        &self,
        manifests: &[Manifest],
        previous: &[ObjectRef],
    ) -> Result<ApplyOutcome, ApplyError> {
        let desired: Vec<Manifest> = manifests
            .iter()
            .map(|m| Manifest {
                object: self.prepare(&m.object),
                ..m.clone()
            })
            .collect();
        let live = self.live_objects(&desired).await?;
        let changed: Vec<Manifest> = desired
            .iter()
            .filter(|m| match live.get(&m.reference) {
                None => true,
                Some(l) => match first_difference(&m.object, l) {
                    None => false,
                    Some(path) => {
                        tracing::debug!(object = %m.reference, field = %path, "differs from the cluster");
                        true
                    }
                },
            })
            .cloned()
            .collect();

        let created: Vec<&Manifest> = changed
            .iter()
            .filter(|m| !live.contains_key(&m.reference))
            .collect();
        self.refuse_foreign(&created).await?;
        for tier in tiers(&changed) {
            self.patch_all(&tier, true).await?;
        }
        for tier in tiers(&changed) {
            self.patch_all(&tier, false).await?;
        }

        let declared: BTreeSet<_> = desired.iter().map(|m| m.reference.identity()).collect();
        let mut stale: Vec<&ObjectRef> = previous
            .iter()
            .filter(|r| !declared.contains(&r.identity()))
            .collect();
        stale.sort_by_key(|r| std::cmp::Reverse(tier(r)));
        let mut pruned = Vec::new();
        for object in stale {
            if self.prune(object).await? {
                pruned.push(object.clone());
            }
        }
        let mut inventory: Vec<ObjectRef> = desired.iter().map(|m| m.reference.clone()).collect();
        inventory.sort();
        Ok(ApplyOutcome {
            applied: changed.iter().map(|m| m.reference.clone()).collect(),
            unchanged: desired.len() - changed.len(),
            pruned,
            inventory,
        })
    }

    /// Adds Berth's labels and writes Secret `stringData` as `data`, which is how the server
    /// stores it (otherwise every reconcile would see a change).
    fn prepare(&self, object: &Value) -> Value {
        let mut object = object.clone();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(TENANT_LABEL.into(), Value::String(self.tenant.clone()));
                labels.insert(MANAGED_BY.0.into(), Value::String(MANAGED_BY.1.into()));
            }
        }
        if object.get("kind") == Some(&Value::from("Secret"))
            && object.get("apiVersion") == Some(&Value::from("v1"))
        {
            normalize_secret(&mut object);
        }
        object
    }

    /// The live versions of the objects Berth manages, one LIST per kind and namespace.
    async fn live_objects(
        &self,
        desired: &[Manifest],
    ) -> Result<HashMap<ObjectRef, Value>, ApplyError> {
        let mut groups: BTreeSet<(String, String, Option<String>)> = BTreeSet::new();
        for m in desired {
            let r = &m.reference;
            groups.insert((r.api_version.clone(), r.kind.clone(), r.namespace.clone()));
        }
        let selector = format!("{TENANT_LABEL}={}", self.tenant);
        let mut live = HashMap::new();
        for (api_version, kind, namespace) in groups {
            let probe = ObjectRef {
                api_version: api_version.clone(),
                kind: kind.clone(),
                namespace: namespace.clone(),
                name: String::new(),
            };
            let api = self.api(&probe).await?;
            let list = api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|source| ApplyError::List {
                    resource: kind.clone(),
                    namespace: namespace.clone().unwrap_or_default(),
                    source,
                })?;
            for item in list.items {
                let Some(name) = item.metadata.name.clone() else {
                    continue;
                };
                let reference = ObjectRef {
                    name,
                    ..probe.clone()
                };
                if let Ok(mut value) = serde_json::to_value(&item) {
                    // List items come without apiVersion and kind.
                    if let Some(map) = value.as_object_mut() {
                        map.insert("apiVersion".into(), Value::String(api_version.clone()));
                        map.insert("kind".into(), Value::String(kind.clone()));
                    }
                    live.insert(reference, value);
                }
            }
        }
        Ok(live)
    }

    /// Fails if an object the revision would create exists already without being this
    /// tenant's agent's (neither its label nor its field manager): the operator's objects,
    /// or a member's, are never taken over. One metadata LIST per kind and namespace, and only
    /// for objects the agent is about to create.
    async fn refuse_foreign(&self, created: &[&Manifest]) -> Result<(), ApplyError> {
        let mut groups: BTreeSet<(String, String, Option<String>)> = BTreeSet::new();
        for m in created {
            let r = &m.reference;
            groups.insert((r.api_version.clone(), r.kind.clone(), r.namespace.clone()));
        }
        for (api_version, kind, namespace) in groups {
            let probe = ObjectRef {
                api_version,
                kind: kind.clone(),
                namespace: namespace.clone(),
                name: String::new(),
            };
            let existing = self
                .api(&probe)
                .await?
                .list_metadata(&ListParams::default())
                .await
                .map_err(|source| ApplyError::List {
                    resource: kind.clone(),
                    namespace: namespace.clone().unwrap_or_default(),
                    source,
                })?;
            for object in existing.items {
                let name = object.metadata.name.clone().unwrap_or_default();
                let declared = created.iter().find(|m| {
                    m.reference.kind == kind
                        && m.reference.namespace == namespace
                        && m.reference.name == name
                });
                if let Some(m) = declared
                    && !self.is_ours(&object.metadata)
                {
                    return Err(ApplyError::NotOurs {
                        object: format!("{} ({})", m.reference, m.origin),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the agent created this object: it carries the tenant's label, or fields applied
    /// by the agent's field manager (a label a member removed does not disown it).
    fn is_ours(&self, meta: &kube::api::ObjectMeta) -> bool {
        let labelled = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(TENANT_LABEL))
            .is_some_and(|t| *t == self.tenant);
        labelled || applied_by_agent(meta)
    }

    async fn patch_all(&self, manifests: &[&Manifest], dry_run: bool) -> Result<(), ApplyError> {
        stream::iter(manifests.iter().map(|m| self.patch(m, dry_run)))
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    async fn patch(&self, manifest: &Manifest, dry_run: bool) -> Result<(), ApplyError> {
        let api = self.api(&manifest.reference).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if dry_run {
            params = params.dry_run();
        }
        match api
            .patch(
                &manifest.reference.name,
                &params,
                &Patch::Apply(&manifest.object),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(source) => {
                let object = format!("{} ({})", manifest.reference, manifest.origin);
                Err(if dry_run {
                    ApplyError::DryRun { object, source }
                } else {
                    ApplyError::Apply { object, source }
                })
            }
        }
    }

    /// Deletes `object` if it still carries this tenant's label and fields the agent applied;
    /// returns whether it did. (An inventory entry alone is not enough: only what the agent
    /// itself applied is ever pruned.)
    async fn prune(&self, object: &ObjectRef) -> Result<bool, ApplyError> {
        let prune_error = |source| ApplyError::Prune {
            object: object.to_string(),
            source,
        };
        let api = match self.resource(object).await? {
            Some(_) => self.api(object).await?,
            None => return Ok(false),
        };
        let Some(live) = api.get_opt(&object.name).await.map_err(prune_error)? else {
            return Ok(false);
        };
        let ours = live
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(TENANT_LABEL))
            .is_some_and(|t| *t == self.tenant)
            && applied_by_agent(&live.metadata);
        if !ours {
            return Ok(false);
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: live.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&object.name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(source) => Err(prune_error(source)),
        }
    }
}

/// Whether the agent's field manager applied fields of the object.
fn applied_by_agent(meta: &kube::api::ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.operation.as_deref() == Some("Apply")
    })
}

/// Scopes for the guard rails from [`Applier::scopes`]; kinds the API server does not serve
/// are unknown (and refused).
pub fn scope_lookup(scopes: HashMap<GroupVersionKind, Scope>) -> impl Fn(&ObjectRef) -> Scope {
    move |object| scopes.get(&gvk(object)).copied().unwrap_or(Scope::Unknown)
}

fn gvk(object: &ObjectRef) -> GroupVersionKind {
    let (group, version) = object
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &object.api_version));
    GroupVersionKind::gvk(group, version, &object.kind)
}

fn normalize_secret(secret: &mut Value) {
    use base64::Engine;
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(data) = data.as_object_mut() {
        for (key, value) in string_data {
            if let Some(text) = value.as_str() {
                let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                data.insert(key, Value::String(encoded));
            }
        }
    }
}

/// The API server's own message for a failed call (status code and reason included).
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}
