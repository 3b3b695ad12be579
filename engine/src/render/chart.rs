//! The strict check of a Helm chart before `helm template` runs on it. Pure: it reads only the
//! revision's files.
//!
//! Helm's footguns, and what this check does about each (the sandbox adds no network, no
//! plugins and private, empty Helm homes whatever the check lets through):
//!
//! - **Dependencies from elsewhere.** `helm dependency` fetches charts from `https://` and
//!   `oci://` repositories, from repository aliases (`@name`, `alias:name`) configured in a
//!   Helm client, or copies them from `file://` paths. Berth never runs it: every entry of
//!   `dependencies` (`requirements.yaml` for `apiVersion: v1`) must be vendored as a chart
//!   directory under `charts/` whose `Chart.yaml` has the dependency's name. A dependency that
//!   is not is refused naming it and where it would have come from. `file://` is no exception:
//!   `helm template` reads only `charts/`, so a `file://` dependency that is not vendored would
//!   fail anyway.
//! - **Archives.** Chart archives (`charts/*.tgz`) are refused: helm reads them (in memory,
//!   refusing absolute and `..` paths itself), but their content would escape this check
//!   (plugins, remote dependencies of their own, schemas). Unpacked, every file is checked and
//!   reviewable in the repository.
//! - **Plugins.** A `plugin.yaml` anywhere in the chart is refused; helm finds no plugins anyway
//!   (`HELM_PLUGINS` is an empty directory).
//! - **Schemas that load other documents.** `values.schema.json` is validated by helm with a
//!   JSON Schema library that follows `$ref` to `file://` and `http(s)://` URLs, i.e. to any
//!   file the agent can read. Only references within the schema (`#…`) are accepted, and
//!   `$schema` must name a json-schema.org meta-schema (which helm knows without loading it).
//! - **Arguments in disguise.** The release name must be a DNS label of at most 53 characters
//!   (helm's own limit), so never `--post-renderer=…`; chart and dependency names must be plain
//!   names; `Chart.yaml` and dependency entries may hold only Helm's own fields (a
//!   `postRenderer:` key is refused, named, rather than ignored). helm is also given the release
//!   and chart after `--`, so nothing there is read as a flag.
//! - **Values files** are repository paths: plain, relative, no `..`, and present in the
//!   revision.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use serde_json::Value;

use super::helm::Release;
use super::{RenderError, SourceFile};

/// The file that makes a directory a chart.
pub const CHART_FILE: &str = "Chart.yaml";

/// Helm's longest release name.
const MAX_RELEASE_NAME: usize = 53;

/// Largest `Chart.yaml`, `requirements.yaml` or `values.schema.json` parsed.
const MAX_METADATA_BYTES: usize = 1024 * 1024;

/// The fields of `Chart.yaml` helm reads (its `Metadata`), plus `engine` and `tillerVersion`,
/// which Helm 2 charts carry and Helm 3 ignores.
const CHART_FIELDS: [&str; 19] = [
    "apiVersion",
    "name",
    "version",
    "kubeVersion",
    "description",
    "type",
    "keywords",
    "home",
    "sources",
    "dependencies",
    "maintainers",
    "icon",
    "appVersion",
    "deprecated",
    "annotations",
    "condition",
    "tags",
    "engine",
    "tillerVersion",
];

/// The fields of a dependency entry.
const DEPENDENCY_FIELDS: [&str; 8] = [
    "name",
    "version",
    "repository",
    "condition",
    "tags",
    "enabled",
    "import-values",
    "alias",
];

/// A chart that passed the check.
#[derive(Debug)]
pub(super) struct CheckedChart<'a> {
    /// The chart's name (`Chart.yaml`), which prefixes helm's `# Source:` comments.
    pub name: String,
    /// Every file of the chart directory, then the values files, each once.
    pub files: Vec<&'a SourceFile>,
}

