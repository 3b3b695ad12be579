//! `berth-operator run`: connects, waits for the leader lease, then runs the platform-repo
//! sync, the Tenant controller and the agents until SIGTERM/SIGINT (or lost leadership), and
//! shuts down in order: controllers stop, agents stop, the lease is released.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::api::duration;
use berth_engine::cluster;
use tokio_util::sync::CancellationToken;

use crate::admission;
use crate::controllers;
use crate::leader::LeaseLock;
use crate::metrics::OperatorMetrics;
use crate::provision;
use crate::provision::agent::DeploymentSettings;
use crate::webhook;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The operator's own namespace: its Lease, state and policy ConfigMaps, and the tenants'
    /// credentials and webhook Secrets.
    #[arg(long, default_value = "berth-system", env = "BERTH_NAMESPACE")]
    namespace: String,
    /// The platform repository (https://, ssh://, file://); without it only Tenants created
    /// otherwise are reconciled.
    #[arg(long, env = "BERTH_PLATFORM_REPO")]
    platform_repo: Option<String>,
    #[arg(long, default_value = "main", env = "BERTH_PLATFORM_BRANCH")]
    platform_branch: String,
    /// Directory of the platform repository holding Tenant documents.
    #[arg(long, default_value = "tenants", env = "BERTH_PLATFORM_DIR")]
    platform_dir: String,
    /// Directory of the platform repository holding its policy: `bundle.tar.gz`, `data.json`
    /// and `tenants/<tenant>.json` (each optional; default: the built-in bundle, no data).
    #[arg(long, default_value = "policies", env = "BERTH_PLATFORM_POLICY_DIR")]
    platform_policy_dir: String,
    /// Time between platform repository syncs, a Go duration such as 30s, 1m30s or 5m.
    #[arg(long, default_value = "60s", value_parser = duration::parse, env = "BERTH_PLATFORM_INTERVAL")]
    platform_interval: Duration,
    #[command(flatten)]
    platform_git: berth_engine::source::PlatformGitFlags,
    /// Directory of the platform repository cache (and, in process mode, the agents' state).
    #[arg(long, default_value = "/var/cache/berth", env = "BERTH_CACHE_DIR")]
    cache_dir: PathBuf,
    /// How tenant agents run: `deployment` (one Deployment per tenant, in its primary
    /// namespace), `process` (child processes, the local mode) or `off`.
    #[arg(long, value_enum, default_value_t = AgentMode::Off, env = "BERTH_AGENT_MODE")]
    agent_mode: AgentMode,
    /// Manage only the Tenants matching this label selector (e.g. `shard=a`), to split tenants
    /// over several operators; default: all.
    #[arg(long, default_value = "", env = "BERTH_TENANT_SELECTOR")]
    tenant_selector: String,
    /// This cluster's name, selecting Tenants' per-cluster branch/path overrides.
    #[arg(long, default_value = "default", env = "BERTH_CLUSTER")]
    cluster: String,
    /// The agent's container image (deployment mode).
    #[arg(long, default_value = concat!("ghcr.io/berth-dev/berth-agent:", env!("CARGO_PKG_VERSION")), env = "BERTH_AGENT_IMAGE")]
    agent_image: String,
    /// The berth-agent program (process mode); default: beside berth-operator.
    #[arg(long)]
    agent_binary: Option<PathBuf>,
    /// The kustomize program the agents run (process mode).
    #[arg(long, default_value = "kustomize", env = "BERTH_KUSTOMIZE")]
    kustomize: PathBuf,
    /// The helm program the agents run (process mode).
    #[arg(long, default_value = "helm", env = "BERTH_HELM")]
    helm: PathBuf,
    /// The sops program the agents run (process mode), for Secrets committed encrypted.
    #[arg(long, default_value = "sops", env = "BERTH_SOPS")]
    sops: PathBuf,
    /// Address of `/metrics`, `/healthz` and `/readyz` (ready = leading), or `off`.
    #[arg(long, default_value = "0.0.0.0:8080", env = "BERTH_METRICS_ADDR")]
    metrics_addr: String,
    /// Address of the webhook receiver (`POST /hooks/<tenant>`, served while leading), or `off`.
    #[arg(long, default_value = "0.0.0.0:9292", env = "BERTH_WEBHOOK_ADDR")]
    webhook_addr: String,
    /// Address of the admission webhook (HTTPS, served while leading): every create and update
    /// in a tenant namespace not made by its agent is checked against the tenant's policy.
    /// `off` disables it (and leaves the tenants' namespaces open to unchecked writes).
    #[arg(long, default_value = "0.0.0.0:9443", env = "BERTH_ADMISSION_ADDR")]
    admission_addr: String,
    /// The Service the API server reaches the admission webhook through, NAME:PORT in the
    /// operator's namespace.
    #[arg(
        long,
        default_value = "berth-admission:443",
        env = "BERTH_ADMISSION_SERVICE"
    )]
    admission_service: String,
    /// Reach the admission webhook at this https:// URL instead of a Service (an operator
    /// running outside the cluster, e.g. on the local control plane).
    #[arg(long, env = "BERTH_ADMISSION_URL")]
    admission_url: Option<String>,
    /// Take part in leader election on a Lease in the operator's namespace, so that of several
    /// replicas only one acts. `false` only for a single replica that must start at once.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "BERTH_LEADER_ELECT")]
    leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "berth-operator")]
    lease_name: String,
    /// How long the leader's lease lasts without renewal (renewed every third of it), e.g. 15s;
    /// at least 1s (the Lease counts whole seconds).
    #[arg(long, default_value = "15s", value_parser = lease_duration)]
    lease_duration: Duration,
    /// This replica's identity in the Lease; default: host name and process id.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum AgentMode {
    Off,
    Process,
    Deployment,
}

