//! One reconcile of the tenant's repository, and the TenantSync status that reports it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use berth_engine::api::{RefusedObject, SyncResult, TenantSync, TenantSyncSpec, TenantSyncStatus};
use berth_engine::apply::{Applier, FIELD_MANAGER};
use berth_engine::guard::Scope;
use berth_engine::manifest::ObjectRef;
use berth_engine::metrics::Metrics;
use berth_engine::pipeline::{CheckError, Checked, Checker};
use berth_engine::policy::PolicyBundle;

use crate::policy_source::PolicySource;
use berth_engine::report::{PolicyReport, ReportContext, ReportSigner, policy_report};
use berth_engine::source::{GitSource, Revision};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource};

use crate::run::{SYNC_NAME, scope_lookup};
use berth_engine::report::GUARD_RAILS;

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
    pub reports: Api<DynamicObject>,
    /// The agent's own namespace, where its status and reports are kept.
    pub home: String,
    /// Signs reports; `None` for an agent run by hand without a key.
    pub signer: Option<ReportSigner>,
    pub recorder: Recorder,
    pub checker: Checker,
    pub policy: PolicySource,
    pub metrics: Arc<Metrics>,
    pub skip_guard_rails: bool,
    pub interrupt: Arc<AtomicBool>,
}

impl Agent {
    /// Runs one reconcile and records it (status, event, policy report, metrics); never
    /// panics, never records a partial revision as applied.
    pub async fn reconcile(&self) -> Outcome {
        let started = std::time::Instant::now();
        let previous = match self.current_sync().await {
            Ok(sync) => sync,
            Err(message) => {
                tracing::error!(%message, "reading TenantSync");
                self.metrics.observe_reconcile("Failed", started.elapsed());
                return Outcome::Failed;
            }
        };
        let last = previous.status.clone().unwrap_or_default();
        let mut status = TenantSyncStatus {
            last_applied_revision: last.last_applied_revision.clone(),
            inventory: last.inventory.clone(),
            last_handled_request: previous.spec.sync_requested_at.clone(),
            ..TenantSyncStatus::default()
        };
        let mut checked = None;
        let outcome = match self.fetch().await {
            Err(message) => fail(&mut status, message),
            Ok(revision) => {
                status.last_attempted_revision = Some(revision.commit.clone());
                status.resolved_ref = Some(if revision.resolved == self.source.git_ref {
                    revision.resolved.to_string()
                } else {
                    format!("{}: {}", self.source.git_ref, revision.resolved)
                });
                self.sync_revision(revision, &mut status, &mut checked)
                    .await
            }
        };
        tracing::info!(
            result = status.result.label(),
            revision = status.last_attempted_revision.as_deref().unwrap_or("-"),
            objects = status.counts.objects,
            applied = status.counts.applied,
            pruned = status.counts.pruned,
            refused = status.counts.refused,
            message = %status.message,
            "reconciled"
        );
        match self.write_status(&last, status.clone()).await {
            Ok(false) => {}
            Ok(true) => self.announce(&previous, &status, checked.as_ref()).await,
            Err(message) => tracing::error!(%message, "writing TenantSync status"),
        }
        // Last, so the duration covers the reports and a scrape never sees a reconcile counted
        // whose writes are still under way.
        self.record_metrics(&status, checked.as_ref(), started.elapsed());
        self.metrics.set_ready();
        outcome
    }

    fn record_metrics(
        &self,
        status: &TenantSyncStatus,
        checked: Option<&Checked>,
        took: std::time::Duration,
    ) {
        let m = &self.metrics;
        m.observe_reconcile(status.result.label(), took);
        m.applied.inc_by(u64::from(status.counts.applied));
        m.pruned.inc_by(u64::from(status.counts.pruned));
        if status.result == SyncResult::Applied {
            m.mark_success();
        }
        if let Some(checked) = checked {
            for r in &checked.refusals {
                m.refused
                    .get_or_create(&berth_engine::metrics::ReasonLabel {
                        reason: r.reason.label(),
                    })
                    .inc();
            }
            let denied = checked.denies().count() as u64;
            if denied > 0 {
                m.refused
                    .get_or_create(&berth_engine::metrics::ReasonLabel {
                        reason: "PolicyDenied",
                    })
                    .inc_by(denied);
            }
        }
    }

