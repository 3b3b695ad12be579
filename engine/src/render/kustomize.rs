//! Rendering a kustomization with the real `kustomize` CLI: every kustomization of the revision
//! is parsed strictly first ([`super::kustomization`]), then kustomize builds the revision in a
//! private scratch directory, inside the render sandbox ([`super::sandbox`]): no network, and
//! bounded in memory, CPU time, wall time and output.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::documents::{manifest, yaml_options};
use super::kustomization::{self, Checked};
use super::sandbox::Launcher;
use super::supervise::{self, Ended, Job, Tool, error_message};
use super::{RenderError, RenderLimits, SourceFile, scratch_dir, write_scratch};
use crate::manifest::{Manifest, Origin};

/// How to run kustomize.
#[derive(Clone, Debug)]
pub struct Kustomize {
    pub program: PathBuf,
    /// Wall-time limit of one `kustomize build`.
    pub timeout: Duration,
    /// The program that confines kustomize (see [`super::sandbox`]). The default, the running
    /// program itself, needs [`super::sandbox::run_launcher_if_requested`] at the start of
    /// `main`.
    pub launcher: Launcher,
}

impl Default for Kustomize {
    fn default() -> Self {
        Self {
            program: PathBuf::from("kustomize"),
            timeout: Duration::from_secs(60),
            launcher: Launcher::default(),
        }
    }
}

impl Kustomize {
    /// Checks every kustomization of the revision, writes the revision to a private scratch
    /// directory (each kustomization as the checked JSON) and runs `kustomize build` on `dir`
    /// there, sandboxed, with root-only load restrictions.
    pub fn build(
        &self,
        files: &[SourceFile],
        dir: &str,
        limits: &RenderLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        let checked = kustomization::check_all(files)?;
        self.build_checked(files, dir, limits, &checked)
    }

    /// Builds `dir` of the revision in the sandbox exactly as [`Self::build`] does, but with
    /// the tenant's kustomization files as they are, unchecked. Only for tests of the sandbox
    /// itself, which must show that kustomize cannot reach the network even when handed what
    /// the check would refuse.
    #[doc(hidden)]
    pub fn build_unchecked_for_sandbox_tests(
        &self,
        files: &[SourceFile],
        dir: &str,
        limits: &RenderLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        self.build_checked(files, dir, limits, &Checked::default())
    }

    fn build_checked(
        &self,
        files: &[SourceFile],
        dir: &str,
        limits: &RenderLimits,
        checked: &Checked,
    ) -> Result<Vec<Manifest>, RenderError> {
        let scratch = scratch_dir()?;
        let root = scratch.path().join("root");
        write_scratch(
            &root,
            files.iter().map(|file| {
                let content = checked
                    .rewritten
                    .get(&file.path)
                    .map_or(file.content.as_slice(), Vec::as_slice);
                (file.path.as_str(), content)
            }),
        )?;
        let output = self.run(&root, &root.join(dir), scratch.path(), limits, checked)?;
        let text = String::from_utf8(output).map_err(|_| failed("output is not UTF-8".into()))?;
        let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(&text, yaml_options())
            .map_err(|e| failed(format!("unparseable output: {e}")))?;
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

    /// Runs kustomize in the sandbox with a fixed argument list and an almost empty
    /// environment.
    fn run(
        &self,
        root: &Path,
        target: &Path,
        home: &Path,
        limits: &RenderLimits,
        checked: &Checked,
    ) -> Result<Vec<u8>, RenderError> {
        let mut args: Vec<OsString> = ["build", "--load-restrictor", "LoadRestrictionsRootOnly"]
            .map(OsString::from)
            .to_vec();
        args.push(target.into());
        let job = Job {
            tool: Tool::Kustomize,
            launcher: &self.launcher,
            program: &self.program,
            args,
            env: vec![
                ("HOME".into(), home.into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            current_dir: home,
            timeout: self.timeout,
        };
        match supervise::run(job, limits)? {
            Ended::Success(stdout) => Ok(stdout),
            Ended::Failed(stderr) => Err(RenderError::ToolFailed {
                tool: Tool::Kustomize,
                message: error_message(&stderr, root, &checked.secrets),
            }),
        }
    }
}

fn failed(message: String) -> RenderError {
    RenderError::ToolFailed {
        tool: Tool::Kustomize,
        message,
    }
}
