//! `make up`: the whole platform on this machine until Ctrl-C. A real control plane on loopback
//! (kube-harness), Berth's CRDs, an HTTPS Git server (generated CA, basic auth) holding the
//! sample platform repository and the two sample tenants' repositories from `e2e/sample/`, and
//! `berth-operator run` in process mode, which onboards the tenants and runs their agents.
//!
//! Prints progress, then how to look around and how to push a change, then the
//! machine-readable line `berth-up ready kubeconfig=PATH` once every sample Tenant is Ready.
//! SIGINT or SIGTERM stops the operator (and so its agents), the Git server and the control
//! plane, checks that no process it started is left, and exits 0.
//!
//! Options: `--state-dir DIR` (default `.berth`: kubeconfig, logs, the repositories and their
//! work trees, all recreated at each start). Environment: as the end-to-end suite (`BERTH_KUBE_BIN`,
//! `BERTH_KUSTOMIZE`, `BERTH_HELM`, `BERTH_SOPS`, `BERTH_E2E_RUN_ID` to tag the control plane).

mod guide;
mod sample;

use guide::{Guide, is_ready, print_conditions, summary};
use sample::{
    apply_credentials, create_sample_repos, random_hex, read_sample_tenants, write_private,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::procfs::{self, ProcessInfo};
use berth_e2e::{Harness, HttpsGitServer, binary, install_crds};
use berth_engine::api::Tenant;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use tokio::signal::unix::{Signal, SignalKind, signal};

const OPERATOR_NAMESPACE: &str = "berth-system";
const GIT_USER: &str = "berth";
const PLATFORM_INTERVAL: &str = "10s";
/// After this long without every Tenant Ready, their conditions are printed (and the wait goes on).
const READY_PATIENCE: Duration = Duration::from_secs(120);
const USAGE: &str = "usage: up [--state-dir DIR]";

#[derive(Debug)]
struct Options {
    state_dir: PathBuf,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        state_dir: PathBuf::from(".berth"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--state-dir" => options.state_dir = PathBuf::from(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(options)
}

fn say(message: impl AsRef<str>) {
    println!("berth-up: {}", message.as_ref());
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // A current-thread runtime: children are started from the main thread, so the parent-death
    // signal given to the operator (tied to the spawning thread) fires only when this process
    // ends.
    let options = match parse_args() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("berth-up: {error}");
            return ExitCode::from(2);
        }
    };
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("berth-up: installing signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut up = Up::default();
    let outcome = tokio::select! {
        result = up.run(&options) => result,
        name = signals.next() => {
            say(format!("{name} received; stopping"));
            Ok(())
        }
    };
    if let Err(error) = &outcome {
        eprintln!("berth-up: {error}");
    }
    let stopped = up.shutdown();
    match (&outcome, stopped) {
        (Ok(()), Ok(count)) => {
            say(format!(
                "stopped; all {count} processes it started have exited"
            ));
            ExitCode::SUCCESS
        }
        (_, Err(error)) => {
            eprintln!("berth-up: {error}");
            ExitCode::FAILURE
        }
        (Err(_), Ok(_)) => ExitCode::FAILURE,
    }
}

struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// What has been started, so that [`Up::shutdown`] (or, on a panic, drop) stops it.
#[derive(Default)]
struct Up {
    operator: Option<Child>,
    git_server: Option<HttpsGitServer>,
    harness: Option<Harness>,
    /// Every process started so far, directly or below (agents, control-plane components, Git
    /// CGIs), refreshed while running, for the final check that none is left.
    started: BTreeMap<u32, ProcessInfo>,
    state_dir: Option<PathBuf>,
}

/// Paths of the state directory.
struct State {
    dir: PathBuf,
}

impl State {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Up {
    async fn run(&mut self, options: &Options) -> Result<(), String> {
        let state = prepare_state_dir(&options.state_dir)?;
        self.state_dir = Some(state.dir.clone());

        say("starting the local control plane (kube-harness)");
        let harness = Harness::start().map_err(|e| format!("the local control plane: {e}"))?;
        let cp = harness.control_plane.clone();
        self.harness = Some(harness);
        self.remember_processes();
        let kubeconfig = state.path("kubeconfig");
        std::fs::copy(&cp.kubeconfig, &kubeconfig)
            .map_err(|e| format!("writing {}: {e}", kubeconfig.display()))?;
        let client = cp.admin_client().await.map_err(|e| e.to_string())?;
        install_crds(&client).await;
        berth_e2e::ensure_namespace(&client, OPERATOR_NAMESPACE)
            .await
            .map_err(|e| format!("creating namespace {OPERATOR_NAMESPACE}: {e}"))?;
        say(format!(
            "control plane ready; kubeconfig {}",
            kubeconfig.display()
        ));

        let password = random_hex(16)?;
        let password_file = state.path("git-password");
        write_private(&password_file, &password)?;
        let git_root = state.path("git");
        let server = self
            .git_server
            .insert(HttpsGitServer::start(&git_root, GIT_USER, &password));
        let ca_file = state.path("git-ca.pem");
        std::fs::copy(server.ca_pem_path(), &ca_file)
            .map_err(|e| format!("writing {}: {e}", ca_file.display()))?;
        let https_base = server.url("").trim_end_matches('/').to_owned();
        let repos = create_sample_repos(&state, &https_base)?;
        say(format!(
            "Git server {https_base} (user {GIT_USER}, password in {}, CA {}) serves {}",
            password_file.display(),
            ca_file.display(),
            repos
                .iter()
                .map(|r| format!("{r}.git"))
                .collect::<Vec<_>>()
                .join(", ")
        ));

        let tenants = read_sample_tenants(&state.path("work/platform/tenants"))?;
        let ca_pem = std::fs::read_to_string(&ca_file)
            .map_err(|e| format!("reading {}: {e}", ca_file.display()))?;
        for (tenant, secret) in &tenants {
            if let Some(secret) = secret {
                apply_credentials(&client, tenant, secret, &password, &ca_pem).await?;
            }
        }

        let operator_log = state.path("operator.log");
        let operator = self.operator.insert(start_operator(
            &state,
            &format!("{https_base}/platform.git"),
            &kubeconfig,
        )?);
        say(format!(
            "operator started (pid {}, log {}); waiting for tenants {} to be Ready",
            operator.id(),
            operator_log.display(),
            tenants.keys().cloned().collect::<Vec<_>>().join(", ")
        ));

        let guide = Guide {
            cp: &cp,
            state: &state,
            https_base: &https_base,
            password: &password,
            repos: &repos,
        };
        self.watch(&client, &tenants, &guide).await
    }

    /// Prints tenant progress until the operator exits (an error); returns never otherwise.
    async fn watch(
        &mut self,
        client: &Client,
        expected: &BTreeMap<String, Option<String>>,
        guide: &Guide<'_>,
    ) -> Result<(), String> {
        let api = Api::<Tenant>::all(client.clone());
        let started = Instant::now();
        let mut shown: BTreeMap<String, String> = BTreeMap::new();
        let mut ready = false;
        let mut impatient = false;
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let Some(operator) = self.operator.as_mut()
                && let Ok(Some(status)) = operator.try_wait()
            {
                return Err(format!(
                    "the operator exited ({status}); see {}",
                    guide.state.path("operator.log").display()
                ));
            }
            self.remember_processes();
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            let by_name: BTreeMap<String, &Tenant> =
                list.items.iter().map(|t| (t.name_any(), t)).collect();
            for name in expected.keys() {
                let line = by_name
                    .get(name)
                    .map_or_else(|| "not created yet".to_owned(), |t| summary(t));
                if shown.get(name) != Some(&line) {
                    println!("  {name:<8} {line}");
                    shown.insert(name.clone(), line);
                }
            }
            let all_ready = expected
                .keys()
                .all(|n| by_name.get(n).is_some_and(|t| is_ready(t)));
            if all_ready && !ready {
                ready = true;
                say(format!(
                    "every tenant is Ready after {} s",
                    started.elapsed().as_secs()
                ));
                guide.print();
                println!(
                    "berth-up ready kubeconfig={}",
                    guide.state.path("kubeconfig").display()
                );
            } else if !ready && !impatient && started.elapsed() > READY_PATIENCE {
                impatient = true;
                say(format!(
                    "not every tenant is Ready after {} s; their conditions:",
                    READY_PATIENCE.as_secs()
                ));
                for name in expected.keys() {
                    match by_name.get(name) {
                        Some(tenant) => print_conditions(tenant),
                        None => println!("  {name}: not created (see the operator log)"),
                    }
                }
                guide.print();
                say("still waiting; Ctrl-C stops everything");
            }
        }
    }

    fn remember_processes(&mut self) {
        for process in procfs::descendants(std::process::id()) {
            self.started.entry(process.pid).or_insert(process);
        }
    }

    /// Stops everything in dependency order: the operator (its agents stop with it), the Git
    /// server, the control plane; then checks that every process seen has exited. Returns how
    /// many there were.
    fn shutdown(&mut self) -> Result<usize, String> {
        self.remember_processes();
        if let Some(mut operator) = self.operator.take() {
            stop_child(&mut operator, Duration::from_secs(20));
        }
        drop(self.git_server.take());
        if let Some(harness) = self.harness.take() {
            harness.stop(Duration::from_secs(60));
        }
        if let Some(dir) = self.state_dir.take() {
            // Both are useless without this control plane; keeping them would only mislead.
            let _ = std::fs::remove_file(dir.join("kubeconfig"));
            let _ = std::fs::remove_dir_all(dir.join("cache"));
        }
        let started = std::mem::take(&mut self.started);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<&ProcessInfo> = started.values().filter(|p| p.is_running()).collect();
            if left.is_empty() {
                return Ok(started.len());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "processes still running after shutdown: {}",
                    left.iter()
                        .map(|p| format!("{} ({})", p.pid, p.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Up {
    /// Reached without [`Up::shutdown`] only when a setup step panicked.
    fn drop(&mut self) {
        let started = self.operator.is_some() || self.git_server.is_some();
        if (started || self.harness.is_some())
            && let Err(error) = self.shutdown()
        {
            eprintln!("berth-up: {error}");
        }
    }
}

/// SIGTERM, then SIGKILL after `grace`.
fn stop_child(child: &mut Child, grace: Duration) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("berth-up: pid {} ignored SIGTERM; killing it", child.id());
    let _ = child.kill();
    let _ = child.wait();
}

/// Creates the state directory and empties what a previous run left in it.
fn prepare_state_dir(dir: &Path) -> Result<State, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for stale in ["git", "work", "cache"] {
        let path = dir.join(stale);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(State { dir })
}

fn start_operator(state: &State, platform_url: &str, kubeconfig: &Path) -> Result<Child, String> {
    let log_path = state.path("operator.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let kustomize = std::env::var_os("BERTH_KUSTOMIZE").unwrap_or_else(|| "kustomize".into());
    let helm = std::env::var_os("BERTH_HELM").unwrap_or_else(|| "helm".into());
    let sops = std::env::var_os("BERTH_SOPS").unwrap_or_else(|| "sops".into());
    // setpriv's parent-death signal: should this process be killed outright, the operator
    // still gets SIGTERM (and stops its agents) instead of running on.
    // The API server calls the admission webhook on loopback.
    let admission_addr = berth_e2e::free_addr();
    let mut command = Command::new("setpriv");
    command
        .args(["--pdeathsig", "TERM", "--"])
        .arg(binary("berth-operator"))
        .args(["run", "--namespace", OPERATOR_NAMESPACE])
        .args(["--platform-repo", platform_url])
        .args(["--platform-interval", PLATFORM_INTERVAL])
        .arg("--platform-ca-file")
        .arg(state.path("git-ca.pem"))
        .args(["--platform-username", GIT_USER])
        .arg("--platform-password-file")
        .arg(state.path("git-password"))
        .args(["--agent-mode", "process"])
        .arg("--cache-dir")
        .arg(state.path("cache"))
        .arg("--kustomize")
        .arg(kustomize)
        .arg("--helm")
        .arg(helm)
        .arg("--sops")
        .arg(sops)
        .args(["--admission-addr", &admission_addr])
        .args(["--admission-url", &format!("https://{admission_addr}")])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    command
        .spawn()
        .map_err(|e| format!("starting berth-operator under setpriv (util-linux): {e}"))
}