/// Checks the chart in `dir` of the revision and the release it is rendered as; returns the
/// files helm gets. Every refusal names the file (and field) at fault.
pub(super) fn check_chart<'a>(
    files: &'a [SourceFile],
    dir: &str,
    release: &Release,
) -> Result<CheckedChart<'a>, RenderError> {
    check_release(release)?;
    let by_path: BTreeMap<&str, &SourceFile> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut out: Vec<&SourceFile> = Vec::new();
    let name = check_one(files, &by_path, dir, &mut out)?;
    let mut seen: BTreeSet<&str> = out.iter().map(|f| f.path.as_str()).collect();
    for values in &release.values {
        let refuse = |reason: &str| RenderError::ValuesFile {
            file: values.clone(),
            reason: reason.to_owned(),
        };
        if !plain_relative(values) {
            return Err(refuse(
                "must be a plain path relative to the repository root, without `..`",
            ));
        }
        let file = by_path
            .get(values.as_str())
            .ok_or_else(|| refuse("no such file in the repository"))?;
        if seen.insert(values.as_str()) {
            out.push(file);
        }
    }
    Ok(CheckedChart { name, files: out })
}

fn check_release(release: &Release) -> Result<(), RenderError> {
    let refuse = |reason: String| RenderError::ReleaseName {
        name: release.name.clone(),
        reason,
    };
    if !dns_label(&release.name) {
        return Err(refuse(
            "must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit)".into(),
        ));
    }
    if release.name.len() > MAX_RELEASE_NAME {
        return Err(refuse(format!(
            "longer than helm's limit of {MAX_RELEASE_NAME} characters"
        )));
    }
    if !dns_label(&release.namespace) {
        return Err(RenderError::ReleaseName {
            name: release.name.clone(),
            reason: format!("namespace {:?} is not a DNS label", release.namespace),
        });
    }
    Ok(())
}

/// Checks the chart in `dir` and, recursively, the charts vendored under its `charts/`;
/// appends its files to `out` and returns its name.
fn check_one<'a>(
    files: &'a [SourceFile],
    by_path: &BTreeMap<&str, &'a SourceFile>,
    dir: &str,
    out: &mut Vec<&'a SourceFile>,
) -> Result<String, RenderError> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let chart_path = format!("{prefix}{CHART_FILE}");
    let chart_file = by_path.get(chart_path.as_str()).ok_or(RenderError::Chart {
        file: chart_path.clone(),
        reason: "missing".into(),
    })?;
    let metadata = parse_mapping(chart_file)?;
    let field_error = |field: &str, reason: String| RenderError::ChartField {
        file: chart_path.clone(),
        field: field.to_owned(),
        reason,
    };
    for key in metadata.keys() {
        if !CHART_FIELDS.contains(&key.as_str()) {
            return Err(field_error(
                key,
                "not a field of Chart.yaml (custom data belongs in `annotations`)".into(),
            ));
        }
    }
    let api_version = metadata.get("apiVersion").and_then(Value::as_str);
    if !matches!(api_version, Some("v1" | "v2")) {
        return Err(field_error(
            "apiVersion",
            format!(
                "must be v2 (or v1), not {}",
                metadata.get("apiVersion").unwrap_or(&Value::Null)
            ),
        ));
    }
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !chart_name(name) {
        return Err(field_error(
            "name",
            format!(
                "{name:?} is not a chart name (letters, digits, '.', '_', '-', starting with a letter or digit)"
            ),
        ));
    }
    match metadata.get("version") {
        Some(Value::String(v)) if !v.is_empty() && !v.starts_with('-') => {}
        Some(Value::Number(_)) => {}
        other => {
            return Err(field_error(
                "version",
                format!(
                    "must be a version such as 1.2.3, not {}",
                    other.unwrap_or(&Value::Null)
                ),
            ));
        }
    }

    let chart_files: Vec<&SourceFile> = files
        .iter()
        .filter(|f| f.path.starts_with(&prefix))
        .collect();
    for file in &chart_files {
        let relative = &file.path[prefix.len()..];
        if relative.rsplit('/').next() == Some("plugin.yaml") {
            return Err(RenderError::Chart {
                file: file.path.clone(),
                reason: "a Helm plugin in a chart: Berth renders charts without plugins".into(),
            });
        }
        if let Some(entry) = relative.strip_prefix("charts/")
            && !entry.contains('/')
            && (entry.ends_with(".tgz") || entry.ends_with(".tar.gz"))
        {
            return Err(RenderError::Chart {
                file: file.path.clone(),
                reason: format!(
                    "a chart archive: unpack it into {prefix}charts/ (tar -xzf) and commit the \
                     directory, so that Berth can check every file of the dependency"
                ),
            });
        }
        if relative == "values.schema.json" {
            check_schema(file)?;
        }
    }

    // Sub-charts: each directory of `charts/` with a Chart.yaml (helm skips entries starting
    // with `_` or `.`).
    let mut vendored: BTreeMap<String, String> = BTreeMap::new();
    let sub_dirs: BTreeSet<&str> = chart_files
        .iter()
        .filter_map(|f| f.path[prefix.len()..].strip_prefix("charts/"))
        .filter_map(|rest| rest.split_once('/').map(|(d, _)| d))
        .filter(|d| !d.starts_with(['_', '.']))
        .collect();
    let mut own: Vec<&SourceFile> = chart_files
        .iter()
        .copied()
        .filter(|f| {
            !sub_dirs
                .iter()
                .any(|d| f.path.starts_with(&format!("{prefix}charts/{d}/")))
        })
        .collect();
    out.append(&mut own);
    for sub in sub_dirs {
        let sub_dir = format!("{prefix}charts/{sub}");
        if !by_path.contains_key(format!("{sub_dir}/{CHART_FILE}").as_str()) {
            return Err(RenderError::Chart {
                file: sub_dir,
                reason: "a directory of charts/ without a Chart.yaml".into(),
            });
        }
        let sub_name = check_one(files, by_path, &sub_dir, out)?;
        vendored.insert(sub_name, sub_dir);
    }

    let (dependencies, deps_file) = if api_version == Some("v1") {
        let requirements = format!("{prefix}requirements.yaml");
        match by_path.get(requirements.as_str()) {
            Some(file) => {
                let doc = parse_mapping(file)?;
                if let Some(key) = doc.keys().find(|k| k.as_str() != "dependencies") {
                    return Err(RenderError::ChartField {
                        file: requirements,
                        field: key.clone(),
                        reason: "not a field of requirements.yaml".into(),
                    });
                }
                (doc.get("dependencies").cloned(), requirements)
            }
            None => (metadata.get("dependencies").cloned(), chart_path.clone()),
        }
    } else {
        (metadata.get("dependencies").cloned(), chart_path.clone())
    };
    let dependencies = match dependencies {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(RenderError::ChartField {
                file: deps_file,
                field: "dependencies".into(),
                reason: format!("must be a list, not {other}"),
            });
        }
    };
    for (i, dependency) in dependencies.iter().enumerate() {
        check_dependency(i, dependency, &deps_file, &vendored)?;
    }
    Ok(name.to_owned())
}

