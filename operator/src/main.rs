//! `berth-operator`: command-line entry point.

use std::process::ExitCode;

use berth_engine::{api, cluster, telemetry};
use clap::{Parser, Subcommand};

/// Berth's platform operator: onboards tenants from the platform repository, provisions their
/// namespaces, RBAC, quotas and network isolation, and runs one agent per tenant.
///
/// The controllers are not built yet: `run` only checks that it can reach the Kubernetes API
/// server and exits 1. `crds` prints Berth's CustomResourceDefinitions.
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
    /// Run the operator (not built yet: checks API server connectivity, exits 1).
    Run,
    /// Print Berth's CustomResourceDefinitions as YAML (what deploy/crds/ holds).
    Crds,
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
        Command::Run => {
            telemetry::init(cli.log_format);
            match cluster::connect(None).await {
                Ok((_, version)) => {
                    tracing::info!(%version, "connected to the Kubernetes API server");
                    tracing::error!("berth-operator's controllers are not built yet");
                }
                Err(error) => tracing::error!(%error, "cannot reach the Kubernetes API server"),
            }
            ExitCode::FAILURE
        }
    }
}
