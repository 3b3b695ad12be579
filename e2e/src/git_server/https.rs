//! The smart-HTTP Git server: TLS from a throwaway CA, HTTP basic auth, and the real
//! `git http-backend` run as CGI for each request; on its own thread and tokio runtime so it
//! outlives any one test runtime, stopped on drop.

use std::convert::Infallible;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use super::cgi::{self, CgiRequest};
use super::tls::Pki;

/// One request the server answered, for tests that look at the conversation (e.g. that a
/// second fetch only negotiated what it lacked).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub status: u16,
    /// The request's Content-Encoding, if it had one.
    pub content_encoding: Option<String>,
    /// The request body after its Content-Encoding was undone.
    pub body: Vec<u8>,
}

/// A loopback HTTPS Git server for the bare repositories under one directory.
pub struct HttpsGitServer {
    addr: SocketAddr,
    tls_dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<RecordedRequest>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Backend {
    root: PathBuf,
    username: String,
    /// The exact `Authorization` header value that is accepted.
    authorization: String,
    log: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl HttpsGitServer {
    /// Serves the bare repositories under `repo_root` to clients presenting `username` and
    /// `password` by basic auth, on a free 127.0.0.1 port.
    pub fn start(repo_root: &Path, username: &str, password: &str) -> Self {
        let pki = Pki::generate();
        let tls_dir = tempfile::Builder::new()
            .prefix("berth-https-git-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(tls_dir.path().join("ca.pem"), &pki.ca_pem).expect("writing the CA");

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let backend = Arc::new(Backend {
            root: repo_root.to_path_buf(),
            username: username.to_owned(),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            ),
            log: log.clone(),
        });
        let acceptor = TlsAcceptor::from(pki.server);
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("https-git-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                runtime.block_on(serve(listener, acceptor, backend, stopped));
                // Dropping the runtime here cancels open connections and kills their CGIs.
            })
            .expect("starting the server thread");
        Self {
            addr,
            tls_dir,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:PORT/NAME` for the repository directory `name` under the root
    /// (e.g. `repo.git`).
    pub fn url(&self, name: &str) -> String {
        format!("https://{}/{name}", self.addr)
    }

    /// The CA that signed the server's certificate, as a PEM file.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.tls_dir.path().join("ca.pem")
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.lock().expect("request log").clone()
    }
}

impl Drop for HttpsGitServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
            && !std::thread::panicking()
        {
            panic!("the HTTPS Git server thread panicked");
        }
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    backend: Arc<Backend>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("https git server: accept: {e}");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let backend = backend.clone();
        tokio::spawn(async move {
            // A client that rejects the certificate ends here; that is the point of some tests.
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |request| handle(backend.clone(), request));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
                && !e.is_incomplete_message()
            {
                eprintln!("https git server: connection: {e}");
            }
        });
    }
}

async fn handle(
    backend: Arc<Backend>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().as_str().to_owned();
    let target = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let content_encoding = request
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (response, body) = respond(&backend, request).await;
    backend
        .log
        .lock()
        .expect("request log")
        .push(RecordedRequest {
            method,
            target,
            status: response.status().as_u16(),
            content_encoding,
            body,
        });
    Ok(response)
}

/// The response, and the decoded request body for the log.
async fn respond(
    backend: &Backend,
    request: Request<Incoming>,
) -> (Response<Full<Bytes>>, Vec<u8>) {
    let authorized = request
        .headers()
        .get(AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == backend.authorization.as_bytes());
    if !authorized {
        let mut response = plain(StatusCode::UNAUTHORIZED, "authentication required\n");
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"berth-e2e\""),
        );
        return (response, Vec::new());
    }
    let (parts, body) = request.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let raw = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return (
                plain(StatusCode::BAD_REQUEST, &format!("reading body: {e}\n")),
                Vec::new(),
            );
        }
    };
    let body = match decode_body(header(CONTENT_ENCODING.as_str()), &raw) {
        Ok(body) => body,
        Err(e) => {
            return (
                plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, &format!("{e}\n")),
                Vec::new(),
            );
        }
    };
    let cgi_request = CgiRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        content_type: header(CONTENT_TYPE.as_str()),
        git_protocol: header("git-protocol"),
        remote_user: &backend.username,
        body: body.clone(),
    };
    let response = match cgi::http_backend(&backend.root, cgi_request).await {
        Ok(cgi) => {
            let mut builder = Response::builder().status(cgi.status);
            for (name, value) in &cgi.headers {
                builder = builder.header(name, value);
            }
            builder
                .body(Full::new(Bytes::from(cgi.body)))
                .unwrap_or_else(|e| plain(StatusCode::BAD_GATEWAY, &format!("CGI response: {e}\n")))
        }
        Err(e) => {
            eprintln!("https git server: {e}");
            plain(StatusCode::BAD_GATEWAY, &format!("{e}\n"))
        }
    };
    (response, body)
}

/// Undoes the request's Content-Encoding: git compresses large negotiation requests with gzip
/// (gix does not), and the CGI expects the plain body.
fn decode_body(encoding: Option<&str>, raw: &[u8]) -> Result<Vec<u8>, String> {
    match encoding.map(str::trim) {
        None | Some("") | Some("identity") => Ok(raw.to_vec()),
        Some(gzip) if gzip.eq_ignore_ascii_case("gzip") || gzip.eq_ignore_ascii_case("x-gzip") => {
            let mut body = Vec::new();
            flate2::read::GzDecoder::new(raw)
                .read_to_end(&mut body)
                .map_err(|e| format!("gzip request body: {e}"))?;
            Ok(body)
        }
        Some(other) => Err(format!("unsupported Content-Encoding `{other}`")),
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn gzip_bodies_are_decoded_and_plain_ones_kept() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"0032want 1234\n0000").unwrap();
        let gzipped = encoder.finish().unwrap();
        assert_eq!(
            decode_body(Some("gzip"), &gzipped).unwrap(),
            b"0032want 1234\n0000"
        );
        assert_eq!(decode_body(None, b"plain").unwrap(), b"plain");
        assert_eq!(decode_body(Some("identity"), b"plain").unwrap(), b"plain");
        assert!(decode_body(Some("gzip"), b"not gzip").is_err());
        assert!(decode_body(Some("br"), b"x").is_err());
    }
}
