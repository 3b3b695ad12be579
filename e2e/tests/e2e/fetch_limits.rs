//! What a fetch may cost and what it may show, with the real agent against the control plane
//! and a real HTTPS Git server: a 300 MiB blob on a branch nobody follows is never
//! downloaded; on the followed branch it is refused with a named limit while the agent's
//! memory stays bounded and the last good revision stays applied; secrets planted in URLs show
//! up nowhere (agent output, TenantSync, Events, PolicyReports).

use std::process::Output;

use berth_e2e::blob::{Content, commit_large_file, dir_size};
use berth_e2e::{HttpsGitServer, TestRepo, TestTenant, in_namespace, peak_rss_kib};
use berth_engine::api::{SyncResult, TenantSync, TenantSyncStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::{Api, Client};

const MIB: u64 = 1024 * 1024;
const USERNAME: &str = "git";
const PASSWORD: &str = "e2e-limits-Pa55-9c1d";

/// `berth-agent run --once` for the tenant, logging JSON (so [`pack_bytes`] can read it).
fn run_once(agent: &TestTenant, url: &str, extra: &[&str]) -> Output {
    agent.run_once(url, &[&["--log-format", "json"][..], extra].concat())
}

async fn status(client: &Client, home: &str) -> TenantSyncStatus {
    Api::<TenantSync>::namespaced(client.clone(), home)
        .get("berth")
        .await
        .expect("TenantSync berth")
        .status
        .unwrap_or_default()
}

/// Everything the agent wrote that a person reads: its TenantSync, the Events and the
/// PolicyReports of its home namespace, as JSON.
async fn records(client: &Client, home: &str) -> String {
    let sync = Api::<TenantSync>::namespaced(client.clone(), home)
        .get_opt("berth")
        .await
        .expect("TenantSync");
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), home)
        .list(&ListParams::default())
        .await
        .expect("Events");
    let reports = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        home,
        &berth_engine::report::resource(),
    )
    .list(&ListParams::default())
    .await
    .expect("PolicyReports");
    assert!(!events.items.is_empty(), "the agent recorded Events");
    serde_json::json!({ "sync": sync, "events": events.items, "reports": reports.items })
        .to_string()
}

/// Deletes the agent's namespace (the test namespace is deleted by `in_namespace`).
async fn remove(client: &Client, home: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(home, &DeleteParams::default())
        .await;
}

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

/// The `pack_bytes` of the agent's "fetched" log line, if it fetched anything.
fn pack_bytes(out: &Output) -> Option<u64> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = v.get("fields")?;
            (fields.get("message")? == "fetched").then(|| fields.get("pack_bytes")?.as_u64())?
        })
}

fn password_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("password file");
    std::fs::write(file.path(), format!("{PASSWORD}\n")).expect("writing the password");
    file
}

