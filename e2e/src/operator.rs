//! `berth-operator run` for a test: its own namespace (lease, policy, state ConfigMap), only the
//! test's Tenants (selected by the label `berth.dev/e2e=<namespace>`, since every test shares
//! one API server), metrics on a free port, and its own cache directory.

use std::path::Path;
use std::process::Command;

use crate::control_plane::ControlPlane;
use crate::http::{free_addr, http_get, metric};
use crate::tenant::{BackgroundProcess, binary};

/// The label that scopes a test's Tenants to its operator.
pub const E2E_LABEL: &str = "berth.dev/e2e";

pub struct TestOperator {
    pub process: BackgroundProcess,
    pub metrics_addr: String,
    pub webhook_addr: String,
    /// Where its admission webhook listens (HTTPS; the API server calls it there).
    pub admission_addr: String,
}

impl TestOperator {
    /// Starts an operator in `namespace` with a short lease (leader election is on, as in
    /// production) and `extra` arguments (platform repository, agent mode, …).
    pub fn start(cp: &ControlPlane, namespace: &str, cache: &Path, extra: &[&str]) -> Self {
        Self::start_as(&cp.kubeconfig, namespace, cache, extra)
    }

    /// The usual platform: `platform_url` synced every second, agents as child processes.
    pub fn start_platform(
        cp: &ControlPlane,
        namespace: &str,
        cache: &Path,
        platform_url: &str,
    ) -> Self {
        Self::start_as(
            &cp.kubeconfig,
            namespace,
            cache,
            &Self::platform_args(platform_url),
        )
    }

    /// The arguments of [`Self::start_platform`].
    pub fn platform_args(platform_url: &str) -> [&str; 6] {
        [
            "--platform-repo",
            platform_url,
            "--platform-interval",
            "1s",
            "--agent-mode",
            "process",
        ]
    }

    /// Like [`Self::start`], with the identity of `kubeconfig` instead of the admin's.
    pub fn start_as(kubeconfig: &Path, namespace: &str, cache: &Path, extra: &[&str]) -> Self {
        Self::spawn(kubeconfig, namespace, cache, extra, None)
    }

    /// Like [`Self::start`], writing its output and its agents' (process mode) to `log`.
    pub fn start_logged(
        cp: &ControlPlane,
        namespace: &str,
        cache: &Path,
        extra: &[&str],
        log: &Path,
    ) -> Self {
        Self::spawn(&cp.kubeconfig, namespace, cache, extra, Some(log))
    }

    fn spawn(
        kubeconfig: &Path,
        namespace: &str,
        cache: &Path,
        extra: &[&str],
        log: Option<&Path>,
    ) -> Self {
        let (metrics_addr, webhook_addr, admission_addr) = (free_addr(), free_addr(), free_addr());
        let admission_url = format!("https://{admission_addr}");
        let kustomize = std::env::var("BERTH_KUSTOMIZE").unwrap_or_else(|_| "kustomize".into());
        let helm = std::env::var("BERTH_HELM").unwrap_or_else(|_| "helm".into());
        let sops = std::env::var("BERTH_SOPS").unwrap_or_else(|_| "sops".into());
        let selector = format!("{E2E_LABEL}={namespace}");
        let mut command = Command::new(binary("berth-operator"));
        if let Some(log) = log {
            let file = std::fs::File::create(log).expect("creating the operator's log");
            command.stdout(file.try_clone().expect("log file"));
            command.stderr(file);
        }
        let child = command
            .args([
                "run",
                "--namespace",
                namespace,
                "--tenant-selector",
                &selector,
            ])
            .args([
                "--metrics-addr",
                &metrics_addr,
                "--webhook-addr",
                &webhook_addr,
                "--admission-addr",
                &admission_addr,
                "--admission-url",
                &admission_url,
            ])
            .args(if extra.contains(&"--lease-duration") {
                &[][..]
            } else {
                &["--lease-duration", "6s"][..]
            })
            .args(["--kustomize", &kustomize])
            .args(["--helm", &helm])
            .args(["--sops", &sops])
            .arg("--cache-dir")
            .arg(cache)
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            // Every few seconds, so every process-mode test runs its agents through refreshes.
            .env("BERTH_TEST_AGENT_TOKEN_REFRESH", "3s")
            .spawn()
            .expect("starting berth-operator");
        Self {
            process: BackgroundProcess(child),
            metrics_addr,
            webhook_addr,
            admission_addr,
        }
    }

    /// A sample of the operator's metrics (0 when absent or unreachable).
    pub async fn metric(&self, sample: &str) -> f64 {
        match http_get(&self.metrics_addr, "/metrics").await {
            Some((200, body)) => metric(&body, sample),
            _ => 0.0,
        }
    }

    /// Requests this operator sent that change something (anything but GET).
    pub async fn writes(&self) -> f64 {
        let mut total = 0.0;
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            total += self
                .metric(&format!(
                    "berth_operator_api_requests_total{{method=\"{method}\"}}"
                ))
                .await;
        }
        total
    }

    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

/// A Tenant document for a test's platform repository, labelled for the test's operator.
pub fn tenant_document(test_namespace: &str, name: &str, spec_yaml: &str) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: {name}\n  labels: {{{E2E_LABEL}: {test_namespace}}}\nspec:\n{spec_yaml}"
    )
}

/// Running agents of `tenant` as (pid, parent pid).
pub fn agent_processes(tenant: &str) -> Vec<(u32, u32)> {
    let out = Command::new("pgrep")
        .args(["-f", "--", &format!("--tenant {tenant} ")])
        .output()
        .expect("pgrep");
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "pgrep failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|pid| pid.trim().parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The fields after the command name (which may hold spaces) follow its ") ".
            let after = stat.rsplit_once(") ")?.1;
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}
