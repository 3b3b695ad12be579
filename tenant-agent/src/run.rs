//! `berth-agent run`: the reconcile loop. Each reconcile is fetch → render → guard rails →
//! policy → apply → prune → status; a refused or failed revision changes nothing and the last
//! good one stays applied.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use berth_engine::api::{SYNC_NAME, TenantSync, TenantSyncSpec, duration};
use berth_engine::apply::Applier;
use berth_engine::check::Checker;
use berth_engine::metrics::Metrics;
use berth_engine::policy::PolicyBundle;
use berth_engine::render::{AGE_KEY_ENV, AgeKey, Kustomize, RenderLimits, Sops};
use berth_engine::report::ReportSigner;
use berth_engine::source::{GitFlags, GitRef, GitSource, TreeLimits, validate_url};
use clap::Args;
use futures::StreamExt;
use kube::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;

use crate::policy_source::{PlatformPolicy, PolicySource};
use crate::reconcile::{Agent, Outcome};
use crate::{TenantArgs, exit};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    tenant: TenantArgs,
    /// The tenant's repository: https://…, ssh://… (or user@host:path) or file:///….
    #[arg(long, env = "BERTH_REPO_URL")]
    repo: String,
    /// Branch to follow (default `main`, unless a tag, semver range or commit is pinned).
    #[arg(long, env = "BERTH_BRANCH", group = "reference")]
    branch: Option<String>,
    /// Pin a tag instead of following a branch.
    #[arg(long, env = "BERTH_TAG", group = "reference")]
    tag: Option<String>,
    /// Pin the highest tag matching a semver range, e.g. `>=1.2.0 <2.0.0` or `^1.2`.
    #[arg(long, env = "BERTH_SEMVER", group = "reference")]
    semver: Option<String>,
    /// Pin a commit (its full id).
    #[arg(long, env = "BERTH_COMMIT", group = "reference")]
    commit: Option<String>,
    /// Directory of the repository to apply ("" for the root).
    #[arg(long, default_value = "", env = "BERTH_PATH")]
    path: String,
    /// Time between reconciles, a Go duration such as 30s, 1m30s or 5m.
    #[arg(long, default_value = "60s", value_parser = duration::parse, env = "BERTH_INTERVAL")]
    interval: Duration,
    /// Where the agent keeps its TenantSync, Events and PolicyReports: the agent's own
    /// namespace, where no tenant member has rights (the operator passes it). Default: the
    /// primary namespace, for an agent run by hand.
    #[arg(long, env = "BERTH_HOME_NAMESPACE")]
    home_namespace: Option<String>,
    /// PKCS#8 Ed25519 key the agent signs its PolicyReports with (the operator hands each
    /// agent its tenant's key and publishes the public half in the Tenant's status).
    /// Without it, reports are unsigned and an auditor's report lists them as unverified.
    #[arg(long, env = "BERTH_REPORT_KEY")]
    report_key: Option<PathBuf>,
    /// Reconcile once and exit: 0 applied (or nothing to do), 2 refused, 1 error.
    #[arg(long)]
    once: bool,
    /// Directory of the repository cache.
    #[arg(long, default_value = "/var/cache/berth", env = "BERTH_CACHE_DIR")]
    cache_dir: PathBuf,
    #[command(flatten)]
    git: GitFlags,
    /// Git connect/read timeout.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    git_timeout: Duration,
    /// Objects applied at once.
    #[arg(long, default_value_t = 8)]
    apply_concurrency: usize,
    /// Address of /metrics, /healthz and /readyz ("off" to disable; not served with --once).
    #[arg(long, default_value = "0.0.0.0:8080", env = "BERTH_METRICS_ADDR")]
    metrics_addr: String,
    /// The platform's policy as a ConfigMap, NAMESPACE/NAME, with binaryData `bundle.tar.gz`
    /// and data `data.json`; re-read when it changes, an invalid update is refused and the
    /// previous bundle kept. Replaces --bundle and --policy-data.
    #[arg(long, env = "BERTH_POLICY_CONFIGMAP", conflicts_with_all = ["bundle", "policy_data"])]
    policy_configmap: Option<String>,
    /// Stop when standard input closes: for a supervisor that keeps it open (the operator's
    /// process mode), so the agent never outlives it.
    #[arg(long)]
    exit_on_stdin_eof: bool,
    /// The sops program, for Secrets committed encrypted with SOPS. The tenant's age key is
    /// read from the environment variable BERTH_SOPS_AGE_KEY only (never a flag or a file);
    /// without it, an encrypted Secret refuses the revision.
    #[arg(long, default_value = "sops", env = "BERTH_SOPS")]
    sops: PathBuf,
}

