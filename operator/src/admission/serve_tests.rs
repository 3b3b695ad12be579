//! The admission listener on loopback: real TLS handshakes with the operator's own
//! certificates, raw sockets as the slow clients.

use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const NAME: &str = "berth-admission.berth-system.svc";

/// A webhook that knows no tenant: every review is refused as undecidable. Its client points
/// at nothing and is never used.
fn webhook() -> Arc<Webhook> {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    Arc::new(Webhook {
        client: Client::try_from(config).unwrap(),
        operator_namespace: "berth-system".into(),
        tenants: reflector::store::<Tenant>().0,
        config_maps: reflector::store::<ConfigMap>().0,
        policies: Policies::default(),
        metrics: Arc::new(OperatorMetrics::default()),
    })
}

struct Served {
    addr: SocketAddr,
    connector: tokio_rustls::TlsConnector,
}

/// The webhook on loopback with a 1 s handshake deadline.
async fn start() -> Served {
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let material = tls::Material::generate(&[NAME.to_owned()], now).unwrap();
    let cert = Arc::new(CurrentCert::new(material.certified_key().unwrap()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = http_server::Limits {
        handshake_timeout: Duration::from_secs(1),
        ..SERVER_LIMITS
    };
    tokio::spawn(serve_on(
        listener,
        cert,
        webhook(),
        limits,
        CancellationToken::new(),
    ));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(material.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Served {
        addr,
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
    }
}

async fn tls_connect(served: &Served) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = TcpStream::connect(served.addr).await.unwrap();
    let name = ServerName::try_from(NAME).unwrap();
    served.connector.connect(name, tcp).await.unwrap()
}

fn review() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": "c", "namespace": "team-a", "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_stalled_tls_handshake_holds_up_no_other_client_and_is_dropped() {
    let served = start().await;
    let started = Instant::now();
    // Half a ClientHello record header, then nothing.
    let mut stalled = TcpStream::connect(served.addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();

    let mut client = tls_connect(&served).await;
    let body = review();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {NAME}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    // Served while the stalled handshake still holds its connection.
    let mut probe = [0u8; 1];
    assert!(
        matches!(stalled.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the stalled handshake ended before the other client was served ({:?})",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""allowed":false"#), "{answer}");
    assert!(answer.contains("belongs to no tenant"), "{answer}");

    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
    let took = started.elapsed();
    assert!(read.is_ok(), "the stalled handshake was never dropped");
    assert!(rest.is_empty());
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn an_announced_oversized_review_gets_413_before_it_is_sent() {
    let served = start().await;
    let mut client = tls_connect(&served).await;
    let started = Instant::now();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {NAME}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    client.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer));
    // A TLS peer closing without close_notify is an error for rustls; the answer came first.
    let _ = read.await.expect("answered and closed within 5 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Not after waiting for the body (up to the 30 s request deadline).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
