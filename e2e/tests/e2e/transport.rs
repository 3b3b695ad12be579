//! The tenant agent fetching from real Git servers on loopback: smart HTTP behind TLS with a
//! custom CA and basic auth, and SSH with a key and strict host key checking. Wrong
//! credentials, an untrusted certificate or an unknown host key change nothing, and the
//! password shows up nowhere.

use std::path::Path;

use berth_e2e::{HttpsGitServer, SshGitServer, TestRepo, TestTenant, in_namespace};
use berth_engine::api::{SyncResult, TenantSync, TenantSyncStatus};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};

const USERNAME: &str = "git";
const PASSWORD: &str = "e2e-Pa55w0rd-7f3a91";
const WRONG_PASSWORD: &str = "e2e-Wr0ng-c2d4e8";

fn config_map(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  key: {value}\n")
}

async fn settings(client: &Client, ns: &str) -> Option<String> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt("settings")
        .await
        .expect("get ConfigMap")
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("key").cloned())
}

async fn sync(client: &Client, ns: &str) -> TenantSync {
    Api::<TenantSync>::namespaced(client.clone(), ns)
        .get("berth")
        .await
        .expect("TenantSync berth")
}

async fn status(client: &Client, ns: &str) -> TenantSyncStatus {
    sync(client, ns).await.status.unwrap_or_default()
}

/// Fails if a secret appears in the agent's output or anywhere in the TenantSync.
async fn assert_not_leaked(out: &std::process::Output, client: &Client, ns: &str) {
    let sync = serde_json::to_string(&sync(client, ns).await).expect("TenantSync as JSON");
    for secret in [PASSWORD, WRONG_PASSWORD] {
        for (what, text) in [
            ("stderr", String::from_utf8_lossy(&out.stderr)),
            ("stdout", String::from_utf8_lossy(&out.stdout)),
            ("TenantSync", sync.as_str().into()),
        ] {
            assert!(
                !text.contains(secret),
                "the password leaked into the agent's {what}"
            );
        }
    }
}

