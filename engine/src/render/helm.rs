//! Rendering a Helm chart with the real `helm template`: the chart is checked strictly first
//! ([`super::chart`]), then only its files and the values files are written to a private
//! scratch directory and helm renders them inside the render sandbox ([`super::sandbox`]): no
//! network, bounded in memory, CPU time, wall time and output, an environment holding only
//! Helm's home directories (empty, private, in the scratch directory), and never a plugin, a
//! post-renderer or `helm dependency`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::chart::{self, CheckedChart};
use super::documents::{manifest, yaml_options};
use super::sandbox::Launcher;
use super::supervise::{self, Ended, Job, Tool, error_message};
use super::{RenderError, RenderLimits, SourceFile, scratch_dir, write_scratch};
use crate::manifest::{Manifest, Origin};

/// What a chart is rendered as: `.Release.Name`, `.Release.Namespace` and the values files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// A DNS label of at most 53 characters; the agent's default is the tenant's name.
    pub name: String,
    /// The tenant's primary namespace.
    pub namespace: String,
    /// Values files, repository paths, in order (later ones win, as with `helm --values`).
    pub values: Vec<String>,
}

impl Default for Release {
    fn default() -> Self {
        Self {
            name: "release".into(),
            namespace: "default".into(),
            values: Vec::new(),
        }
    }
}

/// How to run helm, and the release charts are rendered as.
#[derive(Clone, Debug)]
pub struct Helm {
    pub program: PathBuf,
    /// Wall-time limit of one `helm template`.
    pub timeout: Duration,
    /// The program that confines helm (see [`super::sandbox`]).
    pub launcher: Launcher,
    pub release: Release,
}

impl Default for Helm {
    fn default() -> Self {
        Self {
            program: PathBuf::from("helm"),
            timeout: Duration::from_secs(60),
            launcher: Launcher::default(),
            release: Release::default(),
        }
    }
}

impl Helm {
    /// Checks the chart in `dir` of the revision, then renders it with `helm template`.
    pub fn template(
        &self,
        files: &[SourceFile],
        dir: &str,
        limits: &RenderLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        let checked = chart::check_chart(files, dir, &self.release)?;
        self.template_checked(&checked, dir, limits)
    }

    /// Renders `dir` in the sandbox exactly as [`Self::template`] does, but without the chart
    /// check: every file of the revision goes to helm. Only for tests of the sandbox itself,
    /// which must show that helm cannot reach the network even when handed what the check
    /// would refuse.
    #[doc(hidden)]
    pub fn template_unchecked_for_sandbox_tests(
        &self,
        files: &[SourceFile],
        dir: &str,
        limits: &RenderLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        let name = files
            .iter()
            .find(|f| f.path == join(dir, chart::CHART_FILE))
            .and_then(|f| serde_saphyr::from_slice::<Value>(&f.content).ok())
            .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let checked = CheckedChart {
            name,
            files: files.iter().collect(),
        };
        self.template_checked(&checked, dir, limits)
    }

    fn template_checked(
        &self,
        checked: &CheckedChart<'_>,
        dir: &str,
        limits: &RenderLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        let scratch = scratch_dir()?;
        let root = scratch.path().join("root");
        write_scratch(
            &root,
            checked
                .files
                .iter()
                .map(|f| (f.path.as_str(), f.content.as_slice())),
        )?;
        let home = scratch.path().join("helm");
        let dirs = HelmHome::new(&home);
        dirs.create()?;
        let output = self.run(&root, &root.join(dir), scratch.path(), &dirs, limits)?;
        let text = String::from_utf8(output).map_err(|_| failed("output is not UTF-8".into()))?;
        parse_output(&text, &checked.name, dir)
    }

    /// `helm template --namespace NS --include-crds --skip-tests [--values FILE]… -- RELEASE
    /// CHART`, in the sandbox, with only Helm's home variables set.
    fn run(
        &self,
        root: &Path,
        chart: &Path,
        scratch: &Path,
        dirs: &HelmHome,
        limits: &RenderLimits,
    ) -> Result<Vec<u8>, RenderError> {
        let release = &self.release;
        let mut args: Vec<OsString> = vec![
            "template".into(),
            "--namespace".into(),
            release.namespace.clone().into(),
            "--include-crds".into(),
            // Test Pods are for `helm test`, not for a cluster's desired state.
            "--skip-tests".into(),
        ];
        for values in &release.values {
            args.push("--values".into());
            args.push(root.join(values).into());
        }
        // Release and chart after `--`: neither is ever read as a flag.
        args.extend(["--".into(), release.name.clone().into(), chart.into()]);
        let job = Job {
            tool: Tool::Helm,
            launcher: &self.launcher,
            program: &self.program,
            args,
            env: dirs.env(scratch),
            current_dir: scratch,
            timeout: self.timeout,
        };
        match supervise::run(job, limits)? {
            Ended::Success(stdout) => Ok(stdout),
            Ended::Failed(stderr) => Err(failed(error_message(&stderr, root, &[]))),
        }
    }
}

/// Helm's home directories, all inside one private scratch directory; plugins in an empty one.
struct HelmHome {
    cache: PathBuf,
    config: PathBuf,
    data: PathBuf,
    plugins: PathBuf,
}

