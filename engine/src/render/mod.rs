//! Render step: turns the files of a revision into objects, either by parsing plain YAML/JSON
//! manifests or by running `kustomize build` when the sync root holds a kustomization.

mod documents;
mod kustomization;
mod kustomize;
pub mod sandbox;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::manifest::{Manifest, Origin};

pub use documents::parse_file;
pub use kustomization::KUSTOMIZATION_FILES;
pub use kustomize::Kustomize;
pub use sandbox::Launcher;

/// One file of the revision, its path relative to the repository root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    pub content: Vec<u8>,
}

/// Bounds on what one revision may render to.
#[derive(Clone, Debug)]
pub struct RenderLimits {
    /// Objects per revision; large legitimate tenants stay well below the default.
    pub max_objects: usize,
    /// Bytes of `kustomize build` output.
    pub max_kustomize_output: usize,
    /// Bytes of memory kustomize may use (its data segment, RLIMIT_DATA). Go needs about
    /// 70 MiB of it before kustomize does anything.
    pub max_kustomize_memory: u64,
    /// CPU time kustomize may use (RLIMIT_CPU), whole seconds.
    pub max_kustomize_cpu: Duration,
}

impl Default for RenderLimits {
    fn default() -> Self {
        Self {
            max_objects: 5_000,
            max_kustomize_output: 64 * 1024 * 1024,
            max_kustomize_memory: 512 * 1024 * 1024,
            max_kustomize_cpu: Duration::from_secs(30),
        }
    }
}

/// Why a revision could not be rendered. Every variant names the file (and document) at fault.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{file}: not valid UTF-8")]
    NotUtf8 { file: String },
    #[error("{origin}: malformed document: {message}")]
    Malformed { origin: Origin, message: String },
    #[error("{origin}: missing or empty {field}")]
    MissingField { origin: Origin, field: &'static str },
    #[error("{second}: duplicate of {object} already declared in {first}")]
    Duplicate {
        object: String,
        first: Origin,
        second: Origin,
    },
    #[error("the revision renders to more than {limit} objects")]
    TooManyObjects { limit: usize },
    #[error("{file}: {reason}")]
    Kustomization { file: String, reason: String },
    #[error("{file}: {field}: {reason}")]
    KustomizationField {
        file: String,
        /// Where in the kustomization, e.g. `configMapGenerator[0].files[1]`.
        field: String,
        reason: String,
    },
    #[error("kustomize build failed: {0}")]
    KustomizeFailed(String),
    #[error("kustomize exceeded its memory limit of {}", size(*limit))]
    KustomizeMemoryLimit { limit: u64 },
    #[error("kustomize exceeded its CPU-time limit of {seconds} s")]
    KustomizeCpuLimit { seconds: u64 },
    #[error("kustomize exceeded its time limit of {} s", timeout.as_secs())]
    KustomizeTimeout { timeout: Duration },
    #[error("kustomize output exceeded its limit of {}", size(*limit as u64))]
    KustomizeOutputTooLarge { limit: usize },
    #[error("the render sandbox could not run kustomize: {0}")]
    Sandbox(String),
    #[error("writing the revision to a scratch directory {path}: {source}")]
    Scratch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `512 MiB`, or bytes for a limit that is no whole number of MiB.
fn size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Renders the directory `path` of a revision (relative to the repository root, "" for the
/// root): `kustomize build` if it holds a kustomization, which may use other directories of
/// the repository; otherwise every `.yaml`, `.yml` and `.json` file below it, in path order.
pub fn render(
    files: &[SourceFile],
    path: &str,
    kustomize: &Kustomize,
    limits: &RenderLimits,
) -> Result<Vec<Manifest>, RenderError> {
    let dir = path.trim_start_matches("./").trim_matches('/');
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let manifests = if KUSTOMIZATION_FILES
        .iter()
        .any(|name| files.iter().any(|f| f.path == format!("{prefix}{name}")))
    {
        kustomize.build(files, dir, limits)?
    } else {
        let mut sorted: Vec<&SourceFile> = files
            .iter()
            .filter(|f| f.path.starts_with(&prefix) && is_manifest(&f.path))
            .collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        let mut all = Vec::new();
        for file in sorted {
            all.extend(parse_file(file)?);
            if all.len() > limits.max_objects {
                return Err(RenderError::TooManyObjects {
                    limit: limits.max_objects,
                });
            }
        }
        all
    };
    if manifests.len() > limits.max_objects {
        return Err(RenderError::TooManyObjects {
            limit: limits.max_objects,
        });
    }
    reject_duplicates(&manifests)?;
    Ok(manifests)
}

fn is_manifest(path: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| path.to_ascii_lowercase().ends_with(ext))
}

fn reject_duplicates(manifests: &[Manifest]) -> Result<(), RenderError> {
    let mut seen = BTreeMap::new();
    for m in manifests {
        if let Some(first) = seen.insert(m.reference.identity(), &m.origin) {
            return Err(RenderError::Duplicate {
                object: m.reference.to_string(),
                first: first.clone(),
                second: m.origin.clone(),
            });
        }
    }
    Ok(())
}
