//! One reconcile of the tenant's repository, and the TenantSync status that reports it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use berth_engine::api::{RefusedObject, SyncResult, TenantSync, TenantSyncSpec, TenantSyncStatus};
use berth_engine::apply::{Applier, FIELD_MANAGER};
use berth_engine::guard::Scope;
use berth_engine::manifest::ObjectRef;
use berth_engine::pipeline::{CheckError, Checked, Checker};
use berth_engine::source::{GitSource, Revision};
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::report::GUARD_RAILS;
use crate::run::{SYNC_NAME, result_label, scope_lookup};

/// Refused objects listed in the status; the count is always exact.
const MAX_LISTED: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Refused,
    Failed,
}

pub struct Agent {
    pub source: GitSource,
    pub path: String,
    pub applier: Applier,
    pub syncs: Api<TenantSync>,
    pub checker: Checker,
    pub skip_guard_rails: bool,
    pub interrupt: Arc<AtomicBool>,
}

impl Agent {
    /// Runs one reconcile and records it; never panics, never leaves a partial revision
    /// recorded as applied.
    pub async fn reconcile(&self) -> Outcome {
        let previous = match self.current_sync().await {
            Ok(sync) => sync,
            Err(message) => {
                tracing::error!(%message, "reading TenantSync");
                return Outcome::Failed;
            }
        };
        let requested = previous.spec.sync_requested_at.clone();
        let last = previous.status.clone().unwrap_or_default();
        let mut status = TenantSyncStatus {
            last_applied_revision: last.last_applied_revision.clone(),
            inventory: last.inventory.clone(),
            last_handled_request: requested,
            ..TenantSyncStatus::default()
        };
        let outcome = match self.fetch().await {
            Err(message) => fail(&mut status, message),
            Ok(revision) => {
                status.last_attempted_revision = Some(revision.commit.clone());
                self.sync_revision(revision, &mut status).await
            }
        };
        tracing::info!(
            result = result_label(status.result),
            revision = status.last_attempted_revision.as_deref().unwrap_or("-"),
            objects = status.counts.objects,
            applied = status.counts.applied,
            pruned = status.counts.pruned,
            refused = status.counts.refused,
            message = %status.message,
            "reconciled"
        );
        if let Err(message) = self.write_status(&last, status).await {
            tracing::error!(%message, "writing TenantSync status");
        }
        outcome
    }

