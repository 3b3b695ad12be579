//! `TenantSync`: one tenant's sync state, kept by its agent in the tenant's primary namespace.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::ObjectRef;

/// Name of a tenant's TenantSync.
pub const SYNC_NAME: &str = "berth";

/// The sync state of one tenant, kept by its agent in the tenant's primary namespace (named
/// `berth`). Setting `spec.syncRequestedAt` asks the agent to reconcile at once.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "TenantSync",
    namespaced,
    status = "TenantSyncStatus",
    shortname = "tsync",
    printcolumn = r#"{"name":"Result","type":"string","jsonPath":".status.result"}"#,
    printcolumn = r#"{"name":"Applied revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Objects","type":"integer","jsonPath":".status.counts.objects"}"#,
    printcolumn = r#"{"name":"Refused","type":"integer","jsonPath":".status.counts.refused"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSyncSpec {
    /// Any new value triggers an immediate reconcile (the operator's webhook sets a timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_requested_at: Option<String>,
}

/// The outcome of a reconcile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SyncResult {
    /// The revision is applied (or was already).
    Applied,
    /// Guard rails or policy refused the revision; nothing of it was applied.
    Refused,
    /// The revision could not be fetched, rendered or applied.
    #[default]
    Failed,
}

impl SyncResult {
    /// A stable label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Applied => "Applied",
            Self::Refused => "Refused",
            Self::Failed => "Failed",
        }
    }
}

/// Why a reconcile failed, one per step of the pipeline: what the agent writes to
/// `status.reason`, the Tenant's `Synced` condition shows and the agent's metrics are labelled
/// with. Stable names; a cause the tenant can fix itself (a full quota) has its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The agent's TenantSync could not be read (or created).
    StatusReadFailed,
    /// The repository could not be fetched, or its revision broke a limit.
    FetchFailed,
    /// The revision could not be rendered (kustomize, YAML, limits).
    RenderFailed,
    /// The API server's discovery failed for a kind the revision declares.
    DiscoveryFailed,
    /// There is no valid policy bundle to check the revision with.
    PolicyUnavailable,
    /// The policy could not be evaluated.
    PolicyFailed,
    /// The API server refused an object, or the apply or prune failed.
    ApplyFailed,
    /// The API server's ResourceQuota admission refused an object: the tenant's quota is full.
    QuotaExceeded,
    /// The reconcile's status could not be written.
    StatusWriteFailed,
}

impl FailureReason {
    pub const ALL: [Self; 9] = [
        Self::StatusReadFailed,
        Self::FetchFailed,
        Self::RenderFailed,
        Self::DiscoveryFailed,
        Self::PolicyUnavailable,
        Self::PolicyFailed,
        Self::ApplyFailed,
        Self::QuotaExceeded,
        Self::StatusWriteFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusReadFailed => "StatusReadFailed",
            Self::FetchFailed => "FetchFailed",
            Self::RenderFailed => "RenderFailed",
            Self::DiscoveryFailed => "DiscoveryFailed",
            Self::PolicyUnavailable => "PolicyUnavailable",
            Self::PolicyFailed => "PolicyFailed",
            Self::ApplyFailed => "ApplyFailed",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::StatusWriteFailed => "StatusWriteFailed",
        }
    }

    /// The reason a status names, if it is one of these (a newer agent may know more).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Counts of the last recorded reconcile (a reconcile that changes nothing and finds the
/// same revision and result is not recorded, to keep idle reconciles free of writes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncCounts {
    pub objects: u32,
    pub applied: u32,
    pub unchanged: u32,
    pub pruned: u32,
    pub refused: u32,
    pub warnings: u32,
}

/// One object the agent refused, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedObject {
    /// `Kind namespace/name`.
    pub object: String,
    /// File and document it was declared in.
    pub origin: String,
    /// `guard-rails` or the policy id.
    pub policy: String,
    pub rule: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSyncStatus {
    pub result: SyncResult,
    /// The commit the last reconcile looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// What that commit was fetched for: the branch followed, or the tag, semver range (and
    /// the tag it chose) or commit pinned, e.g. `semver ^1.2: tag v1.4.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ref: Option<String>,
    /// The commit currently applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// RFC 3339 time of the last reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// The last `spec.syncRequestedAt` handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_request: Option<String>,
    pub message: String,
    /// Why the last reconcile failed (result `Failed`), one of a fixed set of CamelCase
    /// reasons: `FetchFailed`, `RenderFailed`, `DiscoveryFailed`, `PolicyUnavailable`,
    /// `PolicyFailed`, `ApplyFailed` or `QuotaExceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Digest of the policy bundle the last revision was checked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_bundle: Option<String>,
    /// Why the platform's latest policy bundle was not taken (the previous one stays active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_message: Option<String>,
    pub counts: SyncCounts,
    /// Refused objects of the last attempted revision (capped; `counts.refused` is exact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedObject>,
    /// What Berth applied and will prune when a revision drops it.
    #[serde(default)]
    pub inventory: Vec<ObjectRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_are_camel_case_and_read_back() {
        for reason in FailureReason::ALL {
            let name = reason.as_str();
            assert!(
                name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}"
            );
            assert_eq!(FailureReason::parse(name), Some(reason));
        }
        assert_eq!(FailureReason::parse("Failed"), None);
        assert_eq!(FailureReason::parse("quotaexceeded"), None);
    }
}
