//! A tenant set up the way the operator does it (its provisioned objects from `berth-operator
//! render`, applied server-side), a token kubeconfig for its agent, Berth's CRDs; and
//! `berth-agent` run as a child process with those credentials.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use berth_engine::api::Tenant;
use berth_engine::report::ReportSigner;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::ControlPlane;

/// A provisioned tenant whose agent can be run.
pub struct TestTenant {
    pub name: String,
    pub namespace: String,
    /// The agent's own namespace: its TenantSync, Events and PolicyReports.
    pub home: String,
    kubeconfig: tempfile::NamedTempFile,
    /// The tenant's report signing key (published in its Tenant's status).
    report_key: tempfile::NamedTempFile,
    cache: tempfile::TempDir,
}

/// Installs every CRD of `deploy/crds/` (idempotent).
pub async fn install_crds(client: &Client) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let mut crds: Vec<CustomResourceDefinition> = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("reading deploy/crds") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("reading a CRD");
        crds.extend(
            serde_saphyr::from_multiple::<CustomResourceDefinition>(&text).expect("parsing CRDs"),
        );
    }
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in crds {
        let name = crd.metadata.name.clone().expect("CRD name");
        api.patch(
            &name,
            &PatchParams::apply("berth-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("applying CRD");
        for _ in 0..100 {
            let established = api
                .get(&name)
                .await
                .ok()
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl TestTenant {
    /// Sets up tenant `name` owning `namespace` as the operator would: its provisioned objects
    /// (`berth-operator render`, the operator namespace being `namespace` itself) applied as is,
    /// its Tenant (no operator manages it) with a report key published in its status.
    pub async fn provision(
        cp: &ControlPlane,
        client: &Client,
        name: &str,
        namespace: &str,
    ) -> Self {
        install_crds(client).await;
        let document = format!(
            "apiVersion: berth.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: {name}}}\nspec:\n  namespaces: [{namespace}]\n  source: {{url: 'file:///unused'}}\n"
        );
        provision_tenant(cp, &document, namespace);
        let tenant: Tenant = serde_saphyr::from_str(&document).expect("Tenant document");
        let home = tenant.agent_namespace();
        let tenants = Api::<Tenant>::all(client.clone());
        tenants
            .patch(
                name,
                &PatchParams::apply("berth-e2e").force(),
                &Patch::Apply(&tenant),
            )
            .await
            .expect("applying the Tenant");
        let (pkcs8, signer) = ReportSigner::generate().expect("report key");
        let status = serde_json::json!({"status": {
            "agentNamespace": home,
            "reportKeys": [signer.public_key()],
        }});
        tenants
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("publishing the report key");
        let report_key = tempfile::NamedTempFile::new().expect("key file");
        std::fs::write(report_key.path(), pkcs8).expect("writing the key");
        let (kubeconfig, _) = token_kubeconfig(cp, client, &home, "berth-agent").await;
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            home,
            kubeconfig,
            report_key,
            cache: tempfile::tempdir().expect("cache dir"),
        }
    }

    /// The agent's repository cache.
    pub fn cache_dir(&self) -> &std::path::Path {
        self.cache.path()
    }

    /// `berth-agent run` against `url` as this tenant's ServiceAccount, not yet started.
    pub fn command(&self, url: &str, extra: &[&str]) -> Command {
        self.command_under(Command::new(agent_binary()), url, extra)
    }

    fn command_under(&self, mut cmd: Command, url: &str, extra: &[&str]) -> Command {
        cmd.args([
            "run",
            "--tenant",
            &self.name,
            "--namespace",
            &self.namespace,
            "--home-namespace",
            &self.home,
            "--repo",
            url,
        ])
        .arg("--report-key")
        .arg(self.report_key.path())
        .arg("--cache-dir")
        .arg(self.cache.path())
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", self.kubeconfig.path())
        .env(
            "RUST_LOG",
            std::env::var("BERTH_E2E_AGENT_LOG").unwrap_or_else(|_| "info".into()),
        );
        for tool in ["BERTH_KUSTOMIZE", "BERTH_HELM", "BERTH_SOPS"] {
            if let Some(program) = std::env::var_os(tool) {
                cmd.env(tool, program);
            }
        }
        cmd
    }

    /// `berth-agent run` in the background; killed when the handle is dropped, so a failing
    /// test leaves no agent behind.
    pub fn spawn(&self, url: &str, extra: &[&str]) -> BackgroundProcess {
        BackgroundProcess(
            self.command(url, extra)
                .spawn()
                .expect("starting berth-agent"),
        )
    }

    /// `berth-agent run --once`, under GNU time so [`peak_rss_kib`] can tell its peak memory;
    /// its log is echoed for the test's output.
    pub fn run_once(&self, url: &str, extra: &[&str]) -> Output {
        self.run_once_with_env(url, extra, &[])
    }

    /// [`TestTenant::run_once`] with these environment variables set as well (the agent's
    /// test-only switches are read from the environment).
    pub fn run_once_with_env(&self, url: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut timed = Command::new("/usr/bin/time");
        timed
            .args(["--format", &format!("{PEAK_RSS_MARKER}%M"), "--"])
            .arg(agent_binary());
        let out = self
            .command_under(timed, url, &[&["--once"], extra].concat())
            .envs(env.iter().copied())
            .output()
            .expect("running berth-agent under /usr/bin/time (Debian package `time`)");
        eprintln!(
            "berth-agent exited {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

const PEAK_RSS_MARKER: &str = "berth-e2e peak RSS KiB: ";

/// The peak resident memory of a [`TestTenant::run_once`] run, in KiB.
pub fn peak_rss_kib(out: &Output) -> u64 {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix(PEAK_RSS_MARKER))
        .and_then(|n| n.trim().parse().ok())
        .expect("GNU time's peak RSS line")
}

/// Applies what `berth-operator render` provisions for the Tenant in `tenant_yaml`, the way
/// the operator applies it (server-side apply, field manager `berth`).
pub fn provision_tenant(cp: &ControlPlane, tenant_yaml: &str, operator_namespace: &str) {
    let file = tempfile::NamedTempFile::new().expect("tenant file");
    std::fs::write(file.path(), tenant_yaml).expect("writing the tenant file");
    let rendered = Command::new(binary("berth-operator"))
        .args(["render", "--operator-namespace", operator_namespace])
        .arg(file.path())
        .output()
        .expect("running berth-operator render");
    assert!(
        rendered.status.success(),
        "render: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let mut apply = cp
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--field-manager",
            "berth",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubectl apply");
    use std::io::Write;
    apply
        .stdin
        .take()
        .expect("stdin")
        .write_all(&rendered.stdout)
        .expect("writing to kubectl");
    assert!(
        apply.wait().expect("kubectl").success(),
        "kubectl apply of the provisioned objects"
    );
}

/// A background process of ours (agent, operator), killed when dropped.
pub struct BackgroundProcess(pub std::process::Child);

impl BackgroundProcess {
    /// Sends SIGTERM and waits up to 15 s; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.0.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        for _ in 0..60 {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        None
    }
}

impl Drop for BackgroundProcess {
    /// SIGTERM first, so the process can stop what it started; SIGKILL if it does not exit.
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait()
            && self.terminate().is_none()
        {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The `berth-agent` binary next to this test binary's directory (built by `cargo build`).
pub fn agent_binary() -> PathBuf {
    binary("berth-agent")
}

/// A binary of the workspace. Test binaries live in `target/<profile>/deps/`, other binaries
/// (the benchmark) beside the workspace's binaries.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .collect();
    candidates.iter().find(|b| b.is_file()).cloned().unwrap_or_else(|| {
        panic!("{name} not found in {candidates:?}: build the binaries first (`cargo build --bins`, as `make e2e` does)")
    })
}

/// A fresh token of ServiceAccount `sa` in `namespace`, and a kubeconfig that uses it.
pub async fn token_kubeconfig(
    cp: &ControlPlane,
    client: &Client,
    namespace: &str,
    sa: &str,
) -> (tempfile::NamedTempFile, String) {
    let token = request_token(client, namespace, sa).await;
    let file = tempfile::NamedTempFile::new().expect("kubeconfig file");
    write_token_kubeconfig(cp, &token, file.path());
    (file, token)
}

/// A one-hour token of the existing ServiceAccount `sa` (what the operator gives an agent).
pub async fn request_token(client: &Client, namespace: &str, sa: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued: TokenRequest = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_subresource("token", sa, &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    issued.status.and_then(|s| s.token).expect("token")
}

fn write_token_kubeconfig(cp: &ControlPlane, token: &str, path: &std::path::Path) {
    let admin = kube::config::Kubeconfig::read_from(&cp.kubeconfig).expect("admin kubeconfig");
    let cluster = admin
        .clusters
        .into_iter()
        .find_map(|c| c.cluster)
        .expect("a cluster in the admin kubeconfig");
    let user = kube::config::AuthInfo {
        token: Some(token.to_owned().into()),
        ..kube::config::AuthInfo::default()
    };
    let kubeconfig = berth_engine::cluster::single_user_kubeconfig(cluster, user);
    std::fs::write(
        path,
        serde_saphyr::to_string(&kubeconfig).expect("kubeconfig YAML"),
    )
    .expect("writing kubeconfig");
}
