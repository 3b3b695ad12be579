//! Agent lifecycle, process mode (the local mode): one `berth-agent` child process per Tenant
//! that is provisioned and not suspended, authenticated as the agent's ServiceAccount (in the
//! agent's namespace) by a short-lived TokenRequest token in a token file it re-reads
//! (refreshed well before expiry), signing its reports with the tenant's key, and given the
//! tenant's age key (SOPS) in its environment.
//! Crashed agents are restarted with backoff; agents of removed or suspended tenants stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_engine::api::Tenant;
use berth_engine::cluster::single_user_kubeconfig;
use berth_engine::render::{AGE_KEY_ENV, AgeKey};
use berth_engine::source::GitFlags;
use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, ResourceExt};

use tokio_util::sync::CancellationToken;

use super::tenant::{read_credentials, read_decryption_key};
use crate::metrics::OperatorMetrics;
use crate::provision::AGENT;
use crate::provision::agent::{REPORT_KEY_FILE, REPORT_KEY_SECRET};
use crate::provision::agent_args::{
    AGENT_MALLOC_ENV, AgentPaths, USERNAME_KEY, agent_args, credential_flags,
};

/// Lifetime of an agent token; it is replaced well before (every 20 minutes, see `run.rs`).
const TOKEN_SECONDS: i64 = 3600;
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a stopping agent may take to finish its reconcile.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct ProcessAgents {
    pub client: Client,
    pub metrics: Arc<OperatorMetrics>,
    /// Label selector of the Tenants this operator manages ("" for all).
    pub selector: String,
    /// Where the tenants' policy ConfigMaps live.
    pub operator_namespace: String,
    /// How often an agent's token and credentials are replaced (a third of the token's life).
    pub token_refresh: Duration,
    /// The `berth-agent` program.
    pub program: PathBuf,
    /// Per-tenant directories for kubeconfigs, tokens and repository caches.
    pub state_dir: PathBuf,
    /// The cluster name selecting per-cluster branch/path overrides.
    pub cluster: String,
    /// The API server URL and CA the agents connect to (from the operator's own config).
    pub server: String,
    pub ca_pem: Option<String>,
    /// Extra arguments for every agent (e.g. `--kustomize`).
    pub extra_args: Vec<String>,
}

/// A running agent; dropping it kills the process (`stop` lets it finish its reconcile first).
struct Running {
    child: Child,
    /// What it was started with; a change restarts it.
    fingerprint: String,
    /// SHA-256 of the age key in its environment: a new key needs a new process.
    key_digest: Option<String>,
    token_written: Instant,
    started: Instant,
    failures: u32,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Closes the agent's standard input, which it takes as SIGTERM (finish the reconcile in
    /// progress, then exit), and kills it if it has not exited within the grace period.
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::warn!(
            pid = self.child.id(),
            "agent did not stop in time; killing it"
        );
    }
}

