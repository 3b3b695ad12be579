//! The receiver's status codes, triggers and counters, against tenants kept in memory.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::hmac;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use governor::Quota;
use tower::ServiceExt;

use super::*;

const TOKEN: &[u8] = b"shop-token";
const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;

/// Tenants by name: `shop` and `other` with tokens, `nosecret` without one.
struct Memory {
    tokens: HashMap<&'static str, Option<Vec<u8>>>,
    lookups: AtomicUsize,
    triggers: Mutex<Vec<String>>,
    fail_lookup: bool,
    fail_trigger: bool,
}

impl Memory {
    fn new() -> Self {
        Self {
            tokens: HashMap::from([
                ("shop", Some(TOKEN.to_vec())),
                ("other", Some(b"other-token".to_vec())),
                ("nosecret", None),
            ]),
            lookups: AtomicUsize::new(0),
            triggers: Mutex::default(),
            fail_lookup: false,
            fail_trigger: false,
        }
    }
}

fn api_error() -> WebhookError {
    WebhookError::Api(crate::apiserver::ApiError {
        action: "reading",
        object: "Tenant shop".into(),
        source: kube::Error::LinesCodecMaxLineLengthExceeded,
    })
}

impl Tenants for Memory {
    async fn token(&self, tenant: &str) -> Result<Option<Vec<u8>>, WebhookError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.fail_lookup {
            return Err(api_error());
        }
        Ok(self.tokens.get(tenant).cloned().flatten())
    }

    async fn trigger(&self, tenant: &str) -> Result<(), WebhookError> {
        if self.fail_trigger {
            return Err(api_error());
        }
        self.triggers.lock().unwrap().push(tenant.to_owned());
        Ok(())
    }
}

type Shared = Arc<WebhookState<Memory>>;

fn state_with(memory: Memory, limits: Limits) -> Shared {
    Arc::new(WebhookState::with_tenants(
        memory,
        limits,
        Family::default(),
    ))
}

fn state() -> Shared {
    state_with(Memory::new(), Limits::default())
}

fn quota_per_hour(n: u32) -> Quota {
    Quota::per_hour(NonZeroU32::new(n).unwrap())
}

fn triggers(state: &Shared) -> Vec<String> {
    state.tenants.triggers.lock().unwrap().clone()
}

fn lookups(state: &Shared) -> usize {
    state.tenants.lookups.load(Ordering::SeqCst)
}

fn count(state: &Shared, outcome: Outcome) -> u64 {
    state
        .outcomes
        .get_or_create(&OutcomeLabel { outcome })
        .get()
}

