//! `berth-agent check DIR`: the agent's render, guard rails and policy on a local directory,
//! for a tenant's own CI, with human, JSON, SARIF or JUnit output.

use std::path::PathBuf;

use berth_engine::check::{CheckError, Checked, Checker};
use berth_engine::guard::{self, Scope, TenantContext};
use berth_engine::policy::PolicyBundle;
use berth_engine::render::{Helm, Kustomize, RenderLimits};
use serde_json::json;

use crate::report;

/// Output format of `check`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
    Sarif,
    Junit,
}

/// Why `check` could not run (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum CheckCommandError {
    #[error(transparent)]
    Read(#[from] berth_engine::source::LocalError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Policy(#[from] berth_engine::policy::PolicyError),
}

pub struct CheckOptions {
    pub dir: PathBuf,
    pub tenant: TenantContext,
    pub bundle: Option<PathBuf>,
    pub policy_data: serde_json::Value,
    pub kustomize: PathBuf,
    pub helm: Helm,
    pub max_objects: usize,
}

/// Runs the checks; the caller prints the result and maps it to an exit code.
pub async fn run(options: CheckOptions) -> Result<Checked, CheckCommandError> {
    let policy = match &options.bundle {
        Some(path) => PolicyBundle::from_file(path, options.policy_data.clone()).await?,
        None => {
            PolicyBundle::from_bytes(
                "built-in default bundle",
                berth_engine::policy::DEFAULT_BUNDLE,
                options.policy_data.clone(),
            )
            .await?
        }
    };
    let checker = Checker {
        tenant: options.tenant,
        kustomize: Kustomize {
            program: options.kustomize,
            ..Kustomize::default()
        },
        helm: options.helm,
        // No key here: encrypted Secrets are checked as they are, their values redacted.
        sops: None,
        limits: RenderLimits {
            max_objects: options.max_objects,
            ..RenderLimits::default()
        },
    };
    let files = berth_engine::source::read_local_dir(&options.dir)?;
    // Without a cluster, kinds Berth does not know are taken as namespaced; the agent asks
    // the API server.
    let scope = |o: &_| guard::builtin_scope(o).unwrap_or(Scope::Namespaced);
    Ok(checker
        .check(&policy, files, "", "working tree", scope)
        .await?)
}

/// Formats a check result.
pub fn format(checked: &Checked, output: Output) -> String {
    match output {
        Output::Text => report::text(checked),
        Output::Json => serde_json::to_string_pretty(&report::json(checked)).unwrap_or_default(),
        Output::Sarif => serde_json::to_string_pretty(&report::sarif(checked)).unwrap_or_default(),
        Output::Junit => report::junit(checked),
    }
}

/// JSON for a check that could not run.
pub fn error_json(error: &CheckCommandError) -> String {
    json!({"result": "error", "error": error.to_string()}).to_string()
}