#[tokio::test]
async fn a_huge_blob_is_never_fetched_unless_followed_and_then_refused_in_bounded_memory() {
    in_namespace("fetch-limits", |cp, admin, ns| async move {
        let agent = TestTenant::provision(cp, &admin, "team-fetch-limits", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("config.yaml", config_map("good"));
        let good = repo.commit("good");
        // 300 MiB that does not compress, on a branch the agent does not follow.
        commit_large_file(
            &repo.bare(),
            "big",
            Some("refs/heads/main"),
            &[("config.yaml", &config_map("big"))],
            ("big.bin", 300 * MIB, Content::Random),
        );
        let server =
            HttpsGitServer::start(repo.bare().parent().expect("parent"), USERNAME, PASSWORD);
        let url = server.url("repo.git");
        let ca = server.ca_pem_path();
        let password = password_file();
        let auth = [
            "--ca-file",
            ca.to_str().expect("UTF-8"),
            "--username",
            USERNAME,
            "--password-file",
            password.path().to_str().expect("UTF-8"),
            // git-upload-pack takes a while to start sending 300 MiB that does not compress
            // on a loaded machine; the limit under test is the pack's size, not the timeout.
            "--git-timeout",
            "180s",
        ];

        // (a) The followed branch applies; the blob next to it is never downloaded.
        let out = run_once(&agent, &url, &auth);
        assert_eq!(out.status.code(), Some(0));
        let received = pack_bytes(&out).expect("the agent logs what it fetched");
        let cache = dir_size(agent.cache_dir());
        let peak = peak_rss_kib(&out);
        eprintln!(
            "unfollowed branch: {received} bytes received, cache {cache} bytes, peak RSS {peak} KiB"
        );
        assert!(received < 64 * 1024, "{received} bytes received");
        assert!(cache < MIB, "cache of {cache} bytes");
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("good"));
        let s = status(&admin, &agent.home).await;
        assert_eq!(s.result, SyncResult::Applied);
        assert_eq!(s.last_applied_revision.as_deref(), Some(good.as_str()));

        // (b) Followed, the blob is refused while it arrives, by name; memory stays bounded
        // and the last good revision stays applied.
        let out = run_once(&agent, &url, &[&auth[..], &["--branch", "big"]].concat());
        assert_eq!(out.status.code(), Some(1));
        let peak = peak_rss_kib(&out);
        let cache = dir_size(agent.cache_dir());
        eprintln!("followed branch: peak RSS {peak} KiB, cache {cache} bytes");
        let s = status(&admin, &agent.home).await;
        assert_eq!(s.result, SyncResult::Failed);
        assert!(
            s.message.starts_with(&format!(
                "fetching {url}: the repository's pack exceeds 64 MiB (the fetch stopped after 64."
            )),
            "{}",
            s.message
        );
        assert!(peak < 192 * 1024, "peak RSS {peak} KiB");
        assert!(
            cache < MIB,
            "cache of {cache} bytes: the partial pack stayed"
        );
        assert_eq!(s.last_applied_revision.as_deref(), Some(good.as_str()));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("good"));
        let records = records(&admin, &agent.home).await;
        assert!(records.contains("the repository's pack exceeds 64 MiB"));

        // The same agent goes on with the branch it follows.
        repo.write("config.yaml", config_map("after"));
        let after = repo.commit("after");
        let out = run_once(&agent, &url, &auth);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("after"));
        let s = status(&admin, &agent.home).await;
        assert_eq!(s.last_applied_revision.as_deref(), Some(after.as_str()));
        remove(&admin, &agent.home).await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn secrets_planted_in_urls_show_up_nowhere() {
    in_namespace("url-secrets", |cp, admin, ns| async move {
        let agent = TestTenant::provision(cp, &admin, "team-url-secrets", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("config.yaml", config_map("good"));
        let good = repo.commit("good");
        let server =
            HttpsGitServer::start(repo.bare().parent().expect("parent"), USERNAME, PASSWORD);
        let url = server.url("repo.git");
        let authority = url
            .strip_prefix("https://")
            .and_then(|r| r.split_once('/'))
            .map(|(a, _)| a)
            .expect("authority");
        let ca = server.ca_pem_path();
        let password = password_file();
        let auth = [
            "--ca-file",
            ca.to_str().expect("UTF-8"),
            "--username",
            USERNAME,
            "--password-file",
            password.path().to_str().expect("UTF-8"),
        ];
        let out = run_once(&agent, &url, &auth);
        assert_eq!(out.status.code(), Some(0));

        let keys = tempfile::tempdir()?;
        let (key, known_hosts) = (keys.path().join("key"), keys.path().join("known_hosts"));
        std::fs::write(&key, "not a key")?;
        std::fs::write(&known_hosts, "")?;
        let ssh = [
            "--ssh-key",
            key.to_str().expect("UTF-8"),
            "--known-hosts",
            known_hosts.to_str().expect("UTF-8"),
        ];
        let hostile: Vec<(String, &str, &[&str])> = vec![
            (format!("{url}?access_token=SECRET123"), "SECRET123", &auth),
            (
                format!("{url}?private_token=SECRET234&x=1"),
                "SECRET234",
                &auth,
            ),
            (
                format!("https://user:SECRET345@{authority}/repo.git"),
                "SECRET345",
                &auth,
            ),
            (
                format!("https://SECRET456@{authority}/repo.git"),
                "SECRET456",
                &auth,
            ),
            ("u:SECRET567@127.0.0.1:repo.git".into(), "SECRET567", &ssh),
            ("u:SECRET678@127.0.0.1/repo.git".into(), "SECRET678", &ssh),
            (
                "ssh://git:SECRET789@127.0.0.1:9/repo.git".into(),
                "SECRET789",
                &ssh,
            ),
            // Accepted, but its user is never shown: the fetch fails and says where, redacted.
            (
                "ssh://SECRET890@127.0.0.1:9/srv/repo.git".into(),
                "SECRET890",
                &ssh,
            ),
        ];
        let mut secrets = vec![PASSWORD];
        for (hostile_url, secret, args) in &hostile {
            secrets.push(secret);
            let out = run_once(&agent, hostile_url, args);
            assert_eq!(out.status.code(), Some(1), "{hostile_url}");
            for (what, text) in [("stderr", &out.stderr), ("stdout", &out.stdout)] {
                let text = String::from_utf8_lossy(text);
                assert!(
                    !text.contains(secret),
                    "{secret} in the agent's {what}: {text}"
                );
            }
        }
        // The accepted one failed at the fetch, which the status says with the user hidden.
        let s = status(&admin, &agent.home).await;
        assert_eq!(s.result, SyncResult::Failed);
        assert!(
            s.message
                .starts_with("fetching ssh://***@127.0.0.1:9/srv/repo.git: "),
            "{}",
            s.message
        );
        assert_eq!(s.last_applied_revision.as_deref(), Some(good.as_str()));
        assert_eq!(settings(&admin, &ns.name).await.as_deref(), Some("good"));

        let records = records(&admin, &agent.home).await;
        assert!(records.contains("fetching ssh://***@127.0.0.1:9/srv/repo.git"));
        for secret in &secrets {
            assert!(
                !records.contains(secret),
                "{secret} in the TenantSync, Events or PolicyReports"
            );
        }
        remove(&admin, &agent.home).await;
        Ok(())
    })
    .await;
}
