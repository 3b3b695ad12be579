//! The limits against a real listener on loopback, with raw sockets as the slow clients.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
const GET_AND_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// `GET /` answers "ok"; `POST /echo` reads the body (at most 1 KiB) and answers its length;
/// `GET /slow` answers after 600 ms.
fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "slow"
            }),
        )
        .layer(DefaultBodyLimit::max(1024))
}

/// Short deadlines, so the tests take a second or two.
fn short(max_connections: u32) -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        ..Limits::new(max_connections)
    }
}

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, PlainTcp, router(), limits, async {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Everything until the server closes the connection (a reset counts as a close), or what
/// came within `within` if it does not.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&seen).into(), false),
        }
    }
}

/// One response on a kept-alive connection (bodies here are short and unchunked).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_client_stalling_in_its_headers_is_disconnected_after_the_header_timeout() {
    let server = start(short(8)).await;
    let started = Instant::now();
    let mut stalled = connect(server.addr).await;
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Le")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stalled, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(closed, "still open after 5 s");
    assert_eq!(answer, "", "closed without an answer");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout_new_or_kept_alive() {
    let server = start(short(8)).await;
    let started = Instant::now();
    let mut silent = connect(server.addr).await;
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed && started.elapsed() < Duration::from_secs(3));

    let mut kept = connect(server.addr).await;
    kept.write_all(GET).await.unwrap();
    assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let (_, closed) = read_until_closed(&mut kept, Duration::from_secs(5)).await;
    let idle = idle_from.elapsed();
    assert!(closed, "kept-alive connection never closed");
    assert!(
        idle >= Duration::from_millis(450) && idle < Duration::from_secs(3),
        "{idle:?}"
    );
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_the_others_still_served() {
    let server = start(Limits::new(3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(server.addr).await);
    }
    let mut extra = connect(server.addr).await;
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(closed && answer.is_empty(), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    for stream in &mut held {
        stream.write_all(GET).await.unwrap();
        let answer = read_response(stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
    }
    // A closed connection gives its slot back.
    drop(held.pop());
    let mut next = None;
    for _ in 0..50 {
        let mut stream = connect(server.addr).await;
        stream.write_all(GET_AND_CLOSE).await.unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        if answer.starts_with("HTTP/1.1 200") {
            next = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(next.is_some(), "the freed slot was never given out again");
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let server = start(Limits {
        max_connections_per_peer: 2,
        ..Limits::new(10)
    })
    .await;
    let _first = connect(server.addr).await;
    let _second = connect(server.addr).await;
    let mut third = connect(server.addr).await;
    let (_, closed) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(closed, "a third connection from 127.0.0.1 was kept");
    // Another address still gets in.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(server.addr).await.unwrap();
    other.write_all(GET_AND_CLOSE).await.unwrap();
    let (answer, _) = read_until_closed(&mut other, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn a_body_trickling_in_is_cut_off_with_408() {
    let server = start(short(8)).await;
    let mut stream = connect(server.addr).await;
    let started = Instant::now();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut seen)).await;
    trickle.abort();
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&seen);
    assert!(read.is_ok(), "still open after 5 s: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let server = start(short(8)).await;
    let mut stream = connect(server.addr).await;
    let filler = "a".repeat(20 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Filler: {filler}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn requests_in_flight_finish_on_shutdown_and_nothing_new_is_accepted() {
    let server = start(Limits::new(8)).await;
    let mut stream = connect(server.addr).await;
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.send(()).unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "kept open after shutdown");
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve returns once its connections are closed")
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn an_old_connection_is_closed_after_its_request_in_flight() {
    let server = start(Limits {
        max_connection_age: Duration::from_millis(300),
        ..Limits::new(8)
    })
    .await;
    let mut stream = connect(server.addr).await;
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.ends_with("slow"), "{answer}");
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(2)).await;
    assert!(closed, "an old connection was kept alive");
}

#[test]
fn declared_lengths_over_the_limit() {
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    };
    assert!(declares_more_than(&with("1025"), 1024));
    assert!(declares_more_than(&with("10485760"), 1024 * 1024));
    assert!(!declares_more_than(&with("1024"), 1024));
    assert!(!declares_more_than(&with("0"), 1024));
    assert!(!declares_more_than(&HeaderMap::new(), 1024));
}