fn check_dependency(
    index: usize,
    dependency: &Value,
    file: &str,
    vendored: &BTreeMap<String, String>,
) -> Result<(), RenderError> {
    let refuse = |field: String, reason: String| RenderError::ChartField {
        file: file.to_owned(),
        field,
        reason,
    };
    let Some(entry) = dependency.as_object() else {
        return Err(refuse(
            format!("dependencies[{index}]"),
            "must be a mapping".into(),
        ));
    };
    let name = entry
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let at = format!("dependencies[{index}] ({name})");
    for key in entry.keys() {
        if !DEPENDENCY_FIELDS.contains(&key.as_str()) {
            return Err(refuse(
                format!("{at}.{key}"),
                "not a field of a dependency".into(),
            ));
        }
    }
    if !chart_name(name) {
        return Err(refuse(
            format!("dependencies[{index}].name"),
            format!("{name:?} is not a chart name"),
        ));
    }
    if let Some(alias) = entry.get("alias")
        && !alias.as_str().is_some_and(chart_name)
    {
        return Err(refuse(
            format!("{at}.alias"),
            format!("{alias} is not a chart name"),
        ));
    }
    if vendored.contains_key(name) {
        return Ok(());
    }
    let repository = entry
        .get("repository")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let vendor = format!(
        "vendor it: `helm dependency build`, unpack the archive into charts/ and commit charts/{name}/"
    );
    let reason = if repository.starts_with("file://") {
        format!(
            "{repository} is copied by `helm dependency`, which Berth never runs, and \
             `helm template` reads only charts/: {vendor}"
        )
    } else if repository.contains("://") {
        format!(
            "the chart would be fetched from {repository}: Berth renders charts without \
             network access, so remote chart repositories are refused; {vendor}"
        )
    } else if repository.starts_with('@') || repository.starts_with("alias:") {
        format!(
            "{repository} names a repository of a Helm client's configuration, which Berth \
             does not have; {vendor}"
        )
    } else {
        format!("not vendored under charts/; {vendor}")
    };
    Err(refuse(format!("{at}.repository"), reason))
}