fn password_file(password: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("password file");
    std::fs::write(file.path(), format!("{password}\n")).expect("writing the password");
    file
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[tokio::test]
async fn https_with_a_custom_ca_and_basic_auth_applies_and_fetches_incrementally() {
    in_namespace("transport-https", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-https", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("config.yaml", config_map("v1"));
        let first = repo.commit("first");
        let bare = repo.bare();
        let server = HttpsGitServer::start(bare.parent().expect("parent"), USERNAME, PASSWORD);
        let url = server.url("repo.git");
        let ca = server.ca_pem_path();
        let password = password_file(PASSWORD);
        let args = [
            "--ca-file",
            arg(&ca),
            "--username",
            USERNAME,
            "--password-file",
            arg(password.path()),
        ];

        let out = tenant.run_once(&url, &args);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("v1"));
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.result, SyncResult::Applied);
        assert_eq!(s.last_applied_revision.as_deref(), Some(first.as_str()));
        assert_not_leaked(&out, &admin, &tenant.home).await;
        // The credentials were asked for by the server, not sent unasked.
        let requests = server.requests();
        assert_eq!(requests.first().map(|r| r.status), Some(401));
        assert!(requests.iter().any(|r| r.status == 200));

        repo.write("config.yaml", config_map("v2"));
        let second = repo.commit("second");
        let before = server.requests().len();
        let out = tenant.run_once(&url, &args);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("v2"));
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.last_applied_revision.as_deref(), Some(second.as_str()));
        // Incremental: the cache told the server it already has the first commit, and only the
        // second was wanted.
        let negotiation: Vec<u8> = server.requests()[before..]
            .iter()
            .filter(|r| r.method == "POST")
            .flat_map(|r| r.body.clone())
            .collect();
        let negotiation = String::from_utf8_lossy(&negotiation);
        assert!(
            negotiation.contains(&format!("have {first}")),
            "{negotiation}"
        );
        assert!(
            negotiation.contains(&format!("want {second}")),
            "{negotiation}"
        );
        assert!(
            !negotiation.contains(&format!("want {first}")),
            "{negotiation}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn https_with_a_wrong_password_or_an_untrusted_ca_changes_nothing() {
    in_namespace("transport-https-refused", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-https-refused", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("config.yaml", config_map("good"));
        let good = repo.commit("good");
        let bare = repo.bare();
        let server = HttpsGitServer::start(bare.parent().expect("parent"), USERNAME, PASSWORD);
        let url = server.url("repo.git");
        let ca = server.ca_pem_path();
        let password = password_file(PASSWORD);
        let wrong = password_file(WRONG_PASSWORD);
        let out = tenant.run_once(
            &url,
            &[
                "--ca-file",
                arg(&ca),
                "--username",
                USERNAME,
                "--password-file",
                arg(password.path()),
            ],
        );
        assert_eq!(out.status.code(), Some(0));
        repo.write("config.yaml", config_map("changed"));
        repo.commit("changed");

        let out = tenant.run_once(
            &url,
            &[
                "--ca-file",
                arg(&ca),
                "--username",
                USERNAME,
                "--password-file",
                arg(wrong.path()),
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.result, SyncResult::Failed);
        assert!(
            s.message.starts_with(&format!("fetching {url}")),
            "{}",
            s.message
        );
        assert!(
            s.message.contains("were not accepted by the remote")
                && s.message.contains("HTTP status 401"),
            "{}",
            s.message
        );
        assert_eq!(s.last_applied_revision.as_deref(), Some(good.as_str()));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("good"));
        assert_not_leaked(&out, &admin, &tenant.home).await;

        // Without --ca-file only the system's roots are trusted, and the throwaway CA is not
        // among them: the TLS handshake fails before any credential is sent.
        let requests_before = server.requests().len();
        let out = tenant.run_once(
            &url,
            &[
                "--username",
                USERNAME,
                "--password-file",
                arg(password.path()),
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.result, SyncResult::Failed);
        assert!(
            s.message
                .contains("invalid peer certificate: UnknownIssuer"),
            "{}",
            s.message
        );
        assert_eq!(s.last_applied_revision.as_deref(), Some(good.as_str()));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("good"));
        assert_eq!(
            server.requests().len(),
            requests_before,
            "no request got through"
        );
        assert_not_leaked(&out, &admin, &tenant.home).await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn ssh_with_a_key_and_known_hosts_applies_and_never_trusts_an_unknown_host_key() {
    in_namespace("transport-ssh", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-ssh", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("config.yaml", config_map("v1"));
        let first = repo.commit("first");
        let bare = repo.bare();
        let server = SshGitServer::start(bare.parent().expect("parent"));
        let url = server.url("repo.git");
        let key = server.client_key_path();
        let known_hosts = server.known_hosts_path();
        let wrong_known_hosts = server.wrong_known_hosts_path();
        let wrong_before = std::fs::read(&wrong_known_hosts)?;
        let good_args = ["--ssh-key", arg(&key), "--known-hosts", arg(&known_hosts)];
        let wrong_args = [
            "--ssh-key",
            arg(&key),
            "--known-hosts",
            arg(&wrong_known_hosts),
        ];

        // A host key that does not match is refused before anything is fetched.
        let out = tenant.run_once(&url, &wrong_args);
        assert_eq!(out.status.code(), Some(1));
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.result, SyncResult::Failed);
        assert!(
            // The user is never shown.
            s.message.starts_with(&format!(
                "fetching ssh://***@{}",
                url.split_once('@')
                    .map(|(_, rest)| rest)
                    .unwrap_or_default()
            )) && s
                .message
                .contains("has changed and you have requested strict checking")
                && s.message.ends_with("Host key verification failed.)"),
            "{}",
            s.message
        );
        assert_eq!(settings(&admin, &ns.name).await, None);
        assert_eq!(
            std::fs::read(&wrong_known_hosts)?,
            wrong_before,
            "known_hosts rewritten"
        );

        let out = tenant.run_once(&url, &good_args);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("v1"));
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.result, SyncResult::Applied);
        assert_eq!(s.last_applied_revision.as_deref(), Some(first.as_str()));

        repo.write("config.yaml", config_map("v2"));
        let second = repo.commit("second");
        // Once trusted is not always trusted: the wrong key is refused on a later fetch too.
        let out = tenant.run_once(&url, &wrong_args);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("v1"));
        let out = tenant.run_once(&url, &good_args);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("v2"));
        let s = status(&admin, &tenant.home).await;
        assert_eq!(s.last_applied_revision.as_deref(), Some(second.as_str()));
        Ok(())
    })
    .await;
}