fn signature(token: &[u8], body: &[u8]) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, token), body);
    format!("sha256={}", hex::encode(tag.as_ref()))
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn post(state: &Shared, tenant: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut request = Request::post(format!("/hooks/{tenant}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::from(body.to_vec())).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn post_signed(state: &Shared, tenant: &str, body: &[u8]) -> Reply {
    let signature = signature(TOKEN, body);
    post(state, tenant, &[("x-hub-signature-256", &signature)], body).await
}

/// Every refusal looks the same from outside, and triggers nothing.
async fn assert_refused(state: &Shared, tenant: &str, headers: &[(&str, &str)]) {
    let reply = post(state, tenant, headers, BODY).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{tenant} {headers:?}"
    );
    assert_eq!(reply.body, "unauthorized");
    assert!(triggers(state).is_empty());
}

fn retry_after(reply: &Reply) -> u64 {
    reply.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn valid_signature_triggers_once() {
    let state = state();
    let reply = post_signed(&state, "shop", BODY).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body, "sync requested");
    assert_eq!(triggers(&state), ["shop"]);
    assert_eq!(count(&state, Outcome::Accepted), 1);
}

#[tokio::test]
async fn valid_bearer_token_triggers() {
    let state = state();
    let reply = post(
        &state,
        "shop",
        &[("authorization", "Bearer shop-token")],
        BODY,
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(triggers(&state), ["shop"]);
}

#[tokio::test]
async fn bad_signatures_are_refused() {
    let state = state();
    let wrong = signature(b"other-token", BODY);
    let unprefixed = wrong.trim_start_matches("sha256=").to_owned();
    let bad_hex = format!("sha256={}", "zz".repeat(32));
    for value in [&wrong, &unprefixed, &bad_hex] {
        assert_refused(&state, "shop", &[("x-hub-signature-256", value)]).await;
    }
    // A signature over another body.
    let reply = post(
        &state,
        "shop",
        &[("x-hub-signature-256", &signature(TOKEN, b"{}"))],
        BODY,
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // A valid bearer token does not rescue a bad signature.
    let both = [
        ("x-hub-signature-256", wrong.as_str()),
        ("authorization", "Bearer shop-token"),
    ];
    assert_refused(&state, "shop", &both).await;
    assert_eq!(count(&state, Outcome::Unauthorized), 5);
}

#[tokio::test]
async fn missing_or_wrong_bearer_is_refused() {
    let state = state();
    assert_refused(&state, "shop", &[]).await;
    assert_refused(&state, "shop", &[("authorization", "Bearer other-token")]).await;
    assert_refused(
        &state,
        "shop",
        &[("authorization", "Basic c2hvcC10b2tlbg==")],
    )
    .await;
}

#[tokio::test]
async fn unknown_tenants_and_tenants_without_secret_are_refused_alike() {
    let state = state();
    let signed = signature(TOKEN, BODY);
    for tenant in ["ghost", "nosecret"] {
        assert_refused(&state, tenant, &[("x-hub-signature-256", &signed)]).await;
        assert_refused(&state, tenant, &[("authorization", "Bearer shop-token")]).await;
    }
    assert_eq!(lookups(&state), 4);
    // Not a tenant name at all: refused without asking the API server.
    assert_refused(&state, "Shop_1", &[("x-hub-signature-256", &signed)]).await;
    assert_refused(&state, "a%0Ab", &[("x-hub-signature-256", &signed)]).await;
    assert_eq!(lookups(&state), 4);
}

#[tokio::test]
async fn ping_is_answered_without_trigger() {
    let state = state();
    let signed = signature(TOKEN, BODY);
    let reply = post(
        &state,
        "shop",
        &[("x-hub-signature-256", &signed), ("x-github-event", "ping")],
        BODY,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(triggers(&state).is_empty());
    assert_eq!(count(&state, Outcome::Ping), 1);
    let forged = signature(b"guess", BODY);
    assert_refused(
        &state,
        "shop",
        &[("x-hub-signature-256", &forged), ("x-github-event", "ping")],
    )
    .await;
}

#[tokio::test]
async fn global_limit_comes_before_any_lookup() {
    let limits = Limits {
        global: quota_per_hour(2),
        ..Limits::default()
    };
    let state = state_with(Memory::new(), limits);
    assert_eq!(
        post_signed(&state, "shop", BODY).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post(&state, "ghost", &[], BODY).await.status,
        StatusCode::UNAUTHORIZED
    );
    let reply = post_signed(&state, "shop", BODY).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&reply) >= 1);
    assert_eq!(lookups(&state), 2);
    assert_eq!(triggers(&state), ["shop"]);
    assert_eq!(count(&state, Outcome::RateLimited), 1);
}

#[tokio::test]
async fn tenant_limit_applies_per_tenant() {
    let limits = Limits {
        per_tenant: quota_per_hour(1),
        ..Limits::default()
    };
    let state = state_with(Memory::new(), limits);
    assert_eq!(
        post_signed(&state, "shop", BODY).await.status,
        StatusCode::ACCEPTED
    );
    let reply = post_signed(&state, "shop", BODY).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&reply) > 60, "{:?}", reply.headers);
    let other = post(
        &state,
        "other",
        &[("authorization", "Bearer other-token")],
        BODY,
    )
    .await;
    assert_eq!(other.status, StatusCode::ACCEPTED);
    assert_eq!(triggers(&state), ["shop", "other"]);
}

