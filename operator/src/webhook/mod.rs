//! The webhook receiver: `POST /hooks/{tenant}` from a Git host asks the tenant's agent to
//! reconcile at once, instead of at its next interval.
//!
//! A request is authenticated by a GitHub-style HMAC-SHA256 signature of its body or by a
//! bearer token, both with the token of the Secret named by the Tenant's
//! `spec.source.webhookSecret`. Every failure to authenticate, whatever its cause (unknown
//! tenant, no secret, bad signature), gets the same 401, so the endpoint does not tell which
//! tenants exist. A global rate limit comes before any work, a per-tenant one after
//! authentication. The cluster is reached only through [`Tenants`], so the whole request
//! pipeline is testable without one.

mod auth;
mod cluster;
mod limits;
mod outcome;
mod receive;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use berth_engine::http_server;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

pub use cluster::KubeTenants;
pub use limits::Limits;
pub use outcome::{Outcome, OutcomeLabel};

use limits::Limiters;

use crate::apiserver::ApiError;

/// Larger bodies are refused (413): Git hosts' push payloads are far smaller, and the body is
/// held in memory to check its signature.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a webhook could not be handled, or the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("serving webhooks on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the receiver needs from the cluster.
pub trait Tenants: Send + Sync + 'static {
    /// The tenant's webhook token; `None` when the tenant, its `webhookSecret`, that Secret or
    /// its `token` is missing (implementations log which).
    fn token(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, WebhookError>> + Send;

    /// Asks the tenant's agent to reconcile now.
    fn trigger(&self, tenant: &str) -> impl Future<Output = Result<(), WebhookError>> + Send;
}

/// Everything a request needs: the cluster, the rate limiters and the outcome counters.
pub struct WebhookState<T = KubeTenants> {
    tenants: T,
    limiters: Limiters,
    outcomes: Family<OutcomeLabel, Counter>,
}

impl WebhookState<KubeTenants> {
    /// `operator_namespace` holds the webhook Secrets; `outcomes` counts requests by outcome
    /// (register it in the operator's metrics registry).
    pub fn new(
        client: kube::Client,
        operator_namespace: impl Into<String>,
        limits: Limits,
        outcomes: Family<OutcomeLabel, Counter>,
    ) -> Self {
        Self::with_tenants(
            KubeTenants::new(client, operator_namespace),
            limits,
            outcomes,
        )
    }
}

impl<T: Tenants> WebhookState<T> {
    fn with_tenants(tenants: T, limits: Limits, outcomes: Family<OutcomeLabel, Counter>) -> Self {
        Self {
            tenants,
            limiters: Limiters::new(&limits),
            outcomes,
        }
    }
}

/// The receiver's routes: `POST /hooks/{tenant}`.
pub fn router<T: Tenants>(state: Arc<WebhookState<T>>) -> Router {
    Router::new()
        .route("/hooks/{tenant}", post(receive::receive::<T>))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The receiver's connection limits. Git hosts send a hook at a time per push, and the global
/// rate limit answers more than 50 at once with 429 anyway; 64 connections bound the bodies
/// held in memory to 64 MiB. No cap per address: behind an Ingress or load balancer every
/// client has the same one.
pub const SERVER_LIMITS: http_server::Limits = http_server::Limits::new(64);

/// Serves [`router`] on `addr` within [`SERVER_LIMITS`] until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve<T: Tenants>(
    addr: SocketAddr,
    state: Arc<WebhookState<T>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebhookError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebhookError::Serve { addr, source })?;
    tracing::info!(%addr, "serving webhooks");
    serve_on(listener, state, SERVER_LIMITS, shutdown).await;
    Ok(())
}

/// [`serve`] on a bound listener, within `limits`.
pub async fn serve_on<T: Tenants>(
    listener: tokio::net::TcpListener,
    state: Arc<WebhookState<T>>,
    limits: http_server::Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    http_server::serve(
        listener,
        http_server::PlainTcp,
        router(state),
        limits,
        shutdown,
    )
    .await;
}
