//! Rate limits: one global limit, checked before a request costs anything (API reads, HMAC),
//! and one per tenant, checked only once a request is authenticated, so forged requests
//! cannot use up a tenant's budget.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The receiver's quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// All requests together, authenticated or not.
    pub global: Quota,
    /// Authenticated requests of one tenant.
    pub per_tenant: Quota,
}

impl Default for Limits {
    /// 20/s with bursts of 50 overall; 1/s with bursts of 5 per tenant (a push to several
    /// branches sends a few hooks at once; more than that only repeats the same request).
    fn default() -> Self {
        Self {
            global: Quota::per_second(nonzero(20)).allow_burst(nonzero(50)),
            per_tenant: Quota::per_second(nonzero(1)).allow_burst(nonzero(5)),
        }
    }
}

const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

pub struct Limiters {
    global: DefaultDirectRateLimiter,
    /// Keys are added only for authenticated tenants, so the map stays as small as the set of
    /// tenants with a webhook.
    tenants: DefaultKeyedRateLimiter<String>,
}

impl Limiters {
    pub fn new(limits: &Limits) -> Self {
        Self {
            global: RateLimiter::direct(limits.global),
            tenants: RateLimiter::keyed(limits.per_tenant),
        }
    }

    /// `Err`: how long until a request would be let through.
    pub fn check_global(&self) -> Result<(), Duration> {
        self.global
            .check()
            .map_err(|denied| denied.wait_time_from(self.global.clock().now()))
    }

    pub fn check_tenant(&self, tenant: &str) -> Result<(), Duration> {
        self.tenants
            .check_key(&tenant.to_owned())
            .map_err(|denied| denied.wait_time_from(self.tenants.clock().now()))
    }
}

/// Whole seconds for `Retry-After`, rounded up and at least 1, so a client that obeys it is
/// let through.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn defaults() {
        let limits = Limits::default();
        assert_eq!(limits.global.burst_size().get(), 50);
        assert_eq!(
            limits.global.replenish_interval(),
            Duration::from_millis(50)
        );
        assert_eq!(limits.per_tenant.burst_size().get(), 5);
        assert_eq!(
            limits.per_tenant.replenish_interval(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn tenants_are_limited_separately() {
        let limiters = Limiters::new(&Limits {
            global: Quota::per_hour(nonzero(1)),
            per_tenant: Quota::per_hour(nonzero(1)),
        });
        assert!(limiters.check_tenant("a").is_ok());
        assert!(limiters.check_tenant("a").is_err());
        assert!(limiters.check_tenant("b").is_ok());
        assert!(limiters.check_global().is_ok());
        let wait = limiters.check_global().err();
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(3000)),
            "{wait:?}"
        );
    }
}