impl HelmHome {
    fn new(home: &Path) -> Self {
        Self {
            cache: home.join("cache"),
            config: home.join("config"),
            data: home.join("data"),
            plugins: home.join("plugins"),
        }
    }

    fn create(&self) -> Result<(), RenderError> {
        for dir in [&self.cache, &self.config, &self.data, &self.plugins] {
            std::fs::create_dir_all(dir).map_err(|source| RenderError::Scratch {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// helm's whole environment.
    fn env(&self, home: &Path) -> Vec<(OsString, OsString)> {
        vec![
            ("HOME".into(), home.into()),
            ("HELM_CACHE_HOME".into(), self.cache.clone().into()),
            ("HELM_CONFIG_HOME".into(), self.config.clone().into()),
            ("HELM_DATA_HOME".into(), self.data.clone().into()),
            ("HELM_PLUGINS".into(), self.plugins.clone().into()),
            (
                "HELM_REGISTRY_CONFIG".into(),
                self.config.join("registry/config.json").into(),
            ),
            (
                "HELM_REPOSITORY_CONFIG".into(),
                self.config.join("repositories.yaml").into(),
            ),
            (
                "HELM_REPOSITORY_CACHE".into(),
                self.cache.join("repository").into(),
            ),
        ]
    }
}

fn failed(message: String) -> RenderError {
    RenderError::ToolFailed {
        tool: Tool::Helm,
        message,
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Splits helm's output into objects, each with the template it came from as its origin:
/// helm starts every manifest with `---` and a `# Source: CHART/templates/x.yaml` comment,
/// where CHART is the chart's name; the origin is that template's path in the repository
/// (`DIR/templates/x.yaml`) and the manifest's index among those of that template.
pub(super) fn parse_output(
    text: &str,
    chart_name: &str,
    dir: &str,
) -> Result<Vec<Manifest>, RenderError> {
    let mut chunks: Vec<(Option<&str>, String)> = Vec::new();
    let mut current: Option<(Option<&str>, String)> = None;
    for line in text.lines() {
        if line.trim_end() == "---" {
            if let Some(chunk) = current.take() {
                chunks.push(chunk);
            }
            current = Some((None, String::new()));
            continue;
        }
        let chunk = current.get_or_insert_with(|| (None, String::new()));
        if chunk.0.is_none()
            && chunk.1.trim().is_empty()
            && let Some(source) = line.strip_prefix("# Source: ")
        {
            chunk.0 = Some(source.trim());
            continue;
        }
        chunk.1.push_str(line);
        chunk.1.push('\n');
    }
    chunks.extend(current);
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut out = Vec::new();
    for (source, body) in chunks {
        let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(&body, yaml_options())
            .map_err(|e| {
                failed(format!(
                    "unparseable output of {}: {}",
                    source.unwrap_or("helm"),
                    e.to_string().lines().next().unwrap_or_default()
                ))
            })?;
        let file = source.map_or_else(
            || format!("helm template {}", if dir.is_empty() { "." } else { dir }),
            |s| repository_path(s, chart_name, dir),
        );
        for document in documents.into_iter().filter(|d| !d.is_null()) {
            let index = counts.entry(file.clone()).or_default();
            *index += 1;
            let origin = Origin {
                file: file.clone(),
                document: *index,
            };
            out.push(manifest(origin, document)?);
        }
    }
    Ok(out)
}

/// `podinfo/templates/x.yaml` → `DIR/templates/x.yaml` for the chart named `podinfo` in DIR.
fn repository_path(source: &str, chart_name: &str, dir: &str) -> String {
    match source.split_once('/') {
        Some((name, rest)) if name == chart_name => join(dir, rest),
        _ => join(dir, source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_object_is_named_by_its_template() {
        let output = "---\n# Source: podinfo/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n# Source: podinfo/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n---\n# Source: podinfo/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n---\n# Source: podinfo/crds/widget.yaml\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n";
        let manifests = parse_output(output, "podinfo", "apps/podinfo").unwrap();
        let origins: Vec<String> = manifests.iter().map(|m| m.origin.to_string()).collect();
        assert_eq!(
            origins,
            [
                "apps/podinfo/templates/service.yaml (document 1)",
                "apps/podinfo/templates/deployment.yaml (document 1)",
                "apps/podinfo/templates/service.yaml (document 2)",
                "apps/podinfo/crds/widget.yaml (document 1)",
            ]
        );
        // At the repository root, and a sub-chart's template.
        let output = "---\n# Source: app/charts/redis/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata: {name: r}\n";
        let manifests = parse_output(output, "app", "").unwrap();
        assert_eq!(manifests[0].origin.file, "charts/redis/templates/svc.yaml");
    }

    #[test]
    fn empty_manifests_are_skipped_and_bad_ones_named() {
        let output = "---\n# Source: app/templates/empty.yaml\n\n---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\n";
        let err = parse_output(output, "app", "app").unwrap_err();
        assert_eq!(
            err.to_string(),
            "app/templates/cm.yaml (document 1): missing or empty metadata.name"
        );
    }
}