impl RunArgs {
    fn platform_source(&self) -> Result<Option<berth_engine::source::GitSource>, String> {
        use berth_engine::source::{GitSource, TreeLimits, validate_url};
        let Some(repo) = &self.platform_repo else {
            return Ok(None);
        };
        let url = validate_url(repo)?;
        let auth = self.platform_git.auth(&url)?;
        Ok(Some(GitSource {
            url,
            git_ref: berth_engine::source::GitRef::Branch(self.platform_branch.clone()),
            cache_dir: self.cache_dir.join("platform"),
            auth,
            ca_file: self.platform_git.ca_file.clone(),
            timeout: std::time::Duration::from_secs(30),
            limits: TreeLimits::default(),
            ssh_program: "ssh".into(),
        }))
    }

    fn admission_endpoint(&self) -> Result<admission::Endpoint, String> {
        if let Some(url) = &self.admission_url {
            if !url.starts_with("https://") {
                return Err(format!("--admission-url {url}: must be an https:// URL"));
            }
            return Ok(admission::Endpoint::Url(url.clone()));
        }
        let (name, port) = self
            .admission_service
            .split_once(':')
            .and_then(|(name, port)| Some((name, port.parse().ok()?)))
            .ok_or_else(|| {
                format!(
                    "--admission-service {}: expected NAME:PORT",
                    self.admission_service
                )
            })?;
        Ok(admission::Endpoint::Service {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            port,
        })
    }
}

pub async fn run(args: RunArgs) -> ExitCode {
    match start(args).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(%error, "berth-operator run");
            ExitCode::FAILURE
        }
    }
}