impl RunArgs {
    /// sops, and the tenant's age key if the environment holds one.
    fn sops(&self) -> Result<Sops, String> {
        let key = match std::env::var(AGE_KEY_ENV) {
            Ok(text) => Some(AgeKey::parse(&text).map_err(|e| format!("{AGE_KEY_ENV} {e}"))?),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("{AGE_KEY_ENV} is not UTF-8"));
            }
        };
        Ok(Sops {
            program: self.sops.clone(),
            key,
            ..Sops::default()
        })
    }

    /// The reference the flags name (a branch, `main` by default, or a pin).
    fn git_ref(&self) -> GitRef {
        match (&self.tag, &self.semver, &self.commit) {
            (Some(tag), _, _) => GitRef::Tag(tag.clone()),
            (_, Some(range), _) => GitRef::Semver(range.clone()),
            (_, _, Some(commit)) => GitRef::Commit(commit.clone()),
            _ => GitRef::Branch(self.branch.clone().unwrap_or_else(|| "main".into())),
        }
    }
}

/// The platform's ConfigMap if one is named; otherwise `--bundle` or the built-in bundle, loaded
/// now so a missing or corrupt one stops the agent before it applies anything.
async fn policy_source(args: &RunArgs, client: &kube::Client) -> Result<PolicySource, String> {
    if let Some(reference) = &args.policy_configmap {
        let (namespace, name) = reference
            .split_once('/')
            .ok_or_else(|| format!("--policy-configmap {reference}: expected NAMESPACE/NAME"))?;
        return Ok(PolicySource::ConfigMap(Box::new(PlatformPolicy {
            api: Api::namespaced(client.clone(), namespace),
            name: name.to_owned(),
            cache: args.cache_dir.join(&args.tenant.tenant).join("policy"),
            loaded: tokio::sync::Mutex::new(None),
        })));
    }
    let data = args
        .tenant
        .policy_data()
        .map_err(|e| format!("policy data {e}"))?;
    let bundle = match &args.tenant.bundle {
        Some(path) => PolicyBundle::from_file(path, data).await,
        None => {
            PolicyBundle::from_bytes(
                "built-in default bundle",
                berth_engine::policy::DEFAULT_BUNDLE,
                data,
            )
            .await
        }
    }
    .map_err(|e| e.to_string())?;
    Ok(PolicySource::Fixed(Arc::new(bundle)))
}

pub async fn main(args: RunArgs) -> u8 {
    match build(&args).await {
        Ok(agent) => run(agent, &args).await,
        Err(message) => {
            tracing::error!(%message, "berth-agent cannot start");
            exit::ERROR
        }
    }
}