/// `$ref`s within the schema only, and well-known meta-schemas.
fn check_schema(file: &SourceFile) -> Result<(), RenderError> {
    let refuse = |reason: String| RenderError::Chart {
        file: file.path.clone(),
        reason,
    };
    if file.content.len() > MAX_METADATA_BYTES {
        return Err(refuse("larger than 1 MiB".into()));
    }
    let schema: Value =
        serde_json::from_slice(&file.content).map_err(|e| refuse(format!("not JSON: {e}")))?;
    let mut stack = vec![("".to_owned(), &schema)];
    while let Some((at, value)) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = format!("{at}/{key}");
                    let text = child.as_str();
                    match key.as_str() {
                        "$ref" | "$dynamicRef" | "$recursiveRef"
                            if !text.is_some_and(|t| t.starts_with('#')) =>
                        {
                            return Err(RenderError::ChartField {
                                file: file.path.clone(),
                                field: here,
                                reason: format!(
                                    "{child}: only references within the schema (`#/…`) are \
                                     allowed; helm would load any other from a file or URL"
                                ),
                            });
                        }
                        "$schema" if !text.is_some_and(meta_schema) => {
                            return Err(RenderError::ChartField {
                                file: file.path.clone(),
                                field: here,
                                reason: format!("{child}: must be a json-schema.org meta-schema"),
                            });
                        }
                        _ => stack.push((here, child)),
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    stack.push((format!("{at}/{i}"), item));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn meta_schema(url: &str) -> bool {
    ["http://json-schema.org/", "https://json-schema.org/"]
        .iter()
        .any(|p| url.starts_with(p))
        && !url.contains("..")
}

/// Parses a YAML mapping (`Chart.yaml`, `requirements.yaml`).
fn parse_mapping(file: &SourceFile) -> Result<serde_json::Map<String, Value>, RenderError> {
    let refuse = |reason: String| RenderError::Chart {
        file: file.path.clone(),
        reason,
    };
    if file.content.len() > MAX_METADATA_BYTES {
        return Err(refuse("larger than 1 MiB".into()));
    }
    let text = std::str::from_utf8(&file.content).map_err(|_| RenderError::NotUtf8 {
        file: file.path.clone(),
    })?;
    match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(refuse(format!("must be a mapping, not {other}"))),
        Err(e) => Err(refuse(format!(
            "malformed YAML: {}",
            e.to_string().lines().next().unwrap_or_default()
        ))),
    }
}

/// A DNS-1123 label.
fn dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A chart name as helm accepts it in practice, and nothing a shell or a flag parser would
/// read differently: ASCII letters, digits, `.`, `_`, `-`, starting with a letter or digit.
fn chart_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 250
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.contains("..")
}