async fn start(args: RunArgs) -> Result<ExitCode, String> {
    let source = args.platform_source()?;
    let metrics = Arc::new(OperatorMetrics::default());
    let (client, version) = cluster::connect(Some(metrics.api_requests.clone()))
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API server: {e}"))?;
    tracing::info!(%version, "connected to the Kubernetes API server");

    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    if let Some(addr) = listen_addr("--metrics-addr", &args.metrics_addr)? {
        let (served, stop) = (metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) =
                berth_engine::metrics::serve(addr, served, stop.cancelled_owned()).await
            {
                tracing::error!(%error, "metrics server stopped");
            }
        });
    }

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let lease = LeaseLock::new(
        client.clone(),
        &args.namespace,
        &args.lease_name,
        &identity,
        args.lease_duration,
    );
    if args.leader_elect {
        tracing::info!(%identity, lease = %args.lease_name, "waiting for the leader lease");
        if !lease.acquire(&shutdown).await {
            tracing::info!("shut down before leading");
            return Ok(ExitCode::SUCCESS);
        }
    }
    tracing::info!(%identity, "leading");
    metrics.set_leading(true);

    // Everything below acts; it stops when `acting` is cancelled: by a signal, or by losing
    // the lease (then the process exits non-zero, to come back as a standby).
    let acting = shutdown.child_token();
    // Set when a part the operator cannot act safely without fails: it then exits non-zero.
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let leadership = {
        let shutdown = shutdown.clone();
        let acting = acting.clone();
        let leader_elect = args.leader_elect;
        tokio::spawn(async move {
            let result = if leader_elect {
                lease.hold(&shutdown).await
            } else {
                shutdown.cancelled().await;
                Ok(())
            };
            acting.cancel();
            (lease, result)
        })
    };
    if let Some(source) = source {
        let sync = controllers::platform::PlatformSync {
            client: client.clone(),
            source,
            dir: args.platform_dir.clone(),
            operator_namespace: args.namespace.clone(),
            interval: args.platform_interval,
            metrics: metrics.clone(),
            policy_dir: args.platform_policy_dir.clone(),
            checked_bundle: tokio::sync::Mutex::new(None),
            last_applied: tokio::sync::Mutex::new(None),
        };
        tokio::spawn(sync.run(acting.clone()));
    }
    if let Some(addr) = listen_addr("--webhook-addr", &args.webhook_addr)? {
        let state = Arc::new(webhook::WebhookState::new(
            client.clone(),
            args.namespace.clone(),
            webhook::Limits::default(),
            metrics.webhook_requests.clone(),
        ));
        let stop = acting.clone();
        tokio::spawn(async move {
            if let Err(error) = webhook::serve(addr, state, stop.cancelled_owned()).await {
                tracing::error!(%error, "webhook receiver stopped");
            }
        });
    }
    if let Some(addr) = listen_addr("--admission-addr", &args.admission_addr)? {
        let settings = admission::Settings {
            client: client.clone(),
            addr,
            endpoint: args.admission_endpoint()?,
            operator_namespace: args.namespace.clone(),
            selector: args.tenant_selector.clone(),
            metrics: metrics.clone(),
        };
        let (stop, shutdown, failed) = (acting.clone(), shutdown.clone(), failed.clone());
        tokio::spawn(async move {
            if let Err(error) = admission::run(settings, stop).await {
                // Without its webhook it must not go on as if tenants were guarded: it stops,
                // and a standby (or its restart) takes over.
                tracing::error!(%error, "admission webhook stopped; shutting down");
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                shutdown.cancel();
            }
        });
    }
    let agents = match args.agent_mode {
        AgentMode::Process => {
            let agents = process_agents(&args, client.clone(), metrics.clone()).await?;
            Some(tokio::spawn(agents.run(acting.clone())))
        }
        AgentMode::Deployment | AgentMode::Off => None,
    };
    let deployment = (args.agent_mode == AgentMode::Deployment).then(|| DeploymentSettings {
        image: args.agent_image.clone(),
        cluster: args.cluster.clone(),
    });
    controllers::tenant::run(
        controllers::tenant::Settings {
            client,
            provision: provision::ProvisionContext {
                operator_namespace: args.namespace.clone(),
            },
            metrics: metrics.clone(),
            selector: args.tenant_selector.clone(),
            deployment,
            platform_only: args.platform_repo.is_some(),
        },
        acting.clone(),
    )
    .await;
    acting.cancel();
    if let Some(agents) = agents {
        let _ = agents.await;
    }
    metrics.set_leading(false);
    match leadership.await {
        Ok((_, Err(error))) => {
            tracing::error!(%error, "stopped acting");
            Ok(ExitCode::FAILURE)
        }
        Ok((lease, Ok(()))) => {
            // Only now that nothing acts any more may a standby take over at once.
            if args.leader_elect {
                lease.release().await;
            }
            tracing::info!("shut down");
            Ok(if failed.load(std::sync::atomic::Ordering::Relaxed) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(error) => Err(format!("leader election task: {error}")),
    }
}

/// The address a listener flag names, or `None` for `off`.
fn listen_addr(flag: &str, value: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if value == "off" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e| format!("{flag} {value}: {e}"))
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Host name and process id: unique among replicas, readable in `kubectl get lease`.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "berth-operator".into());
    format!("{host}-{}", std::process::id())
}

