//! Helm charts rendered with the real `helm template` in the render sandbox: the real podinfo
//! chart with its default and production values, templates that try to read outside the chart
//! or the cluster, CRDs named by their file, and every hostile chart refused before helm runs.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_engine::manifest::Manifest;
use berth_engine::render::{
    Helm, Launcher, Release, RenderError, RenderLimits, Renderers, SourceFile, Tool, render,
};

/// Every file below `dir`, with paths relative to it and `prefix` in front.
fn read_tree(dir: &Path, prefix: &str) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy();
                files.push(SourceFile {
                    path: format!("{prefix}{relative}"),
                    content: std::fs::read(&path).unwrap(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn podinfo_chart(prefix: &str) -> Vec<SourceFile> {
    read_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/podinfo-chart"),
        prefix,
    )
}

fn file(path: &str, content: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    }
}

/// The real helm CLI, installed by e2e/tools/install.sh (make passes its path).
fn helm_program() -> PathBuf {
    let program = std::env::var_os("BERTH_HELM")
        .map(PathBuf::from)
        .expect("BERTH_HELM must name the helm binary (run through `make`, which installs it)");
    assert!(program.is_file(), "helm not found at {}", program.display());
    program
}

fn helm(values: &[&str]) -> Helm {
    Helm {
        program: helm_program(),
        launcher: Launcher::Program(env!("CARGO_BIN_EXE_berth-render-sandbox").into()),
        release: Release {
            name: "team-a".into(),
            namespace: "team-a".into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        },
        ..Helm::default()
    }
}

fn renderers(helm: Helm) -> Renderers {
    Renderers {
        helm,
        ..Renderers::default()
    }
}

fn render_chart(files: &[SourceFile], dir: &str, helm: Helm) -> Result<Vec<Manifest>, RenderError> {
    render(files, dir, &renderers(helm), &RenderLimits::default())
}

fn summary(manifests: &[Manifest]) -> Vec<String> {
    let mut out: Vec<String> = manifests
        .iter()
        .map(|m| format!("{} ← {}", m.reference, m.origin))
        .collect();
    out.sort();
    out
}

#[test]
fn the_podinfo_chart_renders_with_its_default_values() {
    let manifests =
        render_chart(&podinfo_chart("apps/podinfo/"), "apps/podinfo", helm(&[])).unwrap();
    assert_eq!(
        summary(&manifests),
        [
            "Deployment team-a/team-a-podinfo ← apps/podinfo/templates/deployment.yaml (document 1)",
            "Service team-a/team-a-podinfo ← apps/podinfo/templates/service.yaml (document 1)",
        ]
    );
    // Rendered as the release in the tenant's namespace.
    let deployment = &manifests
        .iter()
        .find(|m| m.reference.kind == "Deployment")
        .unwrap()
        .object;
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/name"],
        "team-a-podinfo"
    );
    assert_eq!(deployment["metadata"]["namespace"], "team-a");
}

