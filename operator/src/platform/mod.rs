//! The platform repository's side of the operator: reading Tenant documents from a revision's
//! `tenants/` directory and validating them together (the validate step of platform-repo sync,
//! also run by `berth-operator validate` in the platform team's CI), and reading the platform's
//! own policy bundle and data.

pub mod policy;
mod validate;

use berth_engine::api::Tenant;
use berth_engine::render::{SourceFile, parse_file};

pub(crate) use validate::dns_label;
pub use validate::{TenantProblem, validate};

/// Why the platform repository's tenants could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Render(#[from] berth_engine::render::RenderError),
    #[error("{origin}: not a Tenant (berth.dev/v1alpha1): {reason}")]
    NotATenant { origin: String, reason: String },
}

/// Every Tenant document under `dir` (YAML files, multi-document), in path order.
pub fn read_tenants(
    files: &[SourceFile],
    dir: &str,
) -> Result<Vec<(String, Tenant)>, PlatformError> {
    let prefix = format!("{}/", dir.trim_matches('/'));
    let mut sorted: Vec<&SourceFile> = files
        .iter()
        .filter(|f| {
            f.path.starts_with(&prefix) && (f.path.ends_with(".yaml") || f.path.ends_with(".yml"))
        })
        .collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut tenants = Vec::new();
    for file in sorted {
        for manifest in parse_file(file)? {
            let origin = manifest.origin.to_string();
            let r = &manifest.reference;
            if r.api_version != "berth.dev/v1alpha1" || r.kind != "Tenant" {
                return Err(PlatformError::NotATenant {
                    origin,
                    reason: format!("found {} {}", r.api_version, r.kind),
                });
            }
            let tenant: Tenant =
                serde_json::from_value(manifest.object).map_err(|e| PlatformError::NotATenant {
                    origin: origin.clone(),
                    reason: e.to_string(),
                })?;
            tenants.push((origin, tenant));
        }
    }
    Ok(tenants)
}