/// The process-mode agent supervisor, with the API server address and CA the operator uses.
async fn process_agents(
    args: &RunArgs,
    client: kube::Client,
    metrics: Arc<OperatorMetrics>,
) -> Result<controllers::agents::ProcessAgents, String> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    let ca_pem = config.root_cert.as_ref().map(|certs| {
        use base64::Engine;
        certs
            .iter()
            .map(|der| {
                let body = base64::engine::general_purpose::STANDARD.encode(der);
                let lines: Vec<&str> = body
                    .as_bytes()
                    .chunks(64)
                    .filter_map(|c| std::str::from_utf8(c).ok())
                    .collect();
                format!(
                    "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                    lines.join("\n")
                )
            })
            .collect::<String>()
    });
    let program = match &args.agent_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("berth-agent"),
    };
    Ok(controllers::agents::ProcessAgents {
        client,
        metrics,
        selector: args.tenant_selector.clone(),
        operator_namespace: args.namespace.clone(),
        token_refresh: agent_token_refresh()?,
        program,
        state_dir: args.cache_dir.join("agents"),
        cluster: args.cluster.clone(),
        server: config.cluster_url.to_string(),
        ca_pem,
        extra_args: vec![
            "--kustomize".into(),
            args.kustomize.to_string_lossy().into_owned(),
            "--helm".into(),
            args.helm.to_string_lossy().into_owned(),
            "--sops".into(),
            args.sops.to_string_lossy().into_owned(),
        ],
    })
}

/// Process-mode agents get a fresh token and credentials after a third of a token's hour.
const AGENT_TOKEN_REFRESH: Duration = Duration::from_secs(20 * 60);

/// How often process-mode agents get a fresh token: every [`AGENT_TOKEN_REFRESH`], or, for the
/// end-to-end tests only (so their agents go through refreshes), `BERTH_TEST_AGENT_TOKEN_REFRESH`.
fn agent_token_refresh() -> Result<Duration, String> {
    const VAR: &str = "BERTH_TEST_AGENT_TOKEN_REFRESH";
    match std::env::var(VAR) {
        Err(std::env::VarError::NotPresent) => Ok(AGENT_TOKEN_REFRESH),
        Err(e) => Err(format!("{VAR}: {e}")),
        Ok(text) => {
            let refresh = duration::parse(&text).map_err(|e| format!("{VAR}: {e}"))?;
            tracing::warn!(%VAR, ?refresh, "test-only agent token refresh in effect");
            Ok(refresh)
        }
    }
}

/// `--lease-duration`: a Go duration of at least a second, the Lease's unit.
fn lease_duration(text: &str) -> Result<Duration, String> {
    let lease = duration::parse(text).map_err(|e| e.to_string())?;
    if lease < Duration::from_secs(1) {
        return Err(format!(
            "{text:?} is shorter than a second, the Lease's unit"
        ));
    }
    Ok(lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lasts_at_least_a_second() {
        assert_eq!(lease_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(lease_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            lease_duration("300ms"),
            Err("\"300ms\" is shorter than a second, the Lease's unit".to_owned())
        );
        assert!(lease_duration("0s").is_err());
        assert!(lease_duration("5x").is_err());
    }
}
