//! `make up` end to end: the `up` binary starts its own control plane (tagged with a run id of
//! its own), Git server and operator, and prints its ready line once both sample tenants are
//! Ready; their applications are then in the cluster. SIGINT stops it with exit code 0 and
//! nothing it started left running.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_e2e::procfs::{self, ProcessInfo};
use berth_e2e::{BackgroundProcess, ControlPlane, binary};
use berth_engine::api::Tenant;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::ListParams;

const READY_TIMEOUT: Duration = Duration::from_secs(300);
const EXIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Processes (by command line) matching `pattern`, other than pgrep itself.
fn pgrep(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-af", "--", pattern])
        .output()
        .expect("pgrep (procps)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn make_up_runs_the_sample_tenants_and_stops_cleanly() {
    let state = tempfile::Builder::new()
        .prefix("berth-up-test-")
        .tempdir()
        .expect("state dir");
    let run_id = format!("up{}", std::process::id());
    let mut up = BackgroundProcess(
        Command::new(binary("up"))
            .arg("--state-dir")
            .arg(state.path())
            .env("BERTH_E2E_RUN_ID", &run_id)
            .env_remove("BERTH_E2E_KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting up"),
    );
    let stdout = up.0.stdout.take().expect("stdout");
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            eprintln!("up| {line}");
            if let Some(path) = line.strip_prefix("berth-up ready kubeconfig=") {
                let _ = ready_tx.send(PathBuf::from(path));
            }
        }
    });
    let kubeconfig = match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(path) => path,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("`up` printed no ready line within {READY_TIMEOUT:?} (its output is above)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
            "`up` exited ({:?}) before its ready line (its output is above)",
            up.0.try_wait()
        ),
    };
    assert!(kubeconfig.starts_with(state.path()), "{kubeconfig:?}");

    let cp = ControlPlane {
        kubeconfig,
        bin_dir: PathBuf::new(),
    };
    let client = cp.admin_client().await.expect("client for up's cluster");
    let tenants = Api::<Tenant>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("listing Tenants");
    for name in ["team-a", "team-b"] {
        let tenant = tenants
            .items
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("Tenant {name} exists"));
        let conditions = &tenant.status.as_ref().expect("status").conditions;
        let ready = conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.status, "True", "{name}: {conditions:?}");
        let compliant = conditions.iter().find(|c| c.type_ == "PolicyCompliant");
        assert_eq!(
            compliant.map(|c| c.status.as_str()),
            Some("True"),
            "{name}: {conditions:?}"
        );
    }
    let deployment = Api::<Deployment>::namespaced(client.clone(), "team-a")
        .get("podinfo")
        .await
        .expect("team-a's Deployment");
    let image = deployment
        .spec
        .template
        .spec
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone()));
    assert_eq!(
        image.as_deref(),
        Some("ghcr.io/stefanprodan/podinfo:6.14.1")
    );
    // team-b's kustomization ran: its generated ConfigMap carries a content hash.
    let generated = Api::<ConfigMap>::namespaced(client.clone(), "team-b")
        .list(&ListParams::default())
        .await
        .expect("team-b's ConfigMaps");
    assert!(
        generated.items.iter().any(|c| c
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("podinfo-config-"))),
        "no generated podinfo-config-<hash> in team-b"
    );
    let secret = Api::<Secret>::namespaced(client.clone(), "berth-system")
        .get("team-a-git")
        .await
        .expect("team-a's credentials Secret");
    let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, ["ca.crt", "password", "username"]);
    drop(client);

    // Everything below `up` now: operator, agents, control plane, Git CGIs.
    let pid = up.0.id();
    let started: Vec<ProcessInfo> = procfs::descendants(pid);
    let names: Vec<&str> = started.iter().map(|p| p.name.as_str()).collect();
    for expected in [
        "berth-operator",
        "berth-agent",
        "kube-harness",
        "kube-apiserver",
    ] {
        assert!(names.contains(&expected), "{expected} not among {names:?}");
    }
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = up.0.try_wait().expect("waiting for up") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "`up` did not exit within {EXIT_TIMEOUT:?} of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(0), "`up` exit status after SIGINT");
    let left: Vec<&ProcessInfo> = started.iter().filter(|p| p.is_running()).collect();
    assert!(left.is_empty(), "still running after `up` exited: {left:?}");
    let state_dir = state.path().to_string_lossy().into_owned();
    for pattern in [
        format!("--run-id {run_id}( |$)"),
        format!("berth-kube-{run_id}-"),
        state_dir,
    ] {
        let found = pgrep(&pattern);
        assert!(found.is_empty(), "still running ({pattern}): {found:?}");
    }
}
