//! `berth-agent`: keeps one tenant's Git repository applied in that tenant's namespaces
//! (`run`), or runs the same checks on a local directory (`check`).

mod check;
mod policy_source;
mod reconcile;
mod report;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_engine::guard::TenantContext;
use berth_engine::render::{Helm, Release};
use berth_engine::telemetry;
use clap::{Args, Parser, Subcommand};

/// Berth's tenant agent: keeps one tenant's Git repository applied in that tenant's
/// namespaces, with every object checked by guard rails and OPA policy before apply.
#[derive(Debug, Parser)]
#[command(name = "berth-agent", version)]
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
    /// Reconcile the tenant's repository continuously (or once, with --once).
    Run(Box<run::RunArgs>),
    /// Render and check a local directory with the same guard rails and policy, e.g. in a
    /// tenant's CI. Exit code 0: clean; 2: refused; 1: error.
    Check(Box<CheckArgs>),
}

/// Who the tenant is and what it may deploy; shared by `run` and `check`.
#[derive(Debug, Args)]
pub struct TenantArgs {
    /// Tenant name.
    #[arg(long, env = "BERTH_TENANT")]
    tenant: String,
    /// A namespace of the tenant (repeatable); the first is the primary namespace, where
    /// objects without a namespace go and where status is kept.
    #[arg(
        long = "namespace",
        required = true,
        env = "BERTH_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// A kind the tenant may deploy, `Kind` or `group/Kind`, `*` for every namespaced kind
    /// (repeatable; default: workloads and their configuration).
    #[arg(
        long = "allowed-kind",
        env = "BERTH_ALLOWED_KINDS",
        value_delimiter = ','
    )]
    allowed_kinds: Vec<String>,
    /// An Ingress host the platform assigned to the tenant, exact or `*.domain` (repeatable;
    /// policy input: Ingresses for other hosts are denied by the default library).
    #[arg(
        long = "ingress-host",
        env = "BERTH_INGRESS_HOSTS",
        value_delimiter = ','
    )]
    ingress_hosts: Vec<String>,
    /// Another namespace the platform lets send traffic into the tenant (repeatable; policy
    /// input: the tenant's NetworkPolicies may admit it).
    #[arg(
        long = "allow-from-namespace",
        env = "BERTH_ALLOW_FROM_NAMESPACES",
        value_delimiter = ','
    )]
    allow_from_namespaces: Vec<String>,
    /// Compiled policy bundle (`opa build -t wasm`, entrypoint berth/violations); default: the
    /// built-in bundle.
    #[arg(long, env = "BERTH_POLICY_BUNDLE")]
    bundle: Option<PathBuf>,
    /// JSON file with the policy parameters the platform sets for this tenant (`data`).
    #[arg(long, env = "BERTH_POLICY_DATA")]
    policy_data: Option<PathBuf>,
    /// The kustomize program.
    #[arg(long, default_value = "kustomize", env = "BERTH_KUSTOMIZE")]
    kustomize: PathBuf,
    /// The helm program, for a directory holding a Helm chart (`Chart.yaml`).
    #[arg(long, default_value = "helm", env = "BERTH_HELM")]
    helm: PathBuf,
    /// A values file for a Helm chart, a path relative to the repository root (repeatable;
    /// later files win).
    #[arg(long = "values")]
    values: Vec<String>,
    /// The release name a Helm chart is rendered as (default: the tenant's name).
    #[arg(long, env = "BERTH_RELEASE_NAME")]
    release_name: Option<String>,
    /// Most objects one revision may render to.
    #[arg(long, default_value_t = 5000)]
    max_objects: usize,
}

impl TenantArgs {
    fn context(&self) -> TenantContext {
        let allowed_kinds = if self.allowed_kinds.is_empty() {
            berth_engine::kinds::default_allowed()
        } else {
            self.allowed_kinds.clone()
        };
        TenantContext {
            name: self.tenant.clone(),
            namespaces: self.namespaces.clone(),
            allowed_kinds,
            hosts: self.ingress_hosts.clone(),
            allow_from_namespaces: self.allow_from_namespaces.clone(),
        }
    }

    /// helm, and the release a chart is rendered as: in the primary namespace.
    fn helm(&self) -> Helm {
        Helm {
            program: self.helm.clone(),
            release: Release {
                name: self
                    .release_name
                    .clone()
                    .unwrap_or_else(|| self.tenant.clone()),
                namespace: self.namespaces.first().cloned().unwrap_or_default(),
                values: self.values.clone(),
            },
            ..Helm::default()
        }
    }

    fn policy_data(&self) -> Result<serde_json::Value, String> {
        let Some(path) = &self.policy_data else {
            return Ok(serde_json::json!({}));
        };
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The directory to check (a Helm chart, a kustomization or plain manifests); values
    /// files are relative to it.
    dir: PathBuf,
    #[command(flatten)]
    tenant: TenantArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: check::Output,
}

/// Exit codes shared by `run --once` and `check`.
pub mod exit {
    pub const CLEAN: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const REFUSED: u8 = 2;
}

fn main() -> ExitCode {
    // Re-executed as the render sandbox's launcher: that must happen before any thread starts.
    if let Some(code) = berth_engine::render::sandbox::run_launcher_if_requested() {
        return code;
    }
    agent_main()
}

#[tokio::main]
async fn agent_main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let code = match cli.command {
        Command::Run(args) => run::main(*args).await,
        Command::Check(args) => check_main(*args).await,
    };
    ExitCode::from(code)
}

async fn check_main(args: CheckArgs) -> u8 {
    let policy_data = match args.tenant.policy_data() {
        Ok(data) => data,
        Err(e) => {
            eprintln!("berth-agent check: policy data {e}");
            return exit::ERROR;
        }
    };
    let options = check::CheckOptions {
        dir: args.dir,
        tenant: args.tenant.context(),
        helm: args.tenant.helm(),
        bundle: args.tenant.bundle,
        policy_data,
        kustomize: args.tenant.kustomize,
        max_objects: args.tenant.max_objects,
    };
    match check::run(options).await {
        Ok(checked) => {
            print!("{}", check::format(&checked, args.output));
            if args.output != check::Output::Text {
                println!();
            }
            if checked.is_refused() {
                exit::REFUSED
            } else {
                exit::CLEAN
            }
        }
        Err(error) => {
            match args.output {
                check::Output::Json => println!("{}", check::error_json(&error)),
                _ => eprintln!("berth-agent check: {error}"),
            }
            exit::ERROR
        }
    }
}