    async fn fetch(&self) -> Result<Revision, String> {
        let source = self.source.clone();
        let interrupt = self.interrupt.clone();
        tokio::task::spawn_blocking(move || source.fetch(&interrupt))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn sync_revision(&self, revision: Revision, status: &mut TenantSyncStatus) -> Outcome {
        let manifests = match self.checker.render(revision.files, &self.path).await {
            Ok(m) => m,
            Err(e) => return fail(status, e.to_string()),
        };
        let scopes = match self.applier.scopes(&manifests).await {
            Ok(s) => s,
            Err(e) => return fail(status, e.to_string()),
        };
        let checked = if self.skip_guard_rails {
            self.check_without_guard_rails(manifests, &revision.commit, scope_lookup(scopes))
                .await
        } else {
            self.checker
                .check_rendered(manifests, &revision.commit, scope_lookup(scopes))
                .await
        };
        let checked = match checked {
            Ok(c) => c,
            Err(e) => return fail(status, e.to_string()),
        };
        status.counts.objects = count(checked.manifests.len());
        status.counts.warnings = count(checked.warnings().count());
        if checked.is_refused() {
            return refuse(status, &checked);
        }
        match self
            .applier
            .apply(&checked.manifests, &status.inventory)
            .await
        {
            Ok(done) => {
                status.result = SyncResult::Applied;
                status.counts.applied = count(done.applied.len());
                status.counts.unchanged = count(done.unchanged);
                status.counts.pruned = count(done.pruned.len());
                status.last_applied_revision = Some(revision.commit);
                status.inventory = done.inventory;
                status.message = format!(
                    "applied {} objects ({} changed, {} pruned)",
                    checked.manifests.len(),
                    done.applied.len(),
                    done.pruned.len()
                );
                Outcome::Applied
            }
            Err(e) => {
                // Whatever of the revision reached the cluster is Berth's to prune later.
                let mut inventory: Vec<ObjectRef> = status.inventory.clone();
                inventory.extend(checked.manifests.iter().map(|m| m.reference.clone()));
                inventory.sort();
                inventory.dedup();
                status.inventory = inventory;
                fail(status, e.to_string())
            }
        }
    }

    /// Test-only path: namespaces are defaulted for namespaced kinds, nothing is refused, so
    /// the API server's RBAC is the only layer left.
    async fn check_without_guard_rails(
        &self,
        mut manifests: Vec<berth_engine::manifest::Manifest>,
        revision: &str,
        scope_of: impl Fn(&ObjectRef) -> Scope,
    ) -> Result<Checked, CheckError> {
        if let Some(primary) = self.checker.tenant.namespaces.first() {
            for m in manifests.iter_mut() {
                if m.reference.namespace.is_none() && scope_of(&m.reference) == Scope::Namespaced {
                    m.set_namespace(primary);
                }
            }
        }
        let violations = self
            .checker
            .policy
            .evaluate(&manifests, &self.checker.tenant, revision)
            .await?;
        Ok(Checked {
            manifests,
            refusals: Vec::new(),
            violations,
        })
    }

    async fn current_sync(&self) -> Result<TenantSync, String> {
        match self.syncs.get_opt(SYNC_NAME).await {
            Ok(Some(sync)) => Ok(sync),
            Ok(None) => {
                let sync = TenantSync::new(SYNC_NAME, TenantSyncSpec::default());
                self.syncs
                    .patch(
                        SYNC_NAME,
                        &PatchParams::apply(FIELD_MANAGER),
                        &Patch::Apply(&sync),
                    )
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Writes the status unless this reconcile changed nothing and found things as recorded,
    /// so a reconcile with nothing to do makes no write request at all.
    async fn write_status(
        &self,
        last: &TenantSyncStatus,
        mut status: TenantSyncStatus,
    ) -> Result<(), String> {
        let idle = status.counts.applied == 0 && status.counts.pruned == 0;
        let same = status.result == last.result
            && status.last_attempted_revision == last.last_attempted_revision
            && status.last_applied_revision == last.last_applied_revision
            && status.last_handled_request == last.last_handled_request
            && status.refused == last.refused
            && status.inventory == last.inventory
            && (status.result == SyncResult::Applied || status.message == last.message);
        if idle && same {
            return Ok(());
        }
        status.last_sync_time = Some(now_rfc3339());
        let patch = serde_json::json!({ "status": status });
        self.syncs
            .patch_status(SYNC_NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn fail(status: &mut TenantSyncStatus, message: String) -> Outcome {
    status.result = SyncResult::Failed;
    status.message = message;
    Outcome::Failed
}

fn refuse(status: &mut TenantSyncStatus, checked: &Checked) -> Outcome {
    let mut refused: Vec<RefusedObject> = checked
        .refusals
        .iter()
        .map(|r| RefusedObject {
            object: r.object.to_string(),
            origin: r.origin.to_string(),
            policy: GUARD_RAILS.into(),
            rule: r.reason.label().into(),
            message: r.reason.to_string(),
        })
        .collect();
    refused.extend(checked.denies().map(|v| RefusedObject {
        object: v.object.to_string(),
        origin: v.origin.to_string(),
        policy: v.finding.policy.clone(),
        rule: v.finding.rule.clone(),
        message: v.finding.message.clone(),
    }));
    status.result = SyncResult::Refused;
    status.counts.refused = count(refused.len());
    status.message = match refused.first() {
        Some(first) => format!(
            "revision refused, nothing applied: {} [{}/{}] {}{}",
            first.object,
            first.policy,
            first.rule,
            first.message,
            if refused.len() > 1 {
                format!(" (and {} more)", refused.len() - 1)
            } else {
                String::new()
            }
        ),
        None => "revision refused".into(),
    };
    refused.truncate(MAX_LISTED);
    status.refused = refused;
    Outcome::Refused
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}