/// A relative path of plain components (no `.`, `..`, root or empty parts).
pub(super) fn plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('-')
        && !path.contains("//")
        && !path.ends_with('/')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            content: content.as_bytes().to_vec(),
        }
    }

    fn release() -> Release {
        Release {
            name: "team-a".into(),
            namespace: "team-a".into(),
            values: Vec::new(),
        }
    }

    const CHART: &str = "apiVersion: v2\nname: app\nversion: 1.0.0\n";

    fn chart(extra: &[(&str, &str)]) -> Vec<SourceFile> {
        let mut files = vec![
            file("app/Chart.yaml", CHART),
            file("app/values.yaml", "replicas: 1\n"),
            file("app/templates/cm.yaml", "kind: ConfigMap\n"),
        ];
        for (path, content) in extra {
            if let Some(existing) = files.iter_mut().find(|f| f.path == *path) {
                existing.content = content.as_bytes().to_vec();
            } else {
                files.push(file(path, content));
            }
        }
        files
    }

    fn refusal(files: &[SourceFile], release: &Release) -> String {
        check_chart(files, "app", release).unwrap_err().to_string()
    }

    #[test]
    fn a_plain_chart_with_values_passes_and_only_its_files_go_to_helm() {
        let mut files = chart(&[("clusters/prod/values.yaml", "replicas: 3\n")]);
        files.push(file("secrets/other-team.yaml", "password: x\n"));
        let release = Release {
            values: vec!["clusters/prod/values.yaml".into()],
            ..release()
        };
        let checked = check_chart(&files, "app", &release).unwrap();
        assert_eq!(checked.name, "app");
        let paths: Vec<&str> = checked.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "app/Chart.yaml",
                "app/values.yaml",
                "app/templates/cm.yaml",
                "clusters/prod/values.yaml"
            ]
        );
    }

    #[test]
    fn release_names_that_could_be_flags_or_are_not_labels_are_refused() {
        for name in [
            "--post-renderer=/bin/sh",
            "-x",
            "Team",
            "a_b",
            "a/b",
            "",
            &"a".repeat(54),
        ] {
            let release = Release {
                name: name.into(),
                ..release()
            };
            let message = refusal(&chart(&[]), &release);
            assert!(message.starts_with("release name"), "{name}: {message}");
        }
    }

    #[test]
    fn chart_metadata_with_unknown_fields_or_flag_like_names_is_refused() {
        let cases = [
            (
                "apiVersion: v2\nname: app\nversion: 1.0.0\npostRenderer: ./evil.sh\n",
                "app/Chart.yaml: postRenderer: not a field of Chart.yaml",
            ),
            (
                "apiVersion: v2\nname: --post-renderer=./evil.sh\nversion: 1.0.0\n",
                "app/Chart.yaml: name: \"--post-renderer=./evil.sh\" is not a chart name",
            ),
            (
                "apiVersion: v2\nname: app\nversion: --post-renderer\n",
                "app/Chart.yaml: version: must be a version",
            ),
            (
                "apiVersion: v3\nname: app\nversion: 1.0.0\n",
                "app/Chart.yaml: apiVersion: must be v2 (or v1)",
            ),
            ("- a\n- b\n", "app/Chart.yaml: must be a mapping"),
            (
                "apiVersion: v2\nname: app\nname: other\nversion: 1.0.0\n",
                "app/Chart.yaml: malformed YAML",
            ),
            (
                "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: db\n  repository: https://x\n  postRenderer: x\n",
                "app/Chart.yaml: dependencies[0] (db).postRenderer: not a field of a dependency",
            ),
        ];
        for (chart_yaml, expected) in cases {
            let message = refusal(&chart(&[("app/Chart.yaml", chart_yaml)]), &release());
            assert!(message.starts_with(expected), "{chart_yaml}: {message}");
        }
    }

    #[test]
    fn remote_dependencies_are_refused_naming_the_dependency_and_repository() {
        let cases = [
            (
                "https://charts.bitnami.com/bitnami",
                "fetched from https://charts.bitnami.com/bitnami",
            ),
            (
                "oci://registry-1.docker.io/bitnamicharts",
                "fetched from oci://",
            ),
            (
                "@bitnami",
                "@bitnami names a repository of a Helm client's configuration",
            ),
            ("alias:bitnami", "alias:bitnami names a repository"),
            (
                "file://../redis",
                "file://../redis is copied by `helm dependency`",
            ),
            ("", "not vendored under charts/"),
        ];
        for (repository, expected) in cases {
            let chart_yaml = format!(
                "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: redis\n  version: 1.x\n  repository: '{repository}'\n"
            );
            let message = refusal(&chart(&[("app/Chart.yaml", &chart_yaml)]), &release());
            assert!(
                message.starts_with("app/Chart.yaml: dependencies[0] (redis).repository: "),
                "{message}"
            );
            assert!(message.contains(expected), "{repository}: {message}");
        }
        // Helm 2 charts keep their dependencies in requirements.yaml.
        let files = chart(&[
            (
                "app/Chart.yaml",
                "apiVersion: v1\nname: app\nversion: 1.0.0\n",
            ),
            (
                "app/requirements.yaml",
                "dependencies:\n- name: redis\n  repository: https://charts.example\n",
            ),
        ]);
        assert!(
            refusal(&files, &release())
                .starts_with("app/requirements.yaml: dependencies[0] (redis).repository: the chart would be fetched from https://charts.example"),
        );
    }

    #[test]
    fn vendored_dependencies_pass_and_are_checked_themselves() {
        let chart_yaml = "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: redis\n  version: 1.x\n  repository: oci://registry.example/charts\n";
        let files = chart(&[
            ("app/Chart.yaml", chart_yaml),
            (
                "app/charts/redis/Chart.yaml",
                "apiVersion: v2\nname: redis\nversion: 1.2.0\n",
            ),
            ("app/charts/redis/templates/svc.yaml", "kind: Service\n"),
        ]);
        let checked = check_chart(&files, "app", &release()).unwrap();
        assert_eq!(checked.files.len(), 5);
        // The vendored chart's own dependencies are held to the same rules.
        let files = chart(&[
            ("app/Chart.yaml", chart_yaml),
            (
                "app/charts/redis/Chart.yaml",
                "apiVersion: v2\nname: redis\nversion: 1.2.0\ndependencies:\n- {name: common, repository: 'https://charts.example'}\n",
            ),
        ]);
        assert!(
            refusal(&files, &release()).starts_with(
                "app/charts/redis/Chart.yaml: dependencies[0] (common).repository: the chart would be fetched"
            )
        );
        // A directory of charts/ that is no chart.
        let files = chart(&[("app/charts/junk/readme.txt", "x")]);
        assert_eq!(
            refusal(&files, &release()),
            "app/charts/junk: a directory of charts/ without a Chart.yaml"
        );
    }

    #[test]
    fn archives_and_plugins_are_refused_naming_the_file() {
        let files = chart(&[("app/charts/redis-1.2.0.tgz", "\u{1f}\u{8b}")]);
        let message = refusal(&files, &release());
        assert!(
            message.starts_with("app/charts/redis-1.2.0.tgz: a chart archive: unpack it"),
            "{message}"
        );
        for path in [
            "app/plugin.yaml",
            "app/files/evil/plugin.yaml",
            "app/charts/redis/plugin.yaml",
        ] {
            let mut files = chart(&[(path, "name: evil\ncommand: /bin/sh\n")]);
            if path.contains("charts/redis") {
                files.push(file(
                    "app/charts/redis/Chart.yaml",
                    "apiVersion: v2\nname: redis\nversion: 1.0.0\n",
                ));
            }
            let message = refusal(&files, &release());
            assert!(
                message.starts_with(&format!("{path}: a Helm plugin in a chart")),
                "{message}"
            );
        }
    }

    #[test]
    fn schemas_loading_other_documents_are_refused() {
        let cases = [
            r#"{"$ref": "file:///etc/passwd"}"#,
            r#"{"properties": {"a": {"$ref": "https://example.com/s.json"}}}"#,
            r#"{"properties": {"a": {"$ref": "other.json"}}}"#,
            r#"{"$schema": "file:///etc/hostname"}"#,
            r#"{"allOf": [{"$dynamicRef": "../x.json"}]}"#,
        ];
        for schema in cases {
            let files = chart(&[("app/values.schema.json", schema)]);
            let message = refusal(&files, &release());
            assert!(
                message.starts_with("app/values.schema.json: /"),
                "{schema}: {message}"
            );
        }
        let fine = r##"{"$schema": "https://json-schema.org/draft-07/schema#", "definitions": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/definitions/a"}}}"##;
        check_chart(
            &chart(&[("app/values.schema.json", fine)]),
            "app",
            &release(),
        )
        .unwrap();
    }

    #[test]
    fn values_files_must_be_plain_paths_present_in_the_repository() {
        for (values, expected) in [
            ("../outside.yaml", "must be a plain path"),
            ("/etc/passwd", "must be a plain path"),
            ("./app/values.yaml", "must be a plain path"),
            ("--post-renderer=x", "must be a plain path"),
            ("https://example.com/values.yaml", "must be a plain path"),
            ("clusters/none.yaml", "no such file in the repository"),
        ] {
            let release = Release {
                values: vec![values.into()],
                ..release()
            };
            let message = refusal(&chart(&[]), &release);
            assert_eq!(
                message,
                format!("values file {values:?}: {expected}").replace(
                    "must be a plain path",
                    "must be a plain path relative to the repository root, without `..`"
                ),
            );
        }
    }
}
