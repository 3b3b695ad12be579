//! `berth-operator`: command-line entry point.

mod admission;
mod apiserver;
mod audit;
mod controllers;
mod leader;
mod metrics;
mod platform;
mod provision;
mod run;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_engine::policy::Profile;
use berth_engine::{api, cluster, telemetry};
use clap::{Parser, Subcommand};

/// Berth's platform operator: onboards tenants from the platform repository, provisions their
/// namespaces, RBAC, quotas and network isolation, and runs one agent per tenant.
///
/// `run` is the operator (leader-elected): platform-repo sync, Tenant controller, agents,
/// webhook receiver. `render` shows what a Tenant provisions, `validate` checks a platform
/// repository, `crds` prints Berth's CustomResourceDefinitions, `report` writes the auditor's
/// report.
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
    /// Run the operator until SIGTERM/SIGINT: once it holds the leader Lease, the platform-repo
    /// sync (with --platform-repo), the Tenant controller, the agents (--agent-mode) and the
    /// webhook receiver (--webhook-addr).
    Run(Box<run::RunArgs>),
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
        /// The tenant's policy profile (`params.profile` of its policy data), which its
        /// namespaces' Pod Security level follows.
        #[arg(long, value_enum, default_value = "baseline")]
        profile: Profile,
    },
    /// Validate a platform repository working tree as the operator does before applying it: the
    /// Tenant documents (every YAML file under DIR/tenants) together, and the policy under
    /// DIR/policies (the bundle loads, data files are JSON objects); for the platform's CI.
    /// Exit code 0: valid; 2: problems (each named with its file); 1: unreadable.
    Validate {
        /// The platform repository's working tree.
        dir: PathBuf,
        /// The operator's namespace (reserved: no tenant may claim it).
        #[arg(long, default_value = "berth-system")]
        operator_namespace: String,
    },
    /// Gather every tenant's PolicyReports into an auditor's report: audit.html, audit.json
    /// and audit.csv. Each report is verified against its Tenant (kept in the tenant's agent
    /// namespace, signed by a key the Tenant's status publishes); those that fail are listed
    /// apart, never counted. Needs only read access to policyreports and tenants (ClusterRole
    /// berth-auditor).
    Report {
        /// Directory to write the report files to (created if missing).
        #[arg(long, default_value = ".")]
        output_dir: PathBuf,
    },
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
            profile,
        } => match render_tenant(&tenant_file, &operator_namespace, profile) {
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
        } => match validate_platform(&dir, &operator_namespace).await {
            Err(error) => {
                eprintln!("berth-operator validate: {error}");
                ExitCode::FAILURE
            }
            Ok((tenants, problems)) => {
                for problem in &problems {
                    println!("{problem}");
                }
                println!("{tenants} tenants, {} problems", problems.len());
                if problems.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                }
            }
        },
        Command::Report { output_dir } => {
            telemetry::init(cli.log_format);
            match write_audit(&output_dir).await {
                Ok((verified, unverified)) => {
                    println!(
                        "wrote {n}/audit.html, {n}/audit.json and {n}/audit.csv ({verified} verified decisions, {unverified} unverified reports)",
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
            run::run(*args).await
        }
    }
}

/// The Tenants of a platform working tree and its policy, checked as the platform sync checks
/// them: the number of Tenants and every problem.
async fn validate_platform(
    dir: &std::path::Path,
    operator_namespace: &str,
) -> Result<(usize, Vec<String>), String> {
    let files = berth_engine::source::read_local_dir(dir).map_err(|e| e.to_string())?;
    let tenants = platform::read_tenants(&files, "tenants").map_err(|e| e.to_string())?;
    let mut problems: Vec<String> = platform::validate(&tenants, operator_namespace)
        .iter()
        .map(ToString::to_string)
        .collect();
    match platform::policy::read_policy(&files, "policies") {
        Err(error) => problems.push(error.to_string()),
        Ok(policy) => {
            if let Some(bundle) = &policy.bundle {
                let name = format!("policies/{}", berth_engine::policy::config_map::BUNDLE_KEY);
                if let Err(error) = berth_engine::policy::PolicyBundle::from_bytes(
                    &name,
                    bundle,
                    serde_json::json!({}),
                )
                .await
                {
                    problems.push(error.to_string());
                }
            }
        }
    }
    Ok((tenants.len(), problems))
}

/// Lists Berth's PolicyReports in every namespace and the Tenants they are verified against,
/// and writes the three report files; returns the numbers of verified and unverified reports.
async fn write_audit(dir: &std::path::Path) -> Result<(usize, usize), String> {
    use berth_engine::api::{TENANT_LABEL, Tenant};
    use kube::api::{DynamicObject, ListParams};
    let (client, _) = cluster::connect(None).await.map_err(|e| e.to_string())?;
    let listed =
        kube::Api::<DynamicObject>::all_with(client.clone(), &berth_engine::report::resource())
            .list(&ListParams::default().labels(TENANT_LABEL))
            .await
            .map_err(|e| format!("listing PolicyReports: {e}"))?;
    let tenants = kube::Api::<Tenant>::all(client)
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing Tenants: {e}"))?;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let report = audit::AuditReport::from_policy_reports(&listed.items, &tenants.items, &now);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, body) in [
        ("audit.html", audit::html(&report)),
        ("audit.json", report.json()),
        ("audit.csv", report.csv()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok((report.decisions.len(), report.unverified.len()))
}

/// The provisioned objects of one Tenant file as multi-document YAML.
fn render_tenant(
    path: &std::path::Path,
    operator_namespace: &str,
    profile: Profile,
) -> Result<String, String> {
    let in_file = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| in_file(&e))?;
    let tenant: berth_engine::api::Tenant =
        serde_saphyr::from_str(&text).map_err(|e| in_file(&e))?;
    let context = provision::ProvisionContext {
        operator_namespace: operator_namespace.to_owned(),
    };
    // Without a cluster to ask, kinds Berth does not know by name are taken as served.
    let discovered = provision::assume_served(&tenant.spec.allowed_kinds);
    for (kind, found) in &discovered {
        eprintln!(
            "berth-operator render: {kind} taken as the namespaced resource {} (the operator asks the cluster)",
            found.resource
        );
    }
    let inputs = provision::Inputs {
        profile,
        discovered,
    };
    let desired = provision::build(&tenant, &context, &inputs).map_err(|e| in_file(&e))?;
    let mut out = String::new();
    for object in desired.objects().map_err(|e| in_file(&e))? {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&object).map_err(|e| in_file(&e))?);
    }
    Ok(out)
}
