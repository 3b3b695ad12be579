//! `berth-operator`: command-line entry point.

mod audit;
mod controllers;
mod platform;
mod provision;
// Not wired into `run` yet.
#[allow(dead_code)]
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_engine::{api, cluster, telemetry};
use clap::{Parser, Subcommand};

/// Berth's platform operator: onboards tenants from the platform repository, provisions their
/// namespaces, RBAC, quotas and network isolation, and runs one agent per tenant.
///
/// `run` syncs the platform repository and runs the Tenant controller (provisioning and
/// offboarding; the agent lifecycle is not built yet). `render` shows what a Tenant provisions, `crds` prints Berth's
/// CustomResourceDefinitions, `report` writes the auditor's report.
#[derive(Debug, Parser)]
#[command(name = "berth-operator", version)]
struct Cli {
    /// Log line format.
    #[arg(
        long,
        value_enum,
        default_value_t,
        env = "BERTH_LOG_FORMAT",
        global = true
    )]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator: platform-repo sync (with --platform-repo) and the Tenant controller,
    /// until SIGTERM/SIGINT.
    Run(Box<RunArgs>),
    /// Print Berth's CustomResourceDefinitions as YAML (what deploy/crds/ holds).
    Crds,
    /// Print the objects the operator provisions for a Tenant file (namespaces, RBAC, quota,
    /// limits, network policies), without a cluster: review a platform-repo change before merging.
    Render {
        /// A YAML file with one Tenant (`berth.dev/v1alpha1`).
        tenant_file: PathBuf,
        /// Namespace of the operator, where policy ConfigMaps live.
        #[arg(long, default_value = "berth-system")]
        operator_namespace: String,
    },
    /// Validate the Tenant documents of a platform repository working tree (every YAML file under
    /// DIR/tenants) together, as the operator does before applying them; for the platform's CI.
    /// Exit code 0: valid; 2: problems (each named with its file); 1: unreadable.
    Validate {
        /// The platform repository's working tree.
        dir: PathBuf,
        /// The operator's namespace (reserved: no tenant may claim it).
        #[arg(long, default_value = "berth-system")]
        operator_namespace: String,
    },
    /// Gather every tenant's PolicyReports into an auditor's report: audit.html, audit.json
    /// and audit.csv. Needs only read access to policyreports (ClusterRole berth-auditor).
    Report {
        /// Directory to write the report files to (created if missing).
        #[arg(long, default_value = ".")]
        output_dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The operator's own namespace, where per-tenant policy ConfigMaps live.
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
    /// Time between platform repository syncs, e.g. 30s, 5m.
    #[arg(long, default_value = "60s", env = "BERTH_PLATFORM_INTERVAL")]
    platform_interval: String,
    /// PEM file of the only CAs trusted for an HTTPS platform repository.
    #[arg(long)]
    platform_ca_file: Option<PathBuf>,
    #[arg(long, requires = "platform_password_file")]
    platform_username: Option<String>,
    #[arg(long, requires = "platform_username")]
    platform_password_file: Option<PathBuf>,
    #[arg(long, requires = "platform_known_hosts")]
    platform_ssh_key: Option<PathBuf>,
    #[arg(long, requires = "platform_ssh_key")]
    platform_known_hosts: Option<PathBuf>,
    /// Directory of the platform repository cache (and, in process mode, the agents' state).
    #[arg(long, default_value = "/var/cache/berth", env = "BERTH_CACHE_DIR")]
    cache_dir: PathBuf,
    /// How tenant agents run: `process` (child processes, the local mode) or `off`.
    #[arg(long, value_enum, default_value_t = AgentMode::Off, env = "BERTH_AGENT_MODE")]
    agent_mode: AgentMode,
    /// This cluster's name, selecting Tenants' per-cluster branch/path overrides.
    #[arg(long, default_value = "default", env = "BERTH_CLUSTER")]
    cluster: String,
    /// The berth-agent program (process mode); default: beside berth-operator.
    #[arg(long)]
    agent_binary: Option<PathBuf>,
    /// The kustomize program the agents run.
    #[arg(long, default_value = "kustomize", env = "BERTH_KUSTOMIZE")]
    kustomize: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum AgentMode {
    Off,
    Process,
}

impl RunArgs {
    fn platform_source(&self) -> Result<Option<berth_engine::source::GitSource>, String> {
        use berth_engine::source::{Auth, GitSource, TreeLimits, validate_url};
        let Some(repo) = &self.platform_repo else {
            return Ok(None);
        };
        let url = validate_url(repo)?;
        let auth = Auth::from_flags(
            &url,
            self.platform_username.as_deref(),
            self.platform_password_file.as_deref(),
            self.platform_ssh_key.as_deref(),
            self.platform_known_hosts.as_deref(),
        )?;
        Ok(Some(GitSource {
            url,
            branch: self.platform_branch.clone(),
            cache_dir: self.cache_dir.join("platform"),
            auth,
            ca_file: self.platform_ca_file.clone(),
            timeout: std::time::Duration::from_secs(30),
            limits: TreeLimits::default(),
            ssh_program: "ssh".into(),
        }))
    }

    fn interval(&self) -> Result<std::time::Duration, String> {
        berth_engine::duration::parse_duration(&self.platform_interval)
            .map_err(|e| format!("--platform-interval: {e}"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => match api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("berth-operator crds: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Render {
            tenant_file,
            operator_namespace,
        } => match render_tenant(&tenant_file, &operator_namespace) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("berth-operator render: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Validate {
            dir,
            operator_namespace,
        } => {
            let tenants = berth_engine::source::read_local_dir(&dir)
                .map_err(|e| e.to_string())
                .and_then(|files| {
                    platform::read_tenants(&files, "tenants").map_err(|e| e.to_string())
                });
            match tenants {
                Err(error) => {
                    eprintln!("berth-operator validate: {error}");
                    ExitCode::FAILURE
                }
                Ok(tenants) => {
                    let problems = platform::validate(&tenants, &operator_namespace);
                    for problem in &problems {
                        println!("{problem}");
                    }
                    println!("{} tenants, {} problems", tenants.len(), problems.len());
                    if problems.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(2)
                    }
                }
            }
        }
        Command::Report { output_dir } => {
            telemetry::init(cli.log_format);
            match write_audit(&output_dir).await {
                Ok(count) => {
                    println!(
                        "wrote {n}/audit.html, {n}/audit.json and {n}/audit.csv ({count} decisions)",
                        n = output_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("berth-operator report: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => {
            telemetry::init(cli.log_format);
            let (source, interval) = match (args.platform_source(), args.interval()) {
                (Ok(source), Ok(interval)) => (source, interval),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::error!(%error, "invalid arguments");
                    return ExitCode::FAILURE;
                }
            };
            let namespace = args.namespace.clone();
            let client = match cluster::connect(None).await {
                Ok((client, version)) => {
                    tracing::info!(%version, "connected to the Kubernetes API server");
                    client
                }
                Err(error) => {
                    tracing::error!(%error, "cannot reach the Kubernetes API server");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(source) = source {
                let sync = controllers::platform::PlatformSync {
                    client: client.clone(),
                    source,
                    dir: args.platform_dir.clone(),
                    operator_namespace: namespace.clone(),
                    interval,
                };
                tokio::spawn(sync.run());
            }
            if args.agent_mode == AgentMode::Process {
                match process_agents(&args, client.clone()).await {
                    Ok(agents) => {
                        tokio::spawn(agents.run());
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot run agents");
                        return ExitCode::FAILURE;
                    }
                }
            }
            controllers::tenant::run(controllers::tenant::Context {
                client,
                provision: provision::ProvisionContext {
                    operator_namespace: namespace,
                },
            })
            .await;
            tracing::info!("shut down");
            ExitCode::SUCCESS
        }
    }
}

/// Lists Berth's PolicyReports in every namespace and writes the three report files.
async fn write_audit(dir: &std::path::Path) -> Result<usize, String> {
    use kube::api::{ApiResource, DynamicObject, ListParams};
    let (client, _) = cluster::connect(None).await.map_err(|e| e.to_string())?;
    let resource = ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
        "policyreports",
    );
    let reports = kube::Api::<DynamicObject>::all_with(client, &resource)
        .list(&ListParams::default().labels(berth_engine::report::TENANT_LABEL))
        .await
        .map_err(|e| format!("listing PolicyReports: {e}"))?;
    let values: Vec<serde_json::Value> = reports
        .items
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let report = audit::AuditReport::from_policy_reports(&values, &now);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, body) in [
        ("audit.html", audit::html(&report)),
        ("audit.json", report.json()),
        ("audit.csv", report.csv()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report.decisions.len())
}

/// The provisioned objects of one Tenant file as multi-document YAML.
fn render_tenant(path: &std::path::Path, operator_namespace: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tenant: berth_engine::api::Tenant =
        serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let context = provision::ProvisionContext {
        operator_namespace: operator_namespace.to_owned(),
    };
    let desired =
        provision::build(&tenant, &context).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut objects: Vec<serde_json::Value> = Vec::new();
    let mut add =
        |kind: &str, api_version: &str, value: Result<serde_json::Value, serde_json::Error>| {
            if let Ok(mut v) = value {
                v["apiVersion"] = api_version.into();
                v["kind"] = kind.into();
                objects.push(v);
            }
        };
    for o in &desired.namespaces {
        add("Namespace", "v1", serde_json::to_value(o));
    }
    add(
        "ServiceAccount",
        "v1",
        serde_json::to_value(&desired.service_account),
    );
    for o in &desired.roles {
        add(
            "Role",
            "rbac.authorization.k8s.io/v1",
            serde_json::to_value(o),
        );
    }
    for o in &desired.role_bindings {
        add(
            "RoleBinding",
            "rbac.authorization.k8s.io/v1",
            serde_json::to_value(o),
        );
    }
    for o in &desired.quotas {
        add("ResourceQuota", "v1", serde_json::to_value(o));
    }
    for o in &desired.limit_ranges {
        add("LimitRange", "v1", serde_json::to_value(o));
    }
    for o in &desired.network_policies {
        add(
            "NetworkPolicy",
            "networking.k8s.io/v1",
            serde_json::to_value(o),
        );
    }
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&object).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// The process-mode agent supervisor, with the API server address and CA the operator uses.
async fn process_agents(
    args: &RunArgs,
    client: kube::Client,
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
        program,
        state_dir: args.cache_dir.join("agents"),
        cluster: args.cluster.clone(),
        server: config.cluster_url.to_string(),
        ca_pem,
        extra_args: vec![
            "--kustomize".into(),
            args.kustomize.to_string_lossy().into_owned(),
        ],
    })
}
