//! The Tenant's status, derived (pure) from whether its berth is provisioned and from what its
//! agent reported in the TenantSync: Provisioned, Synced, PolicyCompliant and Ready.

use berth_engine::api::{Condition, FailureReason, SyncResult, TenantStatus, TenantSyncStatus};

/// One condition as decided now; its transition time is filled in by [`derive`].
pub struct Decided {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

/// The new status. Conditions keep their transition time while their status is unchanged.
pub fn derive(
    previous: Option<&TenantStatus>,
    generation: Option<i64>,
    provisioned: Decided,
    sync: Option<&TenantSyncStatus>,
    now: &str,
) -> TenantStatus {
    let (synced, compliant) = match sync {
        None => (
            decided(
                "Synced",
                "Unknown",
                "Pending",
                "the agent has not reported yet",
            ),
            decided(
                "PolicyCompliant",
                "Unknown",
                "Pending",
                "the agent has not reported yet",
            ),
        ),
        Some(s) => {
            let synced = match s.result {
                SyncResult::Applied => decided("Synced", "True", "Applied", &s.message),
                SyncResult::Refused => decided("Synced", "False", "Refused", &s.message),
                SyncResult::Failed => decided("Synced", "False", failure(s), &s.message),
            };
            let compliant = if s.result == SyncResult::Refused {
                decided("PolicyCompliant", "False", "Refused", &s.message)
            } else {
                decided(
                    "PolicyCompliant",
                    "True",
                    "Compliant",
                    "no object was refused",
                )
            };
            (synced, compliant)
        }
    };
    let not_ready = [&provisioned, &synced]
        .into_iter()
        .find(|c| c.status != "True");
    let ready = match not_ready {
        None => decided("Ready", "True", "Ready", "provisioned and in sync"),
        Some(c) => decided("Ready", "False", &format!("Not{}", c.type_), &c.message),
    };
    let conditions = [compliant, provisioned, ready, synced]
        .into_iter()
        .map(|d| {
            let kept = previous
                .and_then(|p| {
                    p.conditions
                        .iter()
                        .find(|c| c.type_ == d.type_ && c.status == d.status)
                })
                .map(|c| c.last_transition_time.clone());
            Condition {
                type_: d.type_.into(),
                status: d.status.into(),
                reason: d.reason,
                message: d.message,
                last_transition_time: kept.unwrap_or_else(|| now.to_owned()),
                observed_generation: generation,
            }
        })
        .collect();
    TenantStatus {
        conditions,
        observed_generation: generation,
        last_applied_revision: sync.and_then(|s| s.last_applied_revision.clone()),
        resolved_ref: sync.and_then(|s| s.resolved_ref.clone()),
        objects: sync.map_or(0, |s| s.counts.objects),
        refused: sync.map_or(0, |s| s.counts.refused),
        ..TenantStatus::default()
    }
}

/// The reason of a failed sync, as the agent recorded it; `Failed` when it recorded none (an
/// older agent) or one outside the known set, so a condition never carries free text.
fn failure(sync: &TenantSyncStatus) -> &'static str {
    sync.reason
        .as_deref()
        .and_then(FailureReason::parse)
        .map_or("Failed", FailureReason::as_str)
}

pub fn decided(type_: &'static str, status: &'static str, reason: &str, message: &str) -> Decided {
    Decided {
        type_,
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: &TenantStatus) -> (&str, &str) {
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn ready_needs_provisioning_and_an_applied_revision() {
        let provisioned = || decided("Provisioned", "True", "Provisioned", "ok");
        let pending = derive(None, Some(1), provisioned(), None, "t0");
        assert_eq!(ready(&pending), ("False", "NotSynced"));
        let applied = TenantSyncStatus {
            result: SyncResult::Applied,
            last_applied_revision: Some("abc".into()),
            ..TenantSyncStatus::default()
        };
        let status = derive(Some(&pending), Some(1), provisioned(), Some(&applied), "t1");
        assert_eq!(ready(&status), ("True", "Ready"));
        assert_eq!(status.last_applied_revision.as_deref(), Some("abc"));
        // Unchanged Provisioned keeps its transition time; Ready changed.
        let time = |s: &TenantStatus, t: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .last_transition_time
                .clone()
        };
        assert_eq!(time(&status, "Provisioned"), "t0");
        assert_eq!(time(&status, "Ready"), "t1");
    }

    #[test]
    fn a_refused_revision_is_not_compliant_and_not_ready() {
        let refused = TenantSyncStatus {
            result: SyncResult::Refused,
            message: "revision refused".into(),
            ..TenantSyncStatus::default()
        };
        let status = derive(
            None,
            None,
            decided("Provisioned", "True", "Provisioned", "ok"),
            Some(&refused),
            "t",
        );
        let compliant = status
            .conditions
            .iter()
            .find(|c| c.type_ == "PolicyCompliant")
            .unwrap();
        assert_eq!(
            (compliant.status.as_str(), compliant.reason.as_str()),
            ("False", "Refused")
        );
        assert_eq!(ready(&status), ("False", "NotSynced"));
        let failed = derive(
            None,
            None,
            decided("Provisioned", "False", "InvalidSpec", "bad"),
            None,
            "t",
        );
        assert_eq!(ready(&failed), ("False", "NotProvisioned"));
    }

    fn synced(sync: &TenantSyncStatus) -> Condition {
        let provisioned = decided("Provisioned", "True", "Provisioned", "ok");
        let status = derive(None, None, provisioned, Some(sync), "t");
        status
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Synced")
            .unwrap()
    }

    #[test]
    fn a_quota_the_apiserver_enforced_is_named_as_the_reason() {
        let failed = TenantSyncStatus {
            result: SyncResult::Failed,
            reason: Some("QuotaExceeded".into()),
            message:
                "applying ConfigMap t/c: configmaps \"c\" is forbidden: exceeded quota: berth-quota"
                    .into(),
            ..TenantSyncStatus::default()
        };
        let synced = synced(&failed);
        assert_eq!(
            (synced.status.as_str(), synced.reason.as_str()),
            ("False", "QuotaExceeded")
        );
        assert!(synced.message.contains("exceeded quota: berth-quota"));
    }

    #[test]
    fn the_reason_comes_from_the_agent_not_from_its_message() {
        let failed = |reason: Option<&str>, message: &str| TenantSyncStatus {
            result: SyncResult::Failed,
            reason: reason.map(Into::into),
            message: message.into(),
            ..TenantSyncStatus::default()
        };
        // The message alone decides nothing, whatever it says.
        let quoted = synced(&failed(
            Some("FetchFailed"),
            "fetching https://git.example.com/exceeded quota: x",
        ));
        assert_eq!(quoted.reason, "FetchFailed");
        let older_agent = synced(&failed(None, "configmaps is forbidden: exceeded quota: q"));
        assert_eq!(older_agent.reason, "Failed");
        // A reason outside the known set never reaches the condition.
        let unknown = synced(&failed(Some("Not a reason!"), "x"));
        assert_eq!(unknown.reason, "Failed");
        for reason in FailureReason::ALL {
            let condition = synced(&failed(Some(reason.as_str()), "x"));
            assert_eq!(condition.reason, reason.as_str());
        }
    }
}
