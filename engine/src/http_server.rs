//! Serving an axum [`Router`] over HTTP/1.1 so that slow or idle clients cannot hold the
//! server: a cap on open connections (overall and per peer address), deadlines for the
//! handshake, the request headers, the whole request and a connection's life, and graceful
//! shutdown. Used by every listener of the operator and the agent.
//!
//! Connections over a cap are closed as soon as they are accepted rather than left waiting:
//! a waiting connection sits in the kernel's accept queue where no deadline applies, and its
//! client cannot tell a full server from a dead one, whereas a closed one fails at once and
//! can be retried. The per-peer cap keeps one address (a compromised Pod, say) from taking
//! every slot, so the kubelet's probes and other clients still get in.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

/// What one server allows its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, from accept to close (a TLS handshake included); more are
    /// closed as soon as they are accepted.
    pub max_connections: u32,
    /// Connections open at once from one IP address; more from it are closed likewise.
    pub max_connections_per_peer: u32,
    /// From accept to a completed handshake (TLS); plain TCP has none.
    pub handshake_timeout: Duration,
    /// From the moment a request may start (a new connection, or the previous response on a
    /// kept-alive one) to its last header line. This is also how long a kept-alive connection
    /// may stay idle.
    pub header_read_timeout: Duration,
    /// From a request's last header to its response: reading the body and handling it. Past
    /// it the client gets 408 and the connection is closed.
    pub request_timeout: Duration,
    /// A connection older than this is closed once its request in flight is answered; one
    /// that still has not finished `request_timeout` later (a client not reading its
    /// response) is dropped.
    pub max_connection_age: Duration,
    /// Request line and headers together; more gets 431.
    pub max_header_bytes: usize,
}

impl Limits {
    /// `max_connections` overall and from one address, 10 s for a handshake and for headers,
    /// 30 s for a request, 5 minutes for a connection, 16 KiB of headers.
    pub const fn new(max_connections: u32) -> Self {
        Self {
            max_connections,
            max_connections_per_peer: max_connections,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connection_age: Duration::from_secs(300),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// What turns an accepted TCP connection into the stream HTTP is read from: nothing for plain
/// HTTP ([`PlainTcp`]), a TLS handshake for HTTPS. It runs in the connection's own task, under
/// [`Limits::handshake_timeout`], so a slow handshake holds up no other client.
pub trait Handshake: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// Plain HTTP.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainTcp;

impl Handshake for PlainTcp {
    type Io = TcpStream;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<TcpStream>> + Send {
        std::future::ready(Ok(tcp))
    }
}

/// Whether a request announces (`Content-Length`) a body of more than `limit` bytes: it can
/// then be refused before any of the body is read. A chunked body has no length; the body
/// limit of the handler's extractor catches it once it grows past the limit.
pub fn declares_more_than(headers: &HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX))
}

/// Serves `router` on `listener` until `shutdown` completes; then accepts nothing more, lets
/// requests in flight finish (each within its `request_timeout`) and returns once every
/// connection is closed.
pub async fn serve<H: Handshake>(
    listener: TcpListener,
    handshake: H,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let peers = Arc::new(Peers::new(limits.max_connections_per_peer));
    let (stop, stopped) = watch::channel(false);
    // Logged once each time the server fills up, not for every refused connection.
    let mut full = false;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors, most likely: retrying at once would spin.
                    tracing::warn!(%error, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = Slot::take(&slots, &peers, peer.ip()) else {
            if !full {
                tracing::warn!(%peer, ?limits, "connection limit reached; closing new connections");
                full = true;
            }
            tracing::debug!(%peer, "connection refused: over the connection limit");
            drop(tcp);
            continue;
        };
        full = false;
        tokio::spawn(connection(
            tcp,
            peer,
            handshake.clone(),
            router.clone(),
            limits,
            slot,
            stopped.clone(),
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    // Each connection holds a slot until it is closed.
    let _ = slots.acquire_many(limits.max_connections).await;
}

/// One connection: handshake, then HTTP/1.1 until the client closes it, a deadline passes,
/// or the server stops.
async fn connection<H: Handshake>(
    tcp: TcpStream,
    peer: SocketAddr,
    handshake: H,
    router: Router,
    limits: Limits,
    _slot: Slot,
    mut stopped: watch::Receiver<bool>,
) {
    let io = match tokio::time::timeout(limits.handshake_timeout, handshake.handshake(tcp)).await {
        Ok(Ok(io)) => io,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    };
    let request_timeout = limits.request_timeout;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(respond(router, request, request_timeout, peer).await) }
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    let served = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection closed");
            }
            return;
        }
        _ = stopped.wait_for(|stop| *stop) => {}
        () = tokio::time::sleep(limits.max_connection_age) => {}
    }
    served.as_mut().graceful_shutdown();
    if tokio::time::timeout(request_timeout, served).await.is_err() {
        tracing::debug!(%peer, "connection dropped: its last response was not taken in time");
    }
}

/// The router's response, or 408 (closing the connection) if the request was not read and
/// answered within `deadline`.
async fn respond(
    router: Router,
    request: Request<Incoming>,
    deadline: Duration,
    peer: SocketAddr,
) -> Response<Body> {
    match tokio::time::timeout(deadline, router.oneshot(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::debug!(%peer, "request not complete in time");
            let mut response =
                (StatusCode::REQUEST_TIMEOUT, "request not complete in time").into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// Open connections by peer address.
struct Peers {
    max: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl Peers {
    fn new(max: u32) -> Self {
        Self {
            max,
            open: Mutex::default(),
        }
    }
}

/// A connection's place under both caps, given back when it is dropped.
struct Slot {
    _overall: OwnedSemaphorePermit,
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Slot {
    fn take(slots: &Arc<Semaphore>, peers: &Arc<Peers>, ip: IpAddr) -> Option<Self> {
        // An IPv4 client of a dual-stack listener counts as itself, not as an IPv6 address.
        let ip = ip.to_canonical();
        let overall = slots.clone().try_acquire_owned().ok()?;
        let mut open = peers.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.get(&ip).copied().unwrap_or(0);
        if count >= peers.max {
            return None;
        }
        open.insert(ip, count + 1);
        Some(Self {
            _overall: overall,
            peers: peers.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .peers
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests;
