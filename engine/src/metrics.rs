//! Prometheus metrics of a sync pipeline (`prometheus-client`), the `/metrics`, `/healthz` and
//! `/readyz` endpoints, and a client layer that counts API requests by HTTP method. Labels come
//! from fixed enums and error variants, never from object names or error text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{FailureReason, SyncResult};
use crate::http_server::{self, Limits, PlainTcp};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// A reconcile's result and, for a failed one, its reason (`{result="Failed",
/// reason="QuotaExceeded"}`); the others carry no reason label at all.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ReconcileLabel {
    pub result: &'static str,
    pub reason: Option<&'static str>,
}

impl EncodeLabelSet for ReconcileLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("result", self.result).encode(encoder.encode_label())?;
        if let Some(reason) = self.reason {
            ("reason", reason).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    pub reconcile_duration: Family<ReconcileLabel, Histogram>,
    pub git_fetch_duration: Histogram,
    pub policy_duration: Histogram,
    pub applied: Counter,
    pub pruned: Counter,
    pub refused: Family<ReasonLabel, Counter>,
    pub last_success: Gauge<f64, AtomicU64>,
    pub api_requests: Family<MethodLabel, Counter>,
    ready: AtomicBool,
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("berth");
        let reconcile_duration = Family::<ReconcileLabel, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        let git_fetch_duration = seconds_histogram();
        let policy_duration = seconds_histogram();
        let (applied, pruned) = (Counter::default(), Counter::default());
        let refused = Family::<ReasonLabel, Counter>::default();
        let last_success = Gauge::<f64, AtomicU64>::default();
        let api_requests = Family::<MethodLabel, Counter>::default();
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles by result (and, for failed ones, reason)",
            reconcile_duration.clone(),
        );
        registry.register(
            "git_fetch_duration_seconds",
            "Duration of Git fetches",
            git_fetch_duration.clone(),
        );
        registry.register(
            "policy_evaluation_duration_seconds",
            "Duration of the policy evaluation of one revision",
            policy_duration.clone(),
        );
        registry.register(
            "objects_applied",
            "Objects created or changed by server-side apply",
            applied.clone(),
        );
        registry.register(
            "objects_pruned",
            "Objects deleted because Git no longer declares them",
            pruned.clone(),
        );
        registry.register(
            "objects_refused",
            "Objects refused by guard rails or policy, by reason",
            refused.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful reconcile",
            last_success.clone(),
        );
        registry.register(
            "api_requests",
            "Requests sent to the Kubernetes API server, by HTTP method",
            api_requests.clone(),
        );
        Self {
            registry,
            reconcile_duration,
            git_fetch_duration,
            policy_duration,
            applied,
            pruned,
            refused,
            last_success,
            api_requests,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Records a reconcile; `failure` is its reason when `result` is `Failed`.
    pub fn observe_reconcile(
        &self,
        result: SyncResult,
        failure: Option<FailureReason>,
        took: Duration,
    ) {
        let label = ReconcileLabel {
            result: result.label(),
            reason: failure.map(FailureReason::as_str),
        };
        self.reconcile_duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    pub fn mark_success(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        self.last_success.set(now);
    }

    /// Ready once the first reconcile has run (whatever its result).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Requests sent so far, by method (for benchmarks and logs).
    pub fn request_count(&self, method: &str) -> u64 {
        self.api_requests
            .get_or_create(&MethodLabel {
                method: method.to_owned(),
            })
            .get()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
#[error("serving metrics on {addr}: {source}")]
pub struct ServeError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// What the `/metrics`, `/healthz` and `/readyz` endpoints expose: the agent's or the
/// operator's metrics, and whether the process is ready for traffic.
pub trait Exposition: Send + Sync + 'static {
    /// The metrics in the Prometheus text format.
    fn encode(&self) -> String;
    /// `Err(why)` while not ready.
    fn ready(&self) -> Result<(), &'static str>;
}

impl Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }

    fn ready(&self) -> Result<(), &'static str> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("no reconcile has run yet")
        }
    }
}

/// The limits of the metrics listener: Prometheus and the kubelet's probes need a few
/// connections each. No one address may hold more than 8, so a Pod flooding the port cannot
/// shut out the probes (and have the process restarted).
pub const SERVER_LIMITS: Limits = Limits {
    max_connections_per_peer: 8,
    request_timeout: Duration::from_secs(10),
    ..Limits::new(32)
};

/// Serves `/metrics`, `/healthz` (the process is alive) and `/readyz` until `shutdown`
/// completes, within [`SERVER_LIMITS`].
pub async fn serve<E: Exposition>(
    addr: SocketAddr,
    exposition: Arc<E>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(e): State<Arc<E>>| async move { e.encode() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(e): State<Arc<E>>| async move {
                match e.ready() {
                    Ok(()) => (StatusCode::OK, "ready"),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                }
            }),
        )
        .with_state(exposition);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError { addr, source })?;
    http_server::serve(listener, PlainTcp, app, SERVER_LIMITS, shutdown).await;
    Ok(())
}

/// A client whose every request is counted by HTTP method in `requests`.
pub fn counting_client(
    config: kube::Config,
    requests: Family<MethodLabel, Counter>,
) -> Result<kube::Client, kube::Error> {
    let layer =
        tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            requests
                .get_or_create(&MethodLabel {
                    method: request.method().as_str().to_owned(),
                })
                .inc();
            request
        });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reconcile_is_labelled_with_its_reason() {
        let metrics = Metrics::default();
        let took = Duration::from_millis(5);
        metrics.observe_reconcile(SyncResult::Applied, None, took);
        metrics.observe_reconcile(SyncResult::Failed, Some(FailureReason::QuotaExceeded), took);
        let text = metrics.encode();
        assert!(
            text.contains("berth_reconcile_duration_seconds_count{result=\"Applied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "berth_reconcile_duration_seconds_count{result=\"Failed\",reason=\"QuotaExceeded\"} 1"
            ),
            "{text}"
        );
    }
}
