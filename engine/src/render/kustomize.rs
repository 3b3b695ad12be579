//! Rendering a kustomization with the real `kustomize` CLI, after refusing what could reach
//! outside the revision: remote bases, paths escaping the repository, Helm charts and plugins.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::documents::{manifest, yaml_options};
use super::{RenderError, RenderLimits, SourceFile};
use crate::manifest::{Manifest, Origin};

/// File names kustomize recognises as a kustomization.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields whose entries are paths (or, refused here, URLs) kustomize loads.
const PATH_FIELDS: [&str; 7] = [
    "resources",
    "bases",
    "components",
    "crds",
    "patchesStrategicMerge",
    "configurations",
    "openapi",
];

/// Fields that run code or fetch charts; Berth does not allow them.
const FORBIDDEN_FIELDS: [&str; 5] = [
    "helmCharts",
    "helmChartInflationGenerator",
    "generators",
    "transformers",
    "validators",
];

/// How to run kustomize.
#[derive(Clone, Debug)]
pub struct Kustomize {
    pub program: PathBuf,
    pub timeout: Duration,
}

impl Default for Kustomize {
    fn default() -> Self {
        Self {
            program: PathBuf::from("kustomize"),
            timeout: Duration::from_secs(60),
        }
    }
}

impl Kustomize {
    /// Checks every kustomization of the revision, writes the revision to a private scratch
    /// directory and runs `kustomize build` on `dir` there with root-only load restrictions.
    pub fn build(
        &self,
        files: &[SourceFile],
        dir: &str,
        limits: &RenderLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        for file in files {
            if is_kustomization(&file.path) {
                check_kustomization(file)?;
            }
        }
        let scratch = tempfile::Builder::new()
            .prefix("berth-render-")
            .tempdir()
            .map_err(|source| RenderError::Scratch {
                path: std::env::temp_dir(),
                source,
            })?;
        let root = scratch.path().join("root");
        for file in files {
            let path = root.join(&file.path);
            let write = || -> std::io::Result<()> {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, &file.content)
            };
            write().map_err(|source| RenderError::Scratch {
                path: path.clone(),
                source,
            })?;
        }
        let output = self.run(
            &root,
            &root.join(dir),
            scratch.path(),
            limits.max_kustomize_output,
        )?;
        let text = String::from_utf8(output)
            .map_err(|_| RenderError::KustomizeFailed("output is not UTF-8".into()))?;
        let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(&text, yaml_options())
            .map_err(|e| RenderError::KustomizeFailed(format!("unparseable output: {e}")))?;
        documents
            .into_iter()
            .filter(|d| !d.is_null())
            .enumerate()
            .map(|(i, d)| {
                let origin = Origin {
                    file: format!("kustomize build {}", if dir.is_empty() { "." } else { dir }),
                    document: i + 1,
                };
                manifest(origin, d)
            })
            .collect()
    }

    /// Runs kustomize with a fixed argument list and an empty environment, bounded in time and
    /// output size.
    fn run(
        &self,
        root: &Path,
        target: &Path,
        home: &Path,
        max_output: usize,
    ) -> Result<Vec<u8>, RenderError> {
        let mut child = Command::new(&self.program)
            .args(["build", "--load-restrictor", "LoadRestrictionsRootOnly"])
            .arg(target)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .current_dir(home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                RenderError::KustomizeFailed(format!("cannot run {}: {e}", self.program.display()))
            })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(s) = stdout {
                // One byte over the cap tells us the output was too large.
                let _ = s.take(max_output as u64 + 1).read_to_end(&mut out);
            }
            out
        });
        let err_reader = std::thread::spawn(move || {
            let mut err = Vec::new();
            if let Some(s) = stderr {
                let _ = s.take(64 * 1024).read_to_end(&mut err);
            }
            err
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() > self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RenderError::KustomizeFailed(format!(
                        "timed out after {:?}",
                        self.timeout
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(RenderError::KustomizeFailed(e.to_string())),
            }
        };
        let out = reader.join().unwrap_or_default();
        let err = err_reader.join().unwrap_or_default();
        if !status.success() {
            let message = String::from_utf8_lossy(&err);
            // Paths in messages would name our scratch directory; show them relative to the root.
            let root_prefix = format!("{}/", root.display());
            return Err(RenderError::KustomizeFailed(
                message.trim().replace(&root_prefix, ""),
            ));
        }
        if out.len() > max_output {
            return Err(RenderError::KustomizeFailed(format!(
                "output exceeds {max_output} bytes"
            )));
        }
        Ok(out)
    }
}