#[tokio::test]
async fn forged_flood_leaves_the_tenant_budget_alone() {
    let limits = Limits {
        per_tenant: quota_per_hour(1),
        global: Quota::per_second(NonZeroU32::new(1000).unwrap()),
    };
    let state = state_with(Memory::new(), limits);
    let forged = signature(b"guess", BODY);
    for _ in 0..20 {
        let reply = post(&state, "shop", &[("x-hub-signature-256", &forged)], BODY).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        post_signed(&state, "shop", BODY).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(triggers(&state), ["shop"]);
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let state = state();
    let big = vec![b' '; MAX_BODY + 1];
    let reply = post_signed(&state, "shop", &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(triggers(&state).is_empty());
    assert_eq!(lookups(&state), 0);
    assert_eq!(count(&state, Outcome::TooLarge), 1);
    let reply = post_signed(&state, "shop", &big[..MAX_BODY]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn api_failures_are_unavailable() {
    let failing_trigger = state_with(
        Memory {
            fail_trigger: true,
            ..Memory::new()
        },
        Limits::default(),
    );
    let reply = post_signed(&failing_trigger, "shop", BODY).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(count(&failing_trigger, Outcome::Error), 1);
    let failing_lookup = state_with(
        Memory {
            fail_lookup: true,
            ..Memory::new()
        },
        Limits::default(),
    );
    let reply = post_signed(&failing_lookup, "shop", BODY).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn other_methods_and_paths_are_not_routed() {
    let state = state();
    let get = Request::get("/hooks/shop").body(Body::empty()).unwrap();
    let reply = router(state.clone()).oneshot(get).await.unwrap();
    assert_eq!(reply.status(), StatusCode::METHOD_NOT_ALLOWED);
    let root = Request::post("/hooks").body(Body::empty()).unwrap();
    let reply = router(state.clone()).oneshot(root).await.unwrap();
    assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    assert_eq!(lookups(&state), 0);
}

#[tokio::test]
async fn serve_stops_on_shutdown() {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    serve(addr, state(), async {}).await.unwrap();
}

#[tokio::test]
async fn serve_reports_a_taken_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = serve(addr, state(), async {}).await.unwrap_err();
    assert!(matches!(error, WebhookError::Serve { .. }), "{error}");
}

#[tokio::test]
async fn uppercase_signature_hex_is_refused_like_any_bad_signature() {
    let state = state();
    let lower = signature(TOKEN, BODY);
    let upper = format!("sha256={}", lower["sha256=".len()..].to_ascii_uppercase());
    assert_refused(&state, "shop", &[("x-hub-signature-256", &upper)]).await;
    assert_eq!(count(&state, Outcome::Unauthorized), 1);
    assert_eq!(
        post_signed(&state, "shop", BODY).await.status,
        StatusCode::ACCEPTED
    );
}

// The receiver behind a real listener on loopback, with raw sockets as the clients.

mod listener {
    use std::time::{Duration, Instant};

    use berth_engine::http_server;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// The receiver's limits with short deadlines and `max_connections`.
    fn limits(max_connections: u32) -> http_server::Limits {
        http_server::Limits {
            header_read_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(500),
            ..http_server::Limits::new(max_connections)
        }
    }

    async fn listen(state: &Shared, limits: http_server::Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_on(
            listener,
            state.clone(),
            limits,
            std::future::pending(),
        ));
        addr
    }

    fn signed_request(body: &[u8]) -> Vec<u8> {
        let mut request = format!(
            "POST /hooks/shop HTTP/1.1\r\nHost: berth\r\nX-Hub-Signature-256: {}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            signature(TOKEN, body),
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    }

    /// What the server sent until it closed the connection; `None` if it kept it open for 5 s.
    async fn until_closed(stream: &mut TcpStream) -> Option<String> {
        let mut seen = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut seen));
        match read.await {
            Ok(_) => Some(String::from_utf8_lossy(&seen).into_owned()),
            Err(_) => None,
        }
    }

    #[tokio::test]
    async fn a_signed_request_over_a_socket_is_accepted() {
        let state = state();
        let addr = listen(&state, limits(4)).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&signed_request(BODY)).await.unwrap();
        let answer = until_closed(&mut stream).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        assert!(answer.ends_with("sync requested"), "{answer}");
        assert_eq!(triggers(&state), ["shop"]);
    }

    #[tokio::test]
    async fn half_a_request_is_disconnected_after_the_header_timeout() {
        let state = state();
        let addr = listen(&state, limits(4)).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        stream
            .write_all(b"POST /hooks/shop HTTP/1.1\r\nHost: berth\r\nX-Hub-Sig")
            .await
            .unwrap();
        let answer = until_closed(&mut stream).await;
        let took = started.elapsed();
        assert_eq!(answer.as_deref(), Some(""), "closed without an answer");
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(lookups(&state), 0);
    }

    #[tokio::test]
    async fn an_idle_connection_over_the_cap_is_closed_and_the_others_still_served() {
        let state = state();
        let addr = listen(&state, http_server::Limits::new(3)).await;
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        assert_eq!(until_closed(&mut extra).await.as_deref(), Some(""));
        assert!(started.elapsed() < Duration::from_secs(1));
        for stream in &mut idle {
            stream.write_all(&signed_request(BODY)).await.unwrap();
            let answer = until_closed(stream).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        }
        assert_eq!(triggers(&state), ["shop", "shop", "shop"]);
    }

    #[tokio::test]
    async fn a_trickling_body_is_cut_off() {
        let state = state();
        let addr = listen(&state, limits(4)).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let started = Instant::now();
        let head = format!(
            "POST /hooks/shop HTTP/1.1\r\nHost: berth\r\nX-Hub-Signature-256: {}\r\n\
             Content-Length: {}\r\n\r\n",
            signature(TOKEN, BODY),
            BODY.len()
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        let trickle = tokio::spawn(async move {
            for byte in BODY {
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let mut seen = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut seen));
        let closed = read.await.is_ok();
        trickle.abort();
        let answer = String::from_utf8_lossy(&seen);
        assert!(closed, "still open after 5 s: {answer}");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(triggers(&state).is_empty());
    }

    #[tokio::test]
    async fn an_announced_oversized_body_gets_413_before_it_is_sent() {
        let state = state();
        // The receiver's own deadlines: without the check it would wait 10 s for the body.
        let addr = listen(&state, SERVER_LIMITS).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        stream
            .write_all(
                b"POST /hooks/shop HTTP/1.1\r\nHost: berth\r\n\
                  X-Hub-Signature-256: sha256=00\r\nContent-Length: 10485760\r\n\r\n",
            )
            .await
            .unwrap();
        let answer = until_closed(&mut stream).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not at once: {:?}",
            started.elapsed()
        );
        assert_eq!(count(&state, Outcome::TooLarge), 1);
        assert_eq!(lookups(&state), 0);
    }

    #[tokio::test]
    async fn a_chunked_body_growing_past_the_limit_gets_413() {
        let state = state();
        let addr = listen(
            &state,
            http_server::Limits {
                request_timeout: Duration::from_secs(10),
                ..limits(4)
            },
        )
        .await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST /hooks/shop HTTP/1.1\r\nHost: berth\r\nX-Hub-Signature-256: {}\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
            signature(TOKEN, BODY)
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b' '; 64 * 1024];
        let sender = tokio::spawn(async move {
            // 1 MiB + 64 KiB in all, then the last chunk.
            for _ in 0..(MAX_BODY / chunk.len() + 1) {
                let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
                frame.extend_from_slice(&chunk);
                frame.extend_from_slice(b"\r\n");
                if writer.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = writer.write_all(b"0\r\n\r\n").await;
        });
        let mut seen = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut seen));
        let _ = read.await;
        sender.abort();
        let answer = String::from_utf8_lossy(&seen);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert_eq!(count(&state, Outcome::TooLarge), 1);
        assert!(triggers(&state).is_empty());
    }
}