    /// A Kubernetes Event on the TenantSync and, for a checked revision, its PolicyReport.
    /// Only called when the status changed, so idle reconciles write nothing.
    async fn announce(
        &self,
        sync: &TenantSync,
        status: &TenantSyncStatus,
        checked: Option<&Checked>,
    ) {
        let (type_, reason) = match status.result {
            SyncResult::Applied => (EventType::Normal, "Applied"),
            SyncResult::Refused => (EventType::Warning, "Refused"),
            SyncResult::Failed => (EventType::Warning, "Failed"),
        };
        let revision = status.last_attempted_revision.as_deref().unwrap_or("-");
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(&format!("{revision}: {}", status.message), 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        let reference: ObjectReference = sync.object_ref(&());
        if let Err(error) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, "publishing event");
        }
        if let (Some(checked), Some(revision), Some(bundle)) = (
            checked,
            status.last_attempted_revision.as_deref(),
            status.policy_bundle.as_deref(),
        ) && let Err(error) = self.write_report(checked, revision, bundle).await
        {
            tracing::warn!(%error, "writing PolicyReport");
        }
    }

    /// Records the decision as a signed PolicyReport named by tenant, revision and policy
    /// bundle. Reports are only ever created, never changed or deleted by the agent (its RBAC
    /// allows create, get and list), so together they are an append-only record of decisions.
    /// A report of that name the agent did not sign is never taken for its own: the decision
    /// is recorded under another name.
    async fn write_report(
        &self,
        checked: &Checked,
        revision: &str,
        bundle_version: &str,
    ) -> Result<(), kube::Error> {
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let mut report = policy_report(
            checked,
            &ReportContext {
                tenant: &self.checker.tenant,
                namespace: &self.home,
                revision,
                bundle_version,
                timestamp: now,
            },
        );
        for attempt in 0..2 {
            if attempt > 0 {
                report.metadata.name = format!("{}-{now}", report.metadata.name);
            }
            if let Some(signer) = &self.signer {
                signer.sign(&mut report);
            }
            let object: DynamicObject = serde_json::to_value(&report)
                .and_then(serde_json::from_value)
                .map_err(kube::Error::SerdeError)?;
            match self.reports.create(&PostParams::default(), &object).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    if self.wrote(&report.metadata.name).await? {
                        // Already recorded: the same revision was checked by the same bundle.
                        return Ok(());
                    }
                    tracing::warn!(report = %report.metadata.name, "a PolicyReport of that name exists that this agent did not sign; recording under another name");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether the existing report `name` carries this agent's signature.
    async fn wrote(&self, name: &str) -> Result<bool, kube::Error> {
        let existing = self.reports.get(name).await?;
        let report: Option<PolicyReport> = serde_json::to_value(existing)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok());
        Ok(match (&self.signer, report) {
            (Some(signer), Some(report)) => signer.signed(&report),
            // Unsigned reports cannot be told apart: an agent without a key trusts the name.
            (None, Some(_)) => true,
            (_, None) => false,
        })
    }

    async fn fetch(&self) -> Result<Revision, String> {
        let source = self.source.clone();
        let interrupt = self.interrupt.clone();
        let started = std::time::Instant::now();
        let fetched = tokio::task::spawn_blocking(move || source.fetch(&interrupt)).await;
        self.metrics
            .git_fetch_duration
            .observe(started.elapsed().as_secs_f64());
        fetched
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn sync_revision(
        &self,
        revision: Revision,
        status: &mut TenantSyncStatus,
        keep: &mut Option<Checked>,
    ) -> Outcome {
        let manifests = match self.checker.render(revision.files, &self.path).await {
            Ok(m) => m,
            Err(e) => return fail(status, e.to_string()),
        };
        let scopes = match self.applier.scopes(&manifests).await {
            Ok(s) => s,
            Err(e) => return fail(status, e.to_string()),
        };
        let policy = match self.policy.current().await {
            Ok(current) => current,
            Err(message) => return fail(status, message),
        };
        status.policy_bundle = Some(policy.bundle.version.clone());
        status.policy_message = policy
            .refused_update
            .map(|why| format!("policy update refused, previous bundle kept: {why}"));
        let policy_started = std::time::Instant::now();
        let checked = if self.skip_guard_rails {
            self.check_without_guard_rails(
                &policy.bundle,
                manifests,
                &revision.commit,
                scope_lookup(scopes),
            )
            .await
        } else {
            self.checker
                .check_rendered(
                    &policy.bundle,
                    manifests,
                    &revision.commit,
                    scope_lookup(scopes),
                )
                .await
        };
        self.metrics
            .policy_duration
            .observe(policy_started.elapsed().as_secs_f64());
        let checked = match checked {
            Ok(c) => keep.insert(c),
            Err(e) => return fail(status, e.to_string()),
        };
        status.counts.objects = count(checked.manifests.len());
        status.counts.warnings = count(checked.warnings().count());
        if checked.is_refused() {
            return refuse(status, checked);
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
        policy: &PolicyBundle,
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
        let violations = policy
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
    /// so a reconcile with nothing to do makes no write request at all, even a triggered one
    /// (the trigger watch remembers handled requests in memory).
    async fn write_status(
        &self,
        last: &TenantSyncStatus,
        mut status: TenantSyncStatus,
    ) -> Result<bool, String> {
        let idle = status.counts.applied == 0 && status.counts.pruned == 0;
        let same = status.result == last.result
            && status.last_attempted_revision == last.last_attempted_revision
            && status.last_applied_revision == last.last_applied_revision
            && status.refused == last.refused
            && status.policy_bundle == last.policy_bundle
            && status.policy_message == last.policy_message
            && status.inventory == last.inventory
            && (status.result == SyncResult::Applied || status.message == last.message);
        if idle && same {
            return Ok(false);
        }
        status.last_sync_time = Some(now_rfc3339());
        let patch = serde_json::json!({ "status": status });
        self.syncs
            .patch_status(SYNC_NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| true)
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

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}
