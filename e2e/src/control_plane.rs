//! Starting (or reusing) the local control plane built by `e2e/kube-harness`: one shared by a
//! test process, or one a program owns and stops ([`Harness`]).
//!
//! Environment:
//! - `BERTH_E2E_KUBECONFIG`: use the cluster this kubeconfig names instead of starting one.
//! - `BERTH_KUBE_BIN`: the directory `e2e/kube-harness/build.sh` printed (default: run it).
//! - `BERTH_E2E_RUN_ID`: tags the control plane so `assert-stopped.sh` can check this run's.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why the control plane is not available. Tests fail with this message, never skip.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "building the control plane with {script}: {reason} (it needs Go; `make kube` runs it and prints what BERTH_KUBE_BIN may name)"
    )]
    Build { script: PathBuf, reason: String },
    #[error("starting {binary}: {reason}")]
    Start { binary: PathBuf, reason: String },
    #[error("the control plane did not become ready: {0}")]
    NotReady(String),
    #[error("reading kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("building a Kubernetes client: {0}")]
    Client(String),
}

/// A running control plane: where its kubeconfig and binaries (kubectl) are.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub bin_dir: PathBuf,
}

// The shared harness shuts down when its stdin closes, i.e. when this test process exits, so
// it is parked here (statics are never dropped) for the life of the process.
static HARNESS: Mutex<Option<Harness>> = Mutex::new(None);
static CONTROL_PLANE: OnceLock<Result<ControlPlane, HarnessError>> = OnceLock::new();

/// The control plane shared by every test in this process, started on first use.
pub fn control_plane() -> Result<&'static ControlPlane, HarnessError> {
    CONTROL_PLANE
        .get_or_init(start_or_reuse)
        .as_ref()
        .map_err(Clone::clone)
}

fn start_or_reuse() -> Result<ControlPlane, HarnessError> {
    // Both binaries and harness share one provider; a second install attempt is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if let Some(kubeconfig) = std::env::var_os("BERTH_E2E_KUBECONFIG") {
        let bin_dir = match std::env::var_os("BERTH_KUBE_BIN") {
            Some(dir) => PathBuf::from(dir),
            None => build()?,
        };
        return Ok(ControlPlane {
            kubeconfig: kubeconfig.into(),
            bin_dir,
        });
    }
    let harness = Harness::start()?;
    let control_plane = harness.control_plane.clone();
    if let Ok(mut slot) = HARNESS.lock() {
        *slot = Some(harness);
    }
    Ok(control_plane)
}

/// A control plane this process started and owns (a program's own, unlike the shared
/// [`control_plane`]): stopped by [`Harness::stop`] or when dropped.
pub struct Harness {
    pub control_plane: ControlPlane,
    child: Child,
}

impl Harness {
    /// Starts `kube-harness` (built first unless `BERTH_KUBE_BIN` names its directory), tagged
    /// with `BERTH_E2E_RUN_ID` if set, and waits for its ready line.
    pub fn start() -> Result<Self, HarnessError> {
        // Both binaries and harness share one provider; a second install attempt is harmless.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let bin_dir = match std::env::var_os("BERTH_KUBE_BIN") {
            Some(dir) => PathBuf::from(dir),
            None => build()?,
        };
        let binary = bin_dir.join("kube-harness");
        let start_error = |reason: String| HarnessError::Start {
            binary: binary.clone(),
            reason,
        };
        let mut harness = Command::new(&binary);
        // The harness also stops when this process dies, however it dies: its stdin closes.
        harness.arg("--exit-on-stdin-eof");
        if let Some(run_id) = std::env::var_os("BERTH_E2E_RUN_ID") {
            harness.arg("--run-id").arg(run_id);
        }
        let mut child = harness
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| start_error(e.to_string()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| start_error("no stdout pipe".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let kubeconfig = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(path) = line.strip_prefix("ready kubeconfig=") {
                        break PathBuf::from(path);
                    }
                }
                Some(Err(e)) => return Err(HarnessError::NotReady(e.to_string())),
                None => {
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(HarnessError::NotReady(format!(
                        "kube-harness exited ({status}) before printing its ready line; its stderr above says why"
                    )));
                }
            }
        };
        Ok(Self {
            control_plane: ControlPlane {
                kubeconfig,
                bin_dir,
            },
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the harness's standard input, which makes it stop its components and remove its
    /// directory, and waits for that (up to `timeout`, then kills it).
    pub fn stop(mut self, timeout: Duration) -> Option<ExitStatus> {
        self.shutdown(timeout)
    }

    fn shutdown(&mut self, timeout: Duration) -> Option<ExitStatus> {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(60));
    }
}

/// Runs `e2e/kube-harness/build.sh`, which builds only what is not cached yet.
fn build() -> Result<PathBuf, HarnessError> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("kube-harness/build.sh");
    let build_error = |reason: String| HarnessError::Build {
        script: script.clone(),
        reason,
    };
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| build_error(e.to_string()))?;
    if !output.status.success() {
        return Err(build_error(format!("exited with {}", output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| build_error("printed no bin directory".into()))
}

impl ControlPlane {
    /// The admin configuration (system:masters).
    pub async fn admin_config(&self) -> Result<Config, HarnessError> {
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).map_err(|e| HarnessError::Kubeconfig {
                path: self.kubeconfig.clone(),
                reason: e.to_string(),
            })?;
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| HarnessError::Kubeconfig {
                path: self.kubeconfig.clone(),
                reason: e.to_string(),
            })
    }

    /// A client authenticated as cluster admin.
    pub async fn admin_client(&self) -> Result<Client, HarnessError> {
        let config = self.admin_config().await?;
        Client::try_from(config).map_err(|e| HarnessError::Client(e.to_string()))
    }

    /// A client that authenticates with a bearer token only (e.g. a ServiceAccount's), trusting
    /// the cluster's CA.
    pub async fn token_client(&self, token: &str) -> Result<Client, HarnessError> {
        let mut config = self.admin_config().await?;
        config.auth_info = AuthInfo {
            token: Some(token.to_owned().into()),
            ..AuthInfo::default()
        };
        Client::try_from(config).map_err(|e| HarnessError::Client(e.to_string()))
    }

    /// A client acting as `user` in `groups` (the admin impersonating them): what that user may
    /// do is exactly what RBAC grants them.
    pub async fn user_client(&self, user: &str, groups: &[&str]) -> Result<Client, HarnessError> {
        let mut config = self.admin_config().await?;
        config.auth_info.impersonate = Some(user.to_owned());
        config.auth_info.impersonate_groups =
            Some(groups.iter().map(|g| (*g).to_owned()).collect());
        Client::try_from(config).map_err(|e| HarnessError::Client(e.to_string()))
    }

    /// The kubectl built with the control plane (same version as the server).
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }
}