impl ProcessAgents {
    /// Supervises agents until `stop`, then stops them all. If the operator is killed
    /// instead, they stop by themselves: their standard input closes.
    pub async fn run(self, stop: CancellationToken) {
        // Tenants from a watch, so a supervision round costs no request.
        let (tenants, writer) = reflector::store::<Tenant>();
        let config = watcher::Config::default().labels(&self.selector);
        let watch = reflector(
            writer,
            watcher(Api::<Tenant>::all(self.client.clone()), config),
        )
        .default_backoff()
        .applied_objects()
        .for_each(|event| async move {
            if let Err(error) = event {
                tracing::warn!(%error, "watching Tenants");
            }
        });
        let watch = tokio::spawn(watch);
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        loop {
            tokio::select! {
                ready = tenants.wait_until_ready() => {
                    if ready.is_ok() {
                        self.supervise(&tenants.state(), &mut running).await;
                    }
                }
                () = stop.cancelled() => break,
            }
            self.metrics
                .agents_running
                .set(i64::try_from(running.len()).unwrap_or(i64::MAX));
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
                () = stop.cancelled() => break,
            }
        }
        watch.abort();
        futures::future::join_all(running.into_values().map(Running::stop)).await;
        self.metrics.agents_running.set(0);
        tracing::info!("agents stopped");
    }

    async fn supervise(&self, tenants: &[Arc<Tenant>], running: &mut BTreeMap<String, Running>) {
        let wanted: BTreeMap<String, &Tenant> = tenants
            .iter()
            .map(AsRef::as_ref)
            .filter(|t| {
                !t.spec.suspend && t.metadata.deletion_timestamp.is_none() && provisioned(t)
            })
            .map(|t| (t.name_any(), t))
            .collect();
        // Stop what is no longer wanted.
        let stale: Vec<String> = running
            .keys()
            .filter(|n| !wanted.contains_key(*n))
            .cloned()
            .collect();
        for name in stale {
            if let Some(agent) = running.remove(&name) {
                agent.stop().await;
                tracing::info!(tenant = %name, "agent stopped");
            }
        }
        for (name, tenant) in wanted {
            // One tenant's trouble (a missing Secret, say) does not hold up the others.
            if let Err(error) = self.ensure(&name, tenant, running).await {
                tracing::warn!(tenant = %name, %error, "agent not started");
            }
        }
    }

    /// Starts the tenant's agent if it is not running with its current settings, restarts it
    /// after an exit (with backoff), and refreshes its token and credentials in time.
    async fn ensure(
        &self,
        name: &str,
        tenant: &Tenant,
        running: &mut BTreeMap<String, Running>,
    ) -> Result<(), String> {
        let args = self.arguments(tenant)?;
        let fingerprint = args.join(" ");
        if let Some(agent) = running.get_mut(name) {
            // Changed settings: the old process is stopped below.
            if agent.fingerprint == fingerprint {
                if let Ok(None) = agent.child.try_wait() {
                    if agent.token_written.elapsed() <= self.token_refresh {
                        return Ok(());
                    }
                    let key = self.decryption_key(tenant).await?;
                    if key.as_ref().map(AgeKey::digest) == agent.key_digest {
                        self.write_token(tenant).await?;
                        self.write_credentials(tenant).await?;
                        self.write_report_key(tenant).await?;
                        agent.token_written = Instant::now();
                        return Ok(());
                    }
                    // Started afresh (no backoff) by the next round.
                    if let Some(old) = running.remove(name) {
                        old.stop().await;
                    }
                    tracing::info!(tenant = %name, "age key changed; agent restarted");
                    return Ok(());
                }
                let backoff = Duration::from_secs(2u64.saturating_pow(agent.failures.min(8)))
                    .min(MAX_BACKOFF);
                if agent.started.elapsed() < backoff {
                    return Ok(());
                }
                tracing::warn!(tenant = %name, failures = agent.failures + 1, "agent exited; restarting");
                self.metrics.agent_restarts.inc();
            }
        }
        // The old process (if any) stops here, before its successor starts.
        let failures = match running.remove(name) {
            Some(old) if old.fingerprint == fingerprint => old.failures + 1,
            Some(old) => {
                old.stop().await;
                0
            }
            None => 0,
        };
        self.write_token(tenant).await?;
        self.write_report_key(tenant).await?;
        let credentials = self.write_credentials(tenant).await?;
        let key = self.decryption_key(tenant).await?;
        let mut command = Command::new(&self.program);
        command.env_clear();
        if let Some(key) = &key {
            command.env(AGE_KEY_ENV, key.text());
        }
        let child = command
            .args(&args)
            .args(&credentials)
            .arg("--exit-on-stdin-eof")
            // Held open by the operator: when it dies, even by SIGKILL, the agent sees EOF.
            .stdin(Stdio::piped())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", self.dir(name).join("kubeconfig"))
            .envs(AGENT_MALLOC_ENV)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.program.display()))?;
        tracing::info!(tenant = %name, pid = child.id(), "agent started");
        running.insert(
            name.to_owned(),
            Running {
                child,
                fingerprint,
                key_digest: key.as_ref().map(AgeKey::digest),
                token_written: Instant::now(),
                started: Instant::now(),
                failures,
            },
        );
        Ok(())
    }

    /// Writes the tenant's credentials (its Secret in the operator's namespace) as files only
    /// its agent's directory holds, returning the flags that pass them.
    async fn write_credentials(&self, tenant: &Tenant) -> Result<Vec<String>, String> {
        let Some(secret) = read_credentials(&self.client, &self.operator_namespace, tenant)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(Vec::new());
        };
        let secret_name = tenant
            .spec
            .source
            .credentials_secret
            .clone()
            .unwrap_or_default();
        let data = secret.data.unwrap_or_default();
        let dir = self.dir(&tenant.name_any()).join("git");
        let mut flags = credential_flags(&secret_name, data.keys(), &dir.to_string_lossy())
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (key, value) in &data {
            if key == USERNAME_KEY {
                flags.push(GitFlags::USERNAME.into());
                flags.push(String::from_utf8_lossy(&value.0).trim().to_owned());
            } else {
                write_private(&dir, key, &value.0)?;
            }
        }
        Ok(flags)
    }

    /// Writes the tenant's report signing key (its Secret in the agent's namespace) where only
    /// its agent's directory holds it.
    async fn write_report_key(&self, tenant: &Tenant) -> Result<(), String> {
        let home = tenant.agent_namespace();
        let key = Api::<Secret>::namespaced(self.client.clone(), &home)
            .get_opt(REPORT_KEY_SECRET)
            .await
            .map_err(|e| format!("reading Secret {home}/{REPORT_KEY_SECRET}: {e}"))?
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(REPORT_KEY_FILE))
            .ok_or_else(|| {
                format!("Secret {home}/{REPORT_KEY_SECRET} holds no {REPORT_KEY_FILE}")
            })?;
        write_private(&self.dir(&tenant.name_any()), REPORT_KEY_FILE, &key.0)
    }

    /// The tenant's age key (its decryption Secret in the operator's namespace), if it has one.
    async fn decryption_key(&self, tenant: &Tenant) -> Result<Option<AgeKey>, String> {
        read_decryption_key(&self.client, &self.operator_namespace, tenant)
            .await
            .map_err(|e| e.to_string())
    }

    fn dir(&self, tenant: &str) -> PathBuf {
        self.state_dir.join(tenant)
    }

    fn arguments(&self, tenant: &Tenant) -> Result<Vec<String>, String> {
        let dir = self.dir(&tenant.name_any());
        let (cache, key) = (dir.join("cache"), dir.join(REPORT_KEY_FILE));
        let mut args = agent_args(
            tenant,
            &self.cluster,
            &self.operator_namespace,
            &AgentPaths {
                cache_dir: &cache.to_string_lossy(),
                metrics_addr: "off",
                report_key: &key.to_string_lossy(),
            },
        )
        .map_err(|e| e.to_string())?;
        args.extend(self.extra_args.iter().cloned());
        Ok(args)
    }

    /// A fresh token for the agent's ServiceAccount, and a kubeconfig pointing at it.
    async fn write_token(&self, tenant: &Tenant) -> Result<(), String> {
        let name = tenant.name_any();
        let home = tenant.agent_namespace();
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued: TokenRequest = Api::<ServiceAccount>::namespaced(self.client.clone(), &home)
            .create_subresource("token", AGENT, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("requesting a token for tenant {name}: {e}"))?;
        let token = issued
            .status
            .and_then(|s| s.token)
            .ok_or("TokenRequest returned no token")?;
        let dir = self.dir(&name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write_private(&dir, "token", token.as_bytes())?;
        let cluster = kube::config::Cluster {
            server: Some(self.server.clone()),
            certificate_authority_data: self.ca_pem.as_ref().map(|pem| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(pem)
            }),
            ..kube::config::Cluster::default()
        };
        let user = kube::config::AuthInfo {
            token_file: Some(dir.join("token").to_string_lossy().into_owned()),
            ..kube::config::AuthInfo::default()
        };
        let kubeconfig = serde_saphyr::to_string(&single_user_kubeconfig(cluster, user))
            .map_err(|e| format!("kubeconfig of tenant {name}: {e}"))?;
        write_private(&dir, "kubeconfig", kubeconfig.as_bytes())
    }
}

/// Writes `content` to `dir/file`, readable by the operator's user only, replacing any previous
/// file at once (written aside and renamed, so an agent never reads half a token).
fn write_private(dir: &Path, file: &str, content: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(file);
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut temp = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| failed(&e))?;
    temp.write_all(content).map_err(|e| failed(&e))?;
    temp.persist(&path).map_err(|e| failed(&e.error))?;
    Ok(())
}

/// Provisioned, in the layout where the agent has its own namespace (an agent started before
/// a migration finished would report where nobody reads).
fn provisioned(tenant: &Tenant) -> bool {
    tenant.status.as_ref().is_some_and(|s| {
        s.agent_namespace.as_deref() == Some(tenant.agent_namespace().as_str())
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Provisioned" && c.status == "True")
    })
}
