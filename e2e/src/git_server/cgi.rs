//! The CGI side of the HTTPS Git server: one run of the real `git http-backend` per request,
//! with the CGI variables it reads, and its output split into status, headers and body.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// What `git http-backend` needs to know about one authenticated request.
pub struct CgiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub git_protocol: Option<&'a str>,
    pub remote_user: &'a str,
    /// Already decoded (no Content-Encoding): the CGI reads exactly CONTENT_LENGTH bytes.
    pub body: Vec<u8>,
}

/// A parsed CGI response.
#[derive(Debug, PartialEq, Eq)]
pub struct CgiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Runs `git http-backend` for `request` over the repositories under `root`.
pub async fn http_backend(root: &Path, request: CgiRequest<'_>) -> Result<CgiResponse, String> {
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // The served repositories alone decide; no user or system configuration leaks in.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("SERVER_SOFTWARE", "berth-e2e")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REMOTE_USER", request.remote_user)
        .env("REQUEST_METHOD", request.method)
        .env("PATH_INFO", request.path)
        .env("QUERY_STRING", request.query)
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A dropped request (client gone, server stopping) must not leave the CGI behind.
        .kill_on_drop(true);
    if let Some(content_type) = request.content_type {
        cmd.env("CONTENT_TYPE", content_type);
    }
    if let Some(protocol) = request.git_protocol {
        cmd.env("GIT_PROTOCOL", protocol);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting git http-backend: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("git http-backend has no stdin")?;
    let body = request.body;
    // Written while the output is read: a large request and a large response would otherwise
    // each wait for the other's pipe to drain.
    let write = async move {
        let result = stdin.write_all(&body).await;
        drop(stdin);
        result
    };
    let (written, output) = tokio::join!(write, child.wait_with_output());
    let output = output.map_err(|e| format!("running git http-backend: {e}"))?;
    if !output.status.success() && output.stdout.is_empty() {
        return Err(format!(
            "git http-backend failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // The backend may answer (e.g. 403) without reading the whole request.
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(format!("writing the request to git http-backend: {e}"));
    }
    parse_response(&output.stdout)
}

/// Splits CGI output into its `Status:` (200 when absent), the other headers, and the body.
pub fn parse_response(output: &[u8]) -> Result<CgiResponse, String> {
    let mut status = 200;
    let mut headers = Vec::new();
    let mut rest = output;
    loop {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("CGI output ends inside its headers")?;
        let line = &rest[..end];
        rest = &rest[end + 1..];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let line = std::str::from_utf8(line).map_err(|_| "CGI header is not UTF-8")?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed CGI header `{line}`"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| format!("malformed CGI status `{value}`"))?;
        } else {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    Ok(CgiResponse {
        status,
        headers,
        body: rest.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_headers_and_body() {
        let parsed = parse_response(
            b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: never\r\n\r\nno\r\n",
        )
        .unwrap();
        assert_eq!(
            parsed,
            CgiResponse {
                status: 404,
                headers: vec![
                    ("Content-Type".into(), "text/plain".into()),
                    ("Expires".into(), "never".into())
                ],
                body: b"no\r\n".to_vec(),
            }
        );
    }

    #[test]
    fn status_defaults_to_200_and_bare_newlines_are_accepted() {
        let parsed = parse_response(b"Content-Type: application/x-git\n\n\x00\x01").unwrap();
        assert_eq!(parsed.status, 200);
        assert_eq!(parsed.body, b"\x00\x01");
    }

    #[test]
    fn truncated_or_malformed_headers_are_errors() {
        assert!(parse_response(b"Content-Type: x\r\n").is_err());
        assert!(parse_response(b"no colon here\r\n\r\n").is_err());
        assert!(parse_response(b"Status: abc\r\n\r\n").is_err());
    }
}