fn is_kustomization(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    KUSTOMIZATION_FILES.contains(&name)
}

/// Refuses remote references, escapes from the repository and code-running fields.
fn check_kustomization(file: &SourceFile) -> Result<(), RenderError> {
    let refuse = |reason: String| RenderError::Kustomization {
        file: file.path.clone(),
        reason,
    };
    let text = std::str::from_utf8(&file.content).map_err(|_| RenderError::NotUtf8 {
        file: file.path.clone(),
    })?;
    let doc: Value = serde_saphyr::from_str_with_options(text, serde_saphyr::Options::default())
        .map_err(|e| refuse(format!("malformed kustomization: {e}")))?;
    for field in FORBIDDEN_FIELDS {
        if doc.get(field).is_some() {
            return Err(refuse(format!(
                "`{field}` is not allowed (it runs code or fetches charts)"
            )));
        }
    }
    let dir = Path::new(&file.path).parent().unwrap_or(Path::new(""));
    for field in PATH_FIELDS {
        let Some(entries) = doc.get(field).and_then(Value::as_array) else {
            continue;
        };
        for entry in entries.iter().filter_map(Value::as_str) {
            if is_remote(entry) {
                return Err(refuse(format!(
                    "remote base `{entry}` in {field} is not allowed"
                )));
            }
            if escapes_root(dir, entry) {
                return Err(refuse(format!(
                    "`{entry}` in {field} points outside the repository"
                )));
            }
        }
    }
    Ok(())
}

fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.starts_with("github.com/")
        || entry.starts_with("gitlab.com/")
        || entry.starts_with("bitbucket.org/")
        || entry.contains("?ref=")
        || entry.contains(".git//")
}

/// Whether `dir/entry`, normalised lexically, leaves the repository.
fn escapes_root(dir: &Path, entry: &str) -> bool {
    let path = Path::new(entry);
    if path.is_absolute() {
        return true;
    }
    let mut depth: i64 = 0;
    for component in dir.join(path).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => depth -= 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return true,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kustomization(body: &str) -> SourceFile {
        SourceFile {
            path: "overlays/prod/kustomization.yaml".into(),
            content: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn remote_bases_are_refused() {
        for entry in [
            "https://github.com/org/repo//base?ref=v1",
            "github.com/org/repo/base",
            "git@github.com:org/repo.git",
        ] {
            let err = check_kustomization(&kustomization(&format!("resources:\n- {entry}\n")));
            assert!(
                matches!(&err, Err(RenderError::Kustomization { reason, .. }) if reason.contains("remote base")),
                "{entry}: {err:?}"
            );
        }
    }

    #[test]
    fn paths_escaping_the_root_are_refused_but_siblings_are_fine() {
        assert!(check_kustomization(&kustomization("resources:\n- ../../base\n")).is_ok());
        let err = check_kustomization(&kustomization("resources:\n- ../../../etc\n"));
        assert!(
            matches!(err, Err(RenderError::Kustomization { reason, .. }) if reason.contains("outside"))
        );
        assert!(check_kustomization(&kustomization("resources:\n- /etc/passwd\n")).is_err());
    }

    #[test]
    fn code_running_fields_are_refused() {
        let err = check_kustomization(&kustomization("helmCharts:\n- name: x\n"));
        assert!(
            matches!(err, Err(RenderError::Kustomization { reason, .. }) if reason.contains("helmCharts"))
        );
    }
}
