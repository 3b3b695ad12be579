//! One webhook request, in order: global rate limit, body (refused unread if its announced
//! length is over the limit), token, authentication, the tenant's rate limit, then the
//! trigger (or nothing, for a ping).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use berth_engine::http_server::declares_more_than;

use super::auth;
use super::limits::retry_after_seconds;
use super::{MAX_BODY, Outcome, OutcomeLabel, Tenants, WebhookState};
use crate::platform::dns_label;

/// GitHub names the event here; `ping` is sent once when the hook is created.
const EVENT_HEADER: &str = "x-github-event";

/// A sender slower than this would only hold a connection open.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

enum Reply {
    Accepted,
    Pong,
    Unauthorized,
    RateLimited(Duration),
    TooLarge,
    BadBody(StatusCode),
    Unavailable,
}

impl Reply {
    fn outcome(&self) -> Outcome {
        match self {
            Self::Accepted => Outcome::Accepted,
            Self::Pong => Outcome::Ping,
            Self::Unauthorized => Outcome::Unauthorized,
            Self::RateLimited(_) => Outcome::RateLimited,
            Self::TooLarge => Outcome::TooLarge,
            Self::BadBody(_) | Self::Unavailable => Outcome::Error,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Self::Accepted => (StatusCode::ACCEPTED, "sync requested").into_response(),
            Self::Pong => (StatusCode::OK, "pong").into_response(),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized").into_response(),
            Self::RateLimited(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_seconds(wait).to_string())],
                "rate limited",
            )
                .into_response(),
            // The rest of the body is not read, so the connection cannot carry another request.
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                [(header::CONNECTION, "close")],
                "payload too large",
            )
                .into_response(),
            Self::BadBody(status) => (status, "unreadable body").into_response(),
            Self::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable, retry later").into_response()
            }
        }
    }
}

/// The `POST /hooks/{tenant}` handler. It takes the raw request rather than a body extractor
/// so that the global rate limit is checked before the body is read.
pub async fn receive<T: Tenants>(
    State(state): State<Arc<WebhookState<T>>>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let reply = handle(&state, &tenant, request).await;
    state
        .outcomes
        .get_or_create(&OutcomeLabel {
            outcome: reply.outcome(),
        })
        .inc();
    reply.into_response()
}

async fn handle<T: Tenants>(state: &WebhookState<T>, tenant: &str, request: Request) -> Reply {
    // Until the name is validated it is whatever the sender put in the URL: logged escaped.
    if let Err(wait) = state.limiters.check_global() {
        tracing::debug!(tenant = ?tenant, "webhook over the global rate limit");
        return Reply::RateLimited(wait);
    }
    // Refused before any of the body is read; a chunked body is caught by the body limit.
    if declares_more_than(request.headers(), MAX_BODY) {
        tracing::debug!(tenant = ?tenant, "webhook body announced too large");
        return Reply::TooLarge;
    }
    let headers = request.headers().clone();
    let body = match tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(request, &())).await {
        Ok(Ok(body)) => body,
        Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            tracing::debug!(tenant = ?tenant, "webhook body too large");
            return Reply::TooLarge;
        }
        Ok(Err(rejection)) => {
            let error = rejection.body_text();
            tracing::debug!(tenant = ?tenant, %error, "reading a webhook body");
            return Reply::BadBody(rejection.status());
        }
        Err(_) => {
            tracing::debug!(tenant = ?tenant, "webhook body too slow");
            return Reply::BadBody(StatusCode::REQUEST_TIMEOUT);
        }
    };
    if !dns_label(tenant) {
        tracing::debug!(tenant = ?tenant, "webhook for an invalid tenant name");
        return Reply::Unauthorized;
    }
    let token = match state.tenants.token(tenant).await {
        Ok(Some(token)) => token,
        // The implementation logged why.
        Ok(None) => return Reply::Unauthorized,
        Err(error) => {
            tracing::error!(tenant, %error, "looking up a webhook token");
            return Reply::Unavailable;
        }
    };
    let scheme = match auth::authenticate(&headers, &body, &token) {
        Ok(scheme) => scheme,
        Err(rejection) => {
            let reason = rejection.reason();
            match rejection {
                auth::Rejection::Missing => tracing::debug!(tenant, reason, "webhook refused"),
                _ => tracing::warn!(tenant, reason, "webhook refused"),
            }
            return Reply::Unauthorized;
        }
    };
    if let Err(wait) = state.limiters.check_tenant(tenant) {
        tracing::debug!(tenant, "webhook over the tenant's rate limit");
        return Reply::RateLimited(wait);
    }
    if headers
        .get(EVENT_HEADER)
        .is_some_and(|event| event.as_bytes() == b"ping")
    {
        tracing::info!(tenant, ?scheme, "webhook ping");
        return Reply::Pong;
    }
    match state.tenants.trigger(tenant).await {
        Ok(()) => {
            tracing::info!(tenant, ?scheme, "webhook: sync requested");
            Reply::Accepted
        }
        Err(error) => {
            tracing::error!(tenant, %error, "requesting a sync for a webhook");
            Reply::Unavailable
        }
    }
}