async fn build(args: &RunArgs) -> Result<Agent, String> {
    let url = validate_url(&args.repo).map_err(|e| format!("--repo: {e}"))?;
    let auth = args.git.auth(&url)?;
    let tenant = args.tenant.context();
    let sops = args.sops()?;
    let skip_guard_rails = skip_guard_rails()?;
    let metrics = Arc::new(Metrics::default());
    let (client, version) = berth_engine::cluster::connect(Some(metrics.api_requests.clone()))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(%version, tenant = %tenant.name, repo = %url, reference = %args.git_ref(), "connected");
    let primary = tenant
        .namespaces
        .first()
        .cloned()
        .ok_or("at least one --namespace is required")?;
    let home = args.home_namespace.clone().unwrap_or(primary);
    let signer = match &args.report_key {
        Some(path) => {
            let key = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(ReportSigner::from_pkcs8(&key).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let policy = policy_source(args, &client).await?;
    let cache_dir = args.cache_dir.join(&tenant.name);
    Ok(Agent {
        source: GitSource {
            url,
            git_ref: args.git_ref(),
            cache_dir,
            auth,
            ca_file: args.git.ca_file.clone(),
            timeout: args.git_timeout,
            limits: TreeLimits::default(),
            ssh_program: "ssh".into(),
        },
        path: args.path.clone(),
        applier: Applier::new(client.clone(), &tenant.name, args.apply_concurrency),
        syncs: Api::namespaced(client.clone(), &home),
        reports: Api::namespaced_with(client.clone(), &home, &berth_engine::report::resource()),
        home,
        signer,
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "berth-agent".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        metrics,
        policy,
        checker: Checker {
            tenant,
            kustomize: Kustomize {
                program: args.tenant.kustomize.clone(),
                ..Kustomize::default()
            },
            helm: args.tenant.helm(),
            sops: Some(sops),
            limits: RenderLimits {
                max_objects: args.tenant.max_objects,
                ..RenderLimits::default()
            },
        },
        skip_guard_rails,
        interrupt: Arc::new(AtomicBool::new(false)),
    })
}

async fn run(agent: Agent, args: &RunArgs) -> u8 {
    if args.once {
        return match agent.reconcile().await {
            Outcome::Applied => exit::CLEAN,
            Outcome::Refused => exit::REFUSED,
            Outcome::Failed => exit::ERROR,
        };
    }
    if args.metrics_addr != "off" {
        let addr: std::net::SocketAddr = match args.metrics_addr.parse() {
            Ok(addr) => addr,
            Err(e) => {
                tracing::error!(addr = %args.metrics_addr, error = %e, "invalid --metrics-addr");
                return exit::ERROR;
            }
        };
        let served = agent.metrics.clone();
        tokio::spawn(async move {
            if let Err(error) =
                berth_engine::metrics::serve(addr, served, std::future::pending()).await
            {
                tracing::error!(%error, "metrics server stopped");
            }
        });
    }
    // Armed once, so a signal arriving mid-reconcile is kept (as a permit) rather than lost.
    let stop = Arc::new(Notify::new());
    let stopper = stop.clone();
    let stdin_eof = args.exit_on_stdin_eof;
    tokio::spawn(async move {
        shutdown(stdin_eof).await;
        stopper.notify_one();
    });
    let trigger = Arc::new(Notify::new());
    tokio::spawn(watch_trigger(agent.syncs.clone(), trigger.clone()));
    let mut backoff = Duration::from_secs(5);
    loop {
        let outcome = agent.reconcile().await;
        let wait = if outcome == Outcome::Failed {
            let wait = backoff.min(args.interval);
            backoff = (backoff * 2).min(Duration::from_secs(300));
            wait
        } else {
            backoff = Duration::from_secs(5);
            args.interval
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = trigger.notified() => tracing::info!("sync requested"),
            () = stop.notified() => {
                tracing::info!("shutting down");
                return exit::CLEAN;
            }
        }
    }
}

/// Notifies when `spec.syncRequestedAt` of the TenantSync changes.
async fn watch_trigger(syncs: Api<TenantSync>, trigger: Arc<Notify>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={SYNC_NAME}"));
    let mut seen: HashMap<String, Option<String>> = HashMap::new();
    // Backs off (client-go's schedule) while the API server cannot be reached.
    let mut events = watcher(syncs, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let sync = match event {
            Ok(watcher::Event::Apply(sync) | watcher::Event::InitApply(sync)) => sync,
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%error, "watching TenantSync");
                continue;
            }
        };
        let TenantSyncSpec { sync_requested_at } = sync.spec;
        let handled = sync.status.and_then(|s| s.last_handled_request);
        let previous = seen.insert(SYNC_NAME.into(), sync_requested_at.clone());
        if sync_requested_at.is_some()
            && sync_requested_at != handled
            && previous.as_ref() != Some(&sync_requested_at)
        {
            trigger.notify_one();
        }
    }
}

/// Resolves on SIGTERM, SIGINT or, if asked, when standard input closes (a supervising
/// operator holds it open, so even a SIGKILLed operator takes its agents down).
async fn shutdown(stdin_eof: bool) {
    let eof = async {
        if stdin_eof {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut sink).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => {}
        () = eof => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Whether to skip the guard rails: only ever for the end-to-end tests, which prove the API
/// server's RBAC still confines the agent, with `BERTH_TEST_UNSAFE_SKIP_GUARD_RAILS=1`; no flag
/// offers it.
fn skip_guard_rails() -> Result<bool, String> {
    const VAR: &str = "BERTH_TEST_UNSAFE_SKIP_GUARD_RAILS";
    match std::env::var(VAR).as_deref() {
        Err(std::env::VarError::NotPresent) => Ok(false),
        Ok("1") => {
            tracing::warn!(%VAR, "TEST ONLY: the guard rails are off");
            Ok(true)
        }
        Ok(other) => Err(format!("{VAR}={other:?}: only 1 (or unset) is accepted")),
        Err(e) => Err(format!("{VAR}: {e}")),
    }
}
