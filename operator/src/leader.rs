//! Leader election on a `coordination.k8s.io` Lease, so two operator replicas never both act:
//! only the holder runs controllers and writes; a replica that cannot renew in time stops acting
//! (and the process exits, to be restarted as a standby).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

/// Why the lease could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("reading Lease {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("leadership lost: Lease {name} was not renewed within {seconds}s")]
    Lost { name: String, seconds: u64 },
}

pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    /// This replica's identity, recorded as the holder.
    identity: String,
    duration: Duration,
}

/// What to do with the lease as it stands now.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Held by us: renew.
    Renew,
    /// Free or expired: take it.
    Take,
    /// Held by another replica whose lease has not expired.
    Wait,
}

/// Decides from the lease's spec alone, so the rule is unit tested: an empty holder or a renew
/// time older than the holder's own duration means the lease is free.
fn decide(spec: &LeaseSpec, identity: &str, now: Timestamp) -> Decision {
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => Decision::Renew,
        None | Some("") => Decision::Take,
        Some(_) => {
            let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
            let expired = spec.renew_time.as_ref().is_none_or(|renewed| {
                renewed
                    .0
                    .checked_add(SignedDuration::from_secs(seconds))
                    .is_ok_and(|expiry| expiry < now)
            });
            if expired {
                Decision::Take
            } else {
                Decision::Wait
            }
        }
    }
}

impl LeaseLock {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    /// Renewal period: a third of the lease, so two renewals may fail before it expires.
    fn period(&self) -> Duration {
        self.duration / 3
    }

    /// Waits until this replica holds the lease; `false` if `shutdown` came first.
    pub async fn acquire(&self, shutdown: &CancellationToken) -> bool {
        loop {
            match self.try_hold().await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "leader election"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.period()) => {}
                () = shutdown.cancelled() => return false,
            }
        }
    }

    /// Renews the lease until `shutdown` (`Ok`; release it once everything has stopped), or
    /// returns an error if it could not be renewed within its duration (another replica may
    /// hold it now).
    pub async fn hold(&self, shutdown: &CancellationToken) -> Result<(), LeaderError> {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.period()) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            match self.try_hold().await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    return Err(self.lost());
                }
                Err(error) => tracing::warn!(%error, "renewing the leader lease"),
            }
            // Stop acting before another replica may take over: the lease expires after
            // `duration` without renewal.
            if renewed.elapsed() >= self.duration.saturating_sub(self.period() / 2) {
                return Err(self.lost());
            }
        }
    }

    fn lost(&self) -> LeaderError {
        LeaderError::Lost {
            name: self.name.clone(),
            seconds: self.duration.as_secs(),
        }
    }

    /// One round: takes or renews the lease if it may; `Ok(false)` if another replica holds it
    /// or won the race (the API server's optimistic concurrency decides).
    async fn try_hold(&self) -> Result<bool, LeaderError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| LeaderError::Read {
                name: self.name.clone(),
                source,
            })?;
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                let mut spec = lease.spec.take().unwrap_or_default();
                match decide(&spec, &self.identity, now) {
                    Decision::Wait => return Ok(false),
                    Decision::Renew => {}
                    Decision::Take => {
                        spec.holder_identity = Some(self.identity.clone());
                        spec.acquire_time = Some(MicroTime(now));
                        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    }
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(seconds);
                lease.spec = Some(spec);
                // `replace` carries the resourceVersion read above: a concurrent writer makes
                // it fail with 409 instead of both replicas believing they lead.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(LeaderError::Read {
                name: self.name.clone(),
                source,
            }),
        }
    }

    /// Gives the lease up so a standby takes over at once instead of after it expires.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "leadership released"),
            Err(error) => tracing::warn!(%error, "releasing the leader lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_seconds_ago: Option<i64>, duration: i32) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(duration),
            renew_time: renewed_seconds_ago
                .map(|s| MicroTime(now.checked_sub(SignedDuration::from_secs(s)).unwrap_or(now))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_free_lease_is_taken() {
        let now = Timestamp::now();
        assert_eq!(decide(&spec(None, None, 15), "a", now), Decision::Take);
        assert_eq!(
            decide(&spec(Some(""), Some(1), 15), "a", now),
            Decision::Take
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let now = Timestamp::now();
        assert_eq!(
            decide(&spec(Some("a"), Some(100), 15), "a", now),
            Decision::Renew
        );
    }

    #[test]
    fn another_holders_live_lease_is_respected_until_it_expires() {
        let now = Timestamp::now();
        assert_eq!(
            decide(&spec(Some("b"), Some(5), 15), "a", now),
            Decision::Wait
        );
        assert_eq!(
            decide(&spec(Some("b"), Some(16), 15), "a", now),
            Decision::Take
        );
        assert_eq!(decide(&spec(Some("b"), None, 15), "a", now), Decision::Take);
    }
}
