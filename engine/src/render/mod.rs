//! Render step: turns the files of a revision into objects, either by parsing plain YAML/JSON
//! manifests, by running `kustomize build` when the sync root holds a kustomization, or by
//! running `helm template` when it holds a Helm chart; then decrypts the Secrets committed
//! encrypted with SOPS.

mod chart;
mod documents;
mod helm;
mod kustomization;
mod kustomize;
pub mod sandbox;
mod sops;
mod supervise;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::manifest::{Manifest, Origin};

pub use documents::parse_file;
pub use helm::{Helm, Release};
pub use kustomization::KUSTOMIZATION_FILES;
pub use kustomize::Kustomize;
pub use sandbox::Launcher;
pub use sops::{AGE_KEY_ENV, AgeKey, Sops};
pub use supervise::Tool;

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
    /// Bytes of `kustomize build` or `helm template` output.
    pub max_output: usize,
    /// Bytes of memory kustomize or helm may use (its data segment, RLIMIT_DATA). Go needs
    /// about 70 MiB of it before either does anything.
    pub max_memory: u64,
    /// CPU time kustomize or helm may use (RLIMIT_CPU), whole seconds.
    pub max_cpu: Duration,
}

impl Default for RenderLimits {
    fn default() -> Self {
        Self {
            max_objects: 5_000,
            max_output: 64 * 1024 * 1024,
            max_memory: 512 * 1024 * 1024,
            max_cpu: Duration::from_secs(30),
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
    /// A chart (or a file of it) that Berth does not render, e.g. one naming a remote
    /// dependency or holding a Helm plugin.
    #[error("{file}: {reason}")]
    Chart { file: String, reason: String },
    #[error("{file}: {field}: {reason}")]
    ChartField {
        file: String,
        /// Where in the file, e.g. `dependencies[0].repository`.
        field: String,
        reason: String,
    },
    #[error("release name {name:?}: {reason}")]
    ReleaseName { name: String, reason: String },
    #[error("values file {file:?}: {reason}")]
    ValuesFile { file: String, reason: String },
    /// A SOPS-encrypted Secret that could not be decrypted, or something else encrypted.
    #[error("{file}: {reason}")]
    Decrypt { file: String, reason: String },
    #[error("{file}: not a plain relative path")]
    NotRelative { file: String },
    #[error("{} failed: {message}", tool.command())]
    ToolFailed { tool: Tool, message: String },
    #[error("{tool} exceeded its memory limit of {}", size(*limit))]
    MemoryLimit { tool: Tool, limit: u64 },
    #[error("{tool} exceeded its CPU-time limit of {seconds} s")]
    CpuLimit { tool: Tool, seconds: u64 },
    #[error("{tool} exceeded its time limit of {} s", timeout.as_secs())]
    Timeout { tool: Tool, timeout: Duration },
    #[error("{tool} output exceeded its limit of {}", size(*limit as u64))]
    OutputTooLarge { tool: Tool, limit: usize },
    #[error("the render sandbox could not run {tool}: {message}")]
    Sandbox { tool: Tool, message: String },
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

/// The programs a revision is rendered with.
#[derive(Clone, Debug, Default)]
pub struct Renderers {
    pub kustomize: Kustomize,
    pub helm: Helm,
    /// sops and the tenant's key; `None` leaves encrypted values encrypted (`berth-agent
    /// check`, which has no key: the policy step sees every Secret's values redacted anyway).
    pub sops: Option<Sops>,
}

impl From<Kustomize> for Renderers {
    fn from(kustomize: Kustomize) -> Self {
        Self {
            kustomize,
            ..Self::default()
        }
    }
}

/// Renders the directory `path` of a revision (relative to the repository root, "" for the
/// root): `helm template` if it holds a `Chart.yaml`; `kustomize build` if it holds a
/// kustomization, which may use other directories of the repository; otherwise every
/// `.yaml`, `.yml` and `.json` file below it, in path order. Values files are for charts
/// only: naming some for any other directory is an error rather than silently ignored.
/// Secrets committed encrypted with SOPS are then decrypted (see [`sops`]).
pub fn render(
    files: &[SourceFile],
    path: &str,
    renderers: &Renderers,
    limits: &RenderLimits,
) -> Result<Vec<Manifest>, RenderError> {
    let dir = path.trim_start_matches("./").trim_matches('/');
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let has = |name: &str| files.iter().any(|f| f.path == format!("{prefix}{name}"));
    let kustomization = KUSTOMIZATION_FILES.iter().find(|name| has(name));
    let shown = if dir.is_empty() { "." } else { dir };
    if has(chart::CHART_FILE) {
        if let Some(kustomization) = kustomization {
            return Err(RenderError::Chart {
                file: format!("{prefix}{}", chart::CHART_FILE),
                reason: format!(
                    "{shown} holds both a Helm chart and a kustomization ({kustomization}); \
                     keep one, so that what is rendered is never ambiguous"
                ),
            });
        }
    } else if let Some(values) = renderers.helm.release.values.first() {
        return Err(RenderError::ValuesFile {
            file: values.clone(),
            reason: format!("values files are for Helm charts, and {shown} holds no Chart.yaml"),
        });
    }
    let mut manifests = if has(chart::CHART_FILE) {
        renderers.helm.template(files, dir, limits)?
    } else if kustomization.is_some() {
        renderers.kustomize.build(files, dir, limits)?
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
    sops::decrypt(files, &mut manifests, renderers.sops.as_ref(), limits)?;
    Ok(manifests)
}

/// A private scratch directory for one render, removed when dropped.
pub(crate) fn scratch_dir() -> Result<tempfile::TempDir, RenderError> {
    tempfile::Builder::new()
        .prefix("berth-render-")
        .tempdir()
        .map_err(|source| RenderError::Scratch {
            path: std::env::temp_dir(),
            source,
        })
}

/// Writes files of the revision (path relative to the repository root, content) below `root`,
/// as regular files only.
pub(crate) fn write_scratch<'a>(
    root: &Path,
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), RenderError> {
    for (relative, content) in files {
        if !Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(RenderError::NotRelative {
                file: relative.to_owned(),
            });
        }
        let path = root.join(relative);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, content)
        };
        write().map_err(|source| RenderError::Scratch {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
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