#[test]
fn the_podinfo_chart_renders_with_production_values_from_elsewhere_in_the_repository() {
    let mut files = podinfo_chart("apps/podinfo/");
    // The values file as a cluster's own, outside the chart.
    let prod = files
        .iter()
        .find(|f| f.path == "apps/podinfo/values-prod.yaml")
        .unwrap()
        .content
        .clone();
    files.push(SourceFile {
        path: "clusters/prod/podinfo.yaml".into(),
        content: prod,
    });
    let manifests = render_chart(
        &files,
        "apps/podinfo",
        helm(&["clusters/prod/podinfo.yaml"]),
    )
    .unwrap();
    assert_eq!(
        summary(&manifests),
        [
            // The chart's redis templates name no namespace: the guard rails put them in the
            // primary one.
            "ConfigMap team-a-podinfo-redis ← apps/podinfo/templates/redis/config.yaml (document 1)",
            "Deployment team-a-podinfo-redis ← apps/podinfo/templates/redis/deployment.yaml (document 1)",
            "Deployment team-a/team-a-podinfo ← apps/podinfo/templates/deployment.yaml (document 1)",
            "HorizontalPodAutoscaler team-a/team-a-podinfo ← apps/podinfo/templates/hpa.yaml (document 1)",
            "Service team-a-podinfo-redis ← apps/podinfo/templates/redis/service.yaml (document 1)",
            "Service team-a/team-a-podinfo ← apps/podinfo/templates/service.yaml (document 1)",
        ]
    );
    let deployment = manifests
        .iter()
        .find(|m| m.reference.name == "team-a-podinfo" && m.reference.kind == "Deployment")
        .unwrap();
    assert_eq!(
        deployment.object["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "256Mi"
    );
}

/// A chart whose one template reads files outside the chart (`.Files` with `..` and globs)
/// and the cluster (`lookup`).
fn nosy_chart() -> Vec<SourceFile> {
    vec![
        file("secret.yaml", "password: hunter2\n"),
        file(
            "app/Chart.yaml",
            "apiVersion: v2\nname: nosy\nversion: 0.1.0\n",
        ),
        file("app/files/own.txt", "mine"),
        file(
            "app/templates/cm.yaml",
            r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: nosy
data:
  parent: {{ .Files.Get "../secret.yaml" | quote }}
  grandparent: {{ .Files.Get "../../secret.yaml" | quote }}
  absolute: {{ .Files.Get "/etc/hostname" | quote }}
  passwd: {{ .Files.Get "../../../../../../../etc/passwd" | quote }}
  globbed: "{{ range $path, $_ := .Files.Glob "../**" }}{{ $path }},{{ end }}"
  everything: "{{ range $path, $_ := .Files.Glob "**" }}{{ $path }},{{ end }}"
  own: {{ .Files.Get "files/own.txt" | quote }}
  lookup: {{ lookup "v1" "Secret" "kube-system" "" | toJson | quote }}
  namespaces: {{ lookup "v1" "Namespace" "" "" | toJson | quote }}
"#,
        ),
    ]
}

#[test]
fn templates_see_nothing_outside_the_chart_and_no_cluster() {
    let manifests = render_chart(&nosy_chart(), "app", helm(&[])).unwrap();
    let data = &manifests[0].object["data"];
    for key in ["parent", "grandparent", "absolute", "passwd", "globbed"] {
        assert_eq!(data[key], "", "{key}: {data}");
    }
    // Globbing everything finds only the chart's own files (templates and Chart.yaml are not
    // among `.Files`).
    assert_eq!(data["everything"], "files/own.txt,", "{data}");
    assert_eq!(data["own"], "mine");
    assert_eq!(data["lookup"], "{}");
    assert_eq!(data["namespaces"], "{}");
}

#[test]
fn crds_come_out_named_by_their_file() {
    let files = vec![
        file(
            "app/Chart.yaml",
            "apiVersion: v2\nname: widgets\nversion: 0.1.0\n",
        ),
        file(
            "app/crds/widget.yaml",
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: []\n",
        ),
        file(
            "app/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
        ),
    ];
    let manifests = render_chart(&files, "app", helm(&[])).unwrap();
    assert_eq!(
        summary(&manifests),
        [
            "ConfigMap team-a ← app/templates/cm.yaml (document 1)",
            "CustomResourceDefinition widgets.example.com ← app/crds/widget.yaml (document 1)",
        ]
    );
}

/// A stand-in for helm that records that it was started, then fails.
struct Recorder {
    dir: tempfile::TempDir,
}

impl Recorder {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("helm");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho started >> {}\nexit 1\n",
                dir.path().join("started").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn helm(&self, release: &str) -> Helm {
        let mut helm = helm(&[]);
        helm.program = self.dir.path().join("helm");
        helm.release.name = release.into();
        helm
    }

    fn started(&self) -> bool {
        self.dir.path().join("started").exists()
    }
}

#[test]
fn hostile_charts_are_refused_without_running_helm() {
    let chart = "apiVersion: v2\nname: app\nversion: 0.1.0\n";
    let template = (
        "app/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    let cases: Vec<(&str, Vec<SourceFile>, &str, &str)> = vec![
        (
            "a post-renderer in the chart metadata",
            vec![file(
                "app/Chart.yaml",
                &format!("{chart}postRenderer: ./evil.sh\n"),
            )],
            "team-a",
            "app/Chart.yaml: postRenderer: not a field of Chart.yaml",
        ),
        (
            "a flag as the chart name",
            vec![file(
                "app/Chart.yaml",
                "apiVersion: v2\nname: --post-renderer=./evil.sh\nversion: 0.1.0\n",
            )],
            "team-a",
            "app/Chart.yaml: name: \"--post-renderer=./evil.sh\" is not a chart name",
        ),
        (
            "a flag as the release name",
            vec![file("app/Chart.yaml", chart)],
            "--post-renderer=./evil.sh",
            "release name \"--post-renderer=./evil.sh\": must be a DNS label",
        ),
        (
            "a remote chart repository",
            vec![file(
                "app/Chart.yaml",
                &format!(
                    "{chart}dependencies:\n- name: redis\n  version: 20.x\n  repository: oci://registry-1.docker.io/bitnamicharts\n"
                ),
            )],
            "team-a",
            "app/Chart.yaml: dependencies[0] (redis).repository: the chart would be fetched from oci://registry-1.docker.io/bitnamicharts",
        ),
        (
            "a plugin in the chart",
            vec![
                file("app/Chart.yaml", chart),
                file(
                    "app/plugins/evil/plugin.yaml",
                    "name: evil\nplatformCommand: [{command: /bin/sh}]\n",
                ),
            ],
            "team-a",
            "app/plugins/evil/plugin.yaml: a Helm plugin in a chart",
        ),
        (
            "a chart archive",
            vec![
                file("app/Chart.yaml", chart),
                file("app/charts/redis-20.0.0.tgz", "\u{1f}"),
            ],
            "team-a",
            "app/charts/redis-20.0.0.tgz: a chart archive",
        ),
        (
            "a schema reading a file outside the chart",
            vec![
                file("app/Chart.yaml", chart),
                file(
                    "app/values.schema.json",
                    r#"{"$ref": "file:///etc/passwd"}"#,
                ),
            ],
            "team-a",
            "app/values.schema.json: /$ref: \"file:///etc/passwd\": only references within the schema",
        ),
    ];
    for (what, mut files, release, expected) in cases {
        files.push(file(template.0, template.1));
        let recorder = Recorder::new();
        let err = render_chart(&files, "app", recorder.helm(release)).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{what}: {err}");
        assert!(!recorder.started(), "{what}: helm was started");
    }
    // Control: a sound chart does start the recorder.
    let recorder = Recorder::new();
    let err = render_chart(
        &[file("app/Chart.yaml", chart), file(template.0, template.1)],
        "app",
        recorder.helm("team-a"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::ToolFailed {
                tool: Tool::Helm,
                ..
            }
        ),
        "{err}"
    );
    assert!(recorder.started());
}

#[test]
fn a_chart_and_a_kustomization_together_or_values_without_a_chart_are_refused() {
    let files = [
        file("Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\n"),
        file("kustomization.yaml", "resources: []\n"),
    ];
    let err = render_chart(&files, "", helm(&[])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Chart.yaml: . holds both a Helm chart and a kustomization"),
        "{err}"
    );
    let files = [file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )];
    let err = render_chart(&files, "", helm(&["values.yaml"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "values file \"values.yaml\": values files are for Helm charts, and . holds no Chart.yaml"
    );
}

#[test]
fn helm_errors_are_reported_with_repository_paths() {
    let files = [
        file(
            "app/Chart.yaml",
            "apiVersion: v2\nname: app\nversion: 0.1.0\n",
        ),
        file("app/templates/bad.yaml", "{{ .Values.missing.field }}\n"),
    ];
    let err = render_chart(&files, "app", helm(&[])).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("helm template failed: "), "{message}");
    assert!(message.contains("app/templates/bad.yaml"), "{message}");
    assert!(
        !message.contains("berth-render-"),
        "scratch path in {message}"
    );
}

/// `charts/evil-0.1.0.tgz` made with GNU tar from `build` (which holds `evil/`), with `args`.
fn archive(build: &Path, args: &[&str]) -> SourceFile {
    let out = build.join("evil-0.1.0.tgz");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(build)
        .arg("-czf")
        .arg(&out)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success());
    SourceFile {
        path: "app/charts/evil-0.1.0.tgz".into(),
        content: std::fs::read(&out).unwrap(),
    }
}

/// Archives are refused by the check (every file of a dependency must be checkable); behind
/// that, helm itself keeps an archive's content inside the chart: a member reaching out with
/// `..` stops the render, and a symbolic link member is read as an empty file, never followed.
#[test]
fn chart_archives_are_refused_and_helm_keeps_their_content_in_the_chart() {
    let build = tempfile::tempdir().unwrap();
    let evil = build.path().join("evil/templates");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(
        build.path().join("evil/Chart.yaml"),
        "apiVersion: v2\nname: evil\nversion: 0.1.0\n",
    )
    .unwrap();
    let outside = build.path().join("outside.yaml");
    std::fs::write(
        &outside,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leaked}\n",
    )
    .unwrap();
    let chart = |archive: SourceFile| {
        vec![
            file(
                "app/Chart.yaml",
                "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- {name: evil, version: 0.1.0}\n",
            ),
            archive,
        ]
    };

    // A member named evil/../../outside.yaml.
    let traversal = chart(archive(
        build.path(),
        &[
            "-P",
            "--transform=s,^outside.yaml,evil/../../outside.yaml,",
            "evil/Chart.yaml",
            "outside.yaml",
        ],
    ));
    let err = render_chart(&traversal, "app", helm(&[])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("app/charts/evil-0.1.0.tgz: a chart archive: unpack it"),
        "{err}"
    );
    let err = helm(&[])
        .template_unchecked_for_sandbox_tests(&traversal, "app", &RenderLimits::default())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("chart illegally references parent directory"),
        "{err}"
    );

    // A template that is a symbolic link to a manifest outside.
    std::os::unix::fs::symlink(&outside, evil.join("link.yaml")).unwrap();
    let linked = chart(archive(build.path(), &["evil"]));
    let manifests = helm(&[])
        .template_unchecked_for_sandbox_tests(&linked, "app", &RenderLimits::default())
        .unwrap();
    assert!(manifests.is_empty(), "{manifests:?}");
}
