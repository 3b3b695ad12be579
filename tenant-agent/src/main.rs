//! `berth-agent`: command-line entry point.

use std::process::ExitCode;

use berth_engine::{cluster, telemetry};
use clap::Parser;

/// Berth's tenant agent: keeps one tenant's Git repository applied in that tenant's namespaces, with every object checked by OPA policy before apply.
///
/// This build is the project skeleton: it only checks that it can reach the Kubernetes API
/// server (kubeconfig or in-cluster) and exits 1, because its controllers are not built yet.
#[derive(Debug, Parser)]
#[command(name = "berth-agent", version)]
struct Args {
    /// Log line format.
    #[arg(long, value_enum, default_value_t, env = "BERTH_LOG_FORMAT")]
    log_format: telemetry::LogFormat,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format);
    match cluster::connect().await {
        Ok((_, version)) => {
            tracing::info!(%version, "connected to the Kubernetes API server");
            tracing::error!("berth-agent is a skeleton: its controllers are not built yet");
        }
        Err(error) => tracing::error!(%error, "cannot reach the Kubernetes API server"),
    }
    ExitCode::FAILURE
}
