//! The servers against the stock `git` and `ssh` clients, without a cluster: they serve what
//! was pushed, refuse what they should, and leave nothing running once dropped.

use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Output};

use super::{HttpsGitServer, SshGitServer};
use crate::TestRepo;

fn git(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new("git")
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn pushed_repo() -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write("a.txt", "a");
    let head = repo.commit("first");
    (repo, head)
}

fn remote_head(url: &str, envs: &[(&str, &str)]) -> Output {
    git(&["ls-remote", url, "refs/heads/main"], envs)
}

#[test]
fn https_serves_with_the_ca_and_password_only() {
    let (repo, head) = pushed_repo();
    let server = HttpsGitServer::start(repo.bare().parent().unwrap(), "git", "pa55word");
    // This git (libcurl-gnutls) takes the CA from the environment, not from `-c http.sslCAInfo`.
    let ca_path = server.ca_pem_path();
    let ca = [("GIT_SSL_CAINFO", ca_path.to_str().unwrap())];
    let url = server.url("repo.git");
    let with_password = url.replace("https://", "https://git:pa55word@");

    let out = remote_head(&with_password, &ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&head));
    // A full clone exercises the POST to git-upload-pack, not just the ref advertisement.
    let clone = tempfile::tempdir().unwrap();
    let dest = clone.path().join("c");
    let out = git(
        &["clone", "--quiet", &with_password, dest.to_str().unwrap()],
        &ca,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(dest.join("a.txt")).unwrap(), "a");

    let wrong = url.replace("https://", "https://git:nope@");
    assert!(!remote_head(&wrong, &ca).status.success());
    assert!(!remote_head(&url, &ca).status.success());
    // Without the CA the certificate is not trusted.
    let out = remote_head(&with_password, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"));

    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert!(
        statuses.contains(&401) && statuses.contains(&200),
        "{statuses:?}"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.target == "/repo.git/git-upload-pack")
    );

    // Dropping stops the server and joins its thread (whether the port is free afterwards
    // is racy to check: parallel tests may be handed the same port at once).
    drop(server);
}

#[test]
fn https_accepts_gzip_request_bodies() {
    let (repo, _) = pushed_repo();
    // Enough distinct branch tips that git's negotiation request passes the size above which
    // git gzips it.
    let bare = repo.bare();
    let bare = bare.to_str().unwrap();
    for i in 0..60 {
        let out = git(
            &[
                "-C",
                bare,
                "commit-tree",
                "-p",
                "main",
                "-m",
                &format!("tip {i}"),
                "main^{tree}",
            ],
            &[
                ("GIT_AUTHOR_NAME", "T"),
                ("GIT_AUTHOR_EMAIL", "t@example.com"),
                ("GIT_COMMITTER_NAME", "T"),
                ("GIT_COMMITTER_EMAIL", "t@example.com"),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8(out.stdout).unwrap();
        let out = git(
            &[
                "-C",
                bare,
                "update-ref",
                &format!("refs/heads/b{i}"),
                id.trim(),
            ],
            &[],
        );
        assert!(out.status.success());
    }
    let server = HttpsGitServer::start(repo.bare().parent().unwrap(), "git", "pw");
    let ca_path = server.ca_pem_path();
    let url = server
        .url("repo.git")
        .replace("https://", "https://git:pw@");
    let clone = tempfile::tempdir().unwrap();
    let dest = clone.path().join("c");
    let out = git(
        &["clone", "--quiet", "--mirror", &url, dest.to_str().unwrap()],
        &[("GIT_SSL_CAINFO", ca_path.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gzipped: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.content_encoding.as_deref() == Some("gzip"))
        .collect();
    assert!(!gzipped.is_empty(), "git sent no gzip body");
    assert!(
        gzipped
            .iter()
            .all(|r| r.status == 200 && r.body.windows(5).any(|w| w == b"want "))
    );
}

#[test]
fn ssh_serves_with_the_key_and_host_key_only() {
    let (repo, head) = pushed_repo();
    let server = SshGitServer::start(repo.bare().parent().unwrap());
    let ssh = |known_hosts: &std::path::Path| {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null",
            server.client_key_path().display(),
            known_hosts.display()
        )
    };
    let url = server.url("repo.git");
    let good = ssh(&server.known_hosts_path());
    let out = remote_head(&url, &[("GIT_SSH_COMMAND", &good)]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&head));

    let wrong = ssh(&server.wrong_known_hosts_path());
    let out = remote_head(&url, &[("GIT_SSH_COMMAND", &wrong)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Host key verification failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let listener = server.sshd.id();
    let port = server.port;
    drop(server);
    assert!(
        !std::path::Path::new(&format!("/proc/{listener}")).exists(),
        "sshd still running"
    );
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "still listening"
    );
}
