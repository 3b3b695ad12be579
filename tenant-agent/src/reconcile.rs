//! One reconcile of the tenant's repository, and the TenantSync status that reports it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use berth_engine::api::{
    FailureReason, RefusedObject, SYNC_NAME, SyncResult, TenantSync, TenantSyncSpec,
    TenantSyncStatus,
};
use berth_engine::apply::{Applier, ApplyError, FIELD_MANAGER, scope_lookup};
use berth_engine::check::{CheckError, Checked, Checker};
use berth_engine::guard::Scope;
use berth_engine::manifest::ObjectRef;
use berth_engine::metrics::Metrics;
use berth_engine::policy::PolicyBundle;

use crate::policy_source::{NoPolicy, PolicySource};
use berth_engine::report::{PolicyReport, ReportContext, ReportSigner, policy_report};
use berth_engine::source::{GitSource, Revision, SourceError};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource};

use berth_engine::report::GUARD_RAILS;

/// Refused objects listed in the status; the count is always exact.
const MAX_LISTED: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Refused,
    Failed,
}

/// Why a reconcile failed, by step. The message is the status's; [`SyncError::reason`] is the
/// stable reason the status, the Tenant's condition and the metrics carry.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("reading the TenantSync: {0}")]
    StatusRead(#[source] kube::Error),
    #[error(transparent)]
    Fetch(SourceError),
    #[error("the fetch stopped: {0}")]
    FetchTask(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Render(CheckError),
    #[error(transparent)]
    Discovery(ApplyError),
    #[error(transparent)]
    PolicyUnavailable(#[from] NoPolicy),
    #[error(transparent)]
    Policy(CheckError),
    #[error(transparent)]
    Apply(ApplyError),
    /// The API server's ResourceQuota admission refused an object.
    #[error(transparent)]
    QuotaExceeded(ApplyError),
    #[error("writing the TenantSync status: {0}")]
    StatusWrite(#[source] kube::Error),
}

impl SyncError {
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::StatusRead(_) => FailureReason::StatusReadFailed,
            Self::Fetch(_) | Self::FetchTask(_) => FailureReason::FetchFailed,
            Self::Render(_) => FailureReason::RenderFailed,
            Self::Discovery(_) => FailureReason::DiscoveryFailed,
            Self::PolicyUnavailable(_) => FailureReason::PolicyUnavailable,
            Self::Policy(_) => FailureReason::PolicyFailed,
            Self::Apply(_) => FailureReason::ApplyFailed,
            Self::QuotaExceeded(_) => FailureReason::QuotaExceeded,
            Self::StatusWrite(_) => FailureReason::StatusWriteFailed,
        }
    }

    /// A failed apply, told apart by the API server's answer: a full quota is the tenant's to
    /// fix and has its own reason.
    fn from_apply(error: ApplyError) -> Self {
        if error.refusal().is_some_and(exceeds_quota) {
            Self::QuotaExceeded(error)
        } else {
            Self::Apply(error)
        }
    }
}

/// Whether the API server's ResourceQuota admission refused the object. Its Status is a 403
/// Forbidden like an RBAC refusal; only the plugin's own message, stable across Kubernetes
/// versions, tells it apart (a quota whose usage is not yet known says "status unknown for
/// quota" instead, and is not the tenant's doing).
fn exceeds_quota(status: &kube::core::Status) -> bool {
    status.code == 403
        && status.reason == "Forbidden"
        && status.message.contains("exceeded quota: ")
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
            Err(error) => {
                tracing::error!(%error, reason = error.reason().as_str(), "reconcile failed");
                self.metrics.observe_reconcile(
                    SyncResult::Failed,
                    Some(error.reason()),
                    started.elapsed(),
                );
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
        let synced = match self.fetch().await {
            Err(error) => Err(error),
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
        let mut failure = synced.as_ref().err().map(|error| fail(&mut status, error));
        tracing::info!(
            result = status.result.label(),
            reason = status.reason.as_deref().unwrap_or("-"),
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
            Err(error) => {
                // Unrecorded, the reconcile counts as failed and is retried soon.
                tracing::error!(%error, reason = error.reason().as_str(), "reconcile failed");
                failure = Some(error.reason());
            }
        }
        // Last, so the duration covers the reports and a scrape never sees a reconcile counted
        // whose writes are still under way.
        self.record_metrics(&status, failure, checked.as_ref(), started.elapsed());
        self.metrics.set_ready();
        match (failure, synced) {
            (None, Ok(outcome)) => outcome,
            _ => Outcome::Failed,
        }
    }

    fn record_metrics(
        &self,
        status: &TenantSyncStatus,
        failure: Option<FailureReason>,
        checked: Option<&Checked>,
        took: std::time::Duration,
    ) {
        let m = &self.metrics;
        let result = match failure {
            Some(_) => SyncResult::Failed,
            None => status.result,
        };
        m.observe_reconcile(result, failure, took);
        m.applied.inc_by(u64::from(status.counts.applied));
        m.pruned.inc_by(u64::from(status.counts.pruned));
        if result == SyncResult::Applied {
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
            SyncResult::Failed => (
                EventType::Warning,
                status.reason.as_deref().unwrap_or("Failed"),
            ),
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

    async fn fetch(&self) -> Result<Revision, SyncError> {
        let source = self.source.clone();
        let interrupt = self.interrupt.clone();
        let started = std::time::Instant::now();
        let fetched = tokio::task::spawn_blocking(move || source.fetch(&interrupt)).await;
        self.metrics
            .git_fetch_duration
            .observe(started.elapsed().as_secs_f64());
        fetched
            .map_err(SyncError::FetchTask)?
            .map_err(SyncError::Fetch)
    }

    async fn sync_revision(
        &self,
        revision: Revision,
        status: &mut TenantSyncStatus,
        keep: &mut Option<Checked>,
    ) -> Result<Outcome, SyncError> {
        let manifests = self
            .checker
            .render(revision.files, &self.path)
            .await
            .map_err(SyncError::Render)?;
        let scopes = self
            .applier
            .scopes(&manifests)
            .await
            .map_err(SyncError::Discovery)?;
        let policy = self.policy.current().await?;
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
        let checked = keep.insert(checked.map_err(SyncError::Policy)?);
        status.counts.objects = count(checked.manifests.len());
        status.counts.warnings = count(checked.warnings().count());
        if checked.is_refused() {
            return Ok(refuse(status, checked));
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
                Ok(Outcome::Applied)
            }
            Err(error) => {
                // Whatever of the revision reached the cluster is Berth's to prune later.
                let mut inventory: Vec<ObjectRef> = status.inventory.clone();
                inventory.extend(checked.manifests.iter().map(|m| m.reference.clone()));
                inventory.sort();
                inventory.dedup();
                status.inventory = inventory;
                Err(SyncError::from_apply(error))
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

    async fn current_sync(&self) -> Result<TenantSync, SyncError> {
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
                    .map_err(SyncError::StatusRead)
            }
            Err(e) => Err(SyncError::StatusRead(e)),
        }
    }

    /// Writes the status unless this reconcile changed nothing and found things as recorded,
    /// so a reconcile with nothing to do makes no write request at all, even a triggered one
    /// (the trigger watch remembers handled requests in memory).
    async fn write_status(
        &self,
        last: &TenantSyncStatus,
        mut status: TenantSyncStatus,
    ) -> Result<bool, SyncError> {
        let idle = status.counts.applied == 0 && status.counts.pruned == 0;
        let same = status.result == last.result
            && status.reason == last.reason
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
            .map_err(SyncError::StatusWrite)
    }
}

/// Records a failed reconcile in the status; returns its reason.
fn fail(status: &mut TenantSyncStatus, error: &SyncError) -> FailureReason {
    let reason = error.reason();
    status.result = SyncResult::Failed;
    status.reason = Some(reason.as_str().to_owned());
    status.message = error.to_string();
    reason
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn refused(message: &str, reason: &str, code: u16) -> ApplyError {
        ApplyError::DryRun {
            object: "ConfigMap t/more-1 (more.yaml (document 1))".into(),
            source: kube::Error::Api(Status::failure(message, reason).with_code(code).boxed()),
        }
    }

    #[test]
    fn a_quota_refusal_is_told_from_the_api_servers_status() {
        let quota = SyncError::from_apply(refused(
            "configmaps \"more-1\" is forbidden: exceeded quota: berth-quota, requested: configmaps=1, used: configmaps=3, limited: configmaps=3",
            "Forbidden",
            403,
        ));
        assert_eq!(quota.reason(), FailureReason::QuotaExceeded);
        assert!(
            quota.to_string().starts_with(
                "ConfigMap t/more-1 (more.yaml (document 1)) was refused by the API server (dry run, nothing applied): configmaps \"more-1\" is forbidden: exceeded quota: berth-quota"
            ),
            "{quota}"
        );

        // Other refusals are not the quota's: RBAC, a quota not yet counted, an invalid object
        // whose message happens to quote the words.
        for (message, reason, code) in [
            (
                "configmaps \"x\" is forbidden: User \"system:serviceaccount:berth-agent-t:berth-agent\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"kube-system\"",
                "Forbidden",
                403,
            ),
            (
                "configmaps \"x\" is forbidden: status unknown for quota: berth-quota, resource: configmaps",
                "Forbidden",
                403,
            ),
            (
                "ConfigMap \"x\" is invalid: data[exceeded quota: ]: Invalid value",
                "Invalid",
                422,
            ),
        ] {
            let error = SyncError::from_apply(refused(message, reason, code));
            assert_eq!(error.reason(), FailureReason::ApplyFailed, "{message}");
        }
        let not_served = SyncError::from_apply(ApplyError::NotServed {
            object: "Widget t/w".into(),
        });
        assert_eq!(not_served.reason(), FailureReason::ApplyFailed);
    }

    #[test]
    fn a_failure_is_recorded_with_its_reason_and_message() {
        let mut status = TenantSyncStatus {
            result: SyncResult::Applied,
            ..TenantSyncStatus::default()
        };
        let cases = [
            (
                SyncError::Fetch(SourceError::Ref("invalid branch name \"a*b\"".into())),
                FailureReason::FetchFailed,
                "invalid branch name \"a*b\"",
            ),
            (
                SyncError::Render(CheckError::Interrupted("cancelled".into())),
                FailureReason::RenderFailed,
                "rendering was interrupted: cancelled",
            ),
            (
                SyncError::Discovery(ApplyError::NotServed {
                    object: "Widget t/w".into(),
                }),
                FailureReason::DiscoveryFailed,
                "applying Widget t/w: kind is not served by the API server",
            ),
            (
                SyncError::Apply(ApplyError::NotOurs {
                    object: "ConfigMap t/c".into(),
                }),
                FailureReason::ApplyFailed,
                "ConfigMap t/c exists and was not created by this tenant's agent",
            ),
        ];
        for (error, reason, message) in cases {
            assert_eq!(fail(&mut status, &error), reason);
            assert_eq!(status.result, SyncResult::Failed);
            assert_eq!(status.reason.as_deref(), Some(reason.as_str()));
            assert!(status.message.starts_with(message), "{}", status.message);
        }
    }
}
