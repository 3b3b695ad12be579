//! The operator's Prometheus metrics, served with `/healthz` and `/readyz` (ready = leading, so
//! only the leader receives webhook traffic). Labels come from fixed sets, never object names.

use std::sync::atomic::{AtomicBool, Ordering};

use berth_engine::metrics::{Exposition, MethodLabel, ResultLabel};

use crate::webhook::OutcomeLabel;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub struct OperatorMetrics {
    registry: Registry,
    pub leader: Gauge,
    pub api_requests: Family<MethodLabel, Counter>,
    pub tenant_reconciles: Family<ResultLabel, Counter>,
    pub platform_syncs: Family<ResultLabel, Counter>,
    pub agents_running: Gauge,
    pub agent_restarts: Counter,
    pub webhook_requests: Family<OutcomeLabel, Counter>,
    pub admission_requests: Family<ResultLabel, Counter>,
    pub admission_duration: Histogram,
    leading: AtomicBool,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("berth_operator"),
            leader: Gauge::default(),
            api_requests: Family::default(),
            tenant_reconciles: Family::default(),
            platform_syncs: Family::default(),
            agents_running: Gauge::default(),
            agent_restarts: Counter::default(),
            webhook_requests: Family::default(),
            admission_requests: Family::default(),
            // 0.5 ms to about 4 s.
            admission_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            leading: AtomicBool::new(false),
        };
        let r = &mut metrics.registry;
        r.register(
            "leader",
            "1 while this replica holds the leader lease",
            metrics.leader.clone(),
        );
        r.register(
            "api_requests",
            "Requests sent to the Kubernetes API server, by HTTP method",
            metrics.api_requests.clone(),
        );
        r.register(
            "tenant_reconciles",
            "Tenant reconciles by result (ok, error)",
            metrics.tenant_reconciles.clone(),
        );
        r.register(
            "platform_syncs",
            "Platform repository syncs by result (applied, refused)",
            metrics.platform_syncs.clone(),
        );
        r.register(
            "agents_running",
            "Agent processes running (process mode)",
            metrics.agents_running.clone(),
        );
        r.register(
            "agent_restarts",
            "Agent processes restarted after exiting (process mode)",
            metrics.agent_restarts.clone(),
        );
        r.register(
            "webhook_requests",
            "Webhook requests by outcome",
            metrics.webhook_requests.clone(),
        );
        r.register(
            "admission_requests",
            "Admission reviews of writes in tenant namespaces by result (allowed, denied, invalid)",
            metrics.admission_requests.clone(),
        );
        r.register(
            "admission_duration_seconds",
            "Time to answer an admission review",
            metrics.admission_duration.clone(),
        );
        metrics
    }
}

impl OperatorMetrics {
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
        self.leader.set(i64::from(leading));
    }

    pub fn count(family: &Family<ResultLabel, Counter>, result: &'static str) {
        family.get_or_create(&ResultLabel { result }).inc();
    }
}

impl Exposition for OperatorMetrics {
    fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    fn ready(&self) -> Result<(), &'static str> {
        if self.leading.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("standby: another replica holds the leader lease")
        }
    }
}
