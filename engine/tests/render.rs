//! Render step from real and hostile input: plain manifests, kustomize (the real CLI), and
//! every kind of bad file a tenant might push.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use berth_engine::render::{
    Kustomize, Launcher, RenderError, RenderLimits, SourceFile, Tool, render,
};

fn fixture(dir: &str) -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<SourceFile> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| SourceFile {
            path: e.file_name().to_string_lossy().into_owned(),
            content: std::fs::read(e.path()).unwrap(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn file(path: &str, content: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    }
}

/// The real kustomize CLI, installed by e2e/tools/install.sh (make passes its path).
fn kustomize() -> Kustomize {
    let program = std::env::var_os("BERTH_KUSTOMIZE").map(PathBuf::from).expect(
        "BERTH_KUSTOMIZE must name the kustomize binary (cargo sets it from .cargo/config.toml)",
    );
    assert!(
        program.is_file(),
        "kustomize not found at {}: run `make tools`, which installs the pinned one there",
        program.display()
    );
    Kustomize {
        program,
        launcher: Launcher::Program(env!("CARGO_BIN_EXE_berth-render-sandbox").into()),
        ..Kustomize::default()
    }
}

fn render_plain(
    files: &[SourceFile],
) -> Result<Vec<berth_engine::manifest::Manifest>, RenderError> {
    render(
        files,
        "",
        &Kustomize::default().into(),
        &RenderLimits::default(),
    )
}

#[test]
fn plain_manifests_render_in_path_order() {
    let files: Vec<SourceFile> = fixture("podinfo-kustomize")
        .into_iter()
        .filter(|f| f.path != "kustomization.yaml")
        .collect();
    let manifests = render_plain(&files).unwrap();
    let names: Vec<String> = manifests.iter().map(|m| m.reference.to_string()).collect();
    assert_eq!(
        names,
        [
            "Deployment podinfo",
            "HorizontalPodAutoscaler podinfo",
            "Service podinfo"
        ]
    );
    assert_eq!(manifests[0].origin.file, "deployment.yaml");
    assert_eq!(manifests[0].reference.api_version, "apps/v1");
}

#[test]
fn a_kustomization_is_built_with_the_real_kustomize() {
    let manifests = render(
        &fixture("podinfo-kustomize"),
        "",
        &kustomize().into(),
        &RenderLimits::default(),
    )
    .unwrap();
    let mut kinds: Vec<&str> = manifests
        .iter()
        .map(|m| m.reference.kind.as_str())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["Deployment", "HorizontalPodAutoscaler", "Service"]);
}

#[test]
fn an_overlay_may_use_a_base_elsewhere_in_the_repository() {
    let mut files: Vec<SourceFile> = fixture("podinfo-kustomize")
        .into_iter()
        .map(|f| SourceFile {
            path: format!("base/{}", f.path),
            ..f
        })
        .collect();
    files.push(file(
        "clusters/prod/kustomization.yaml",
        "resources:\n- ../../base\nnamePrefix: prod-\n",
    ));
    let manifests = render(
        &files,
        "clusters/prod",
        &kustomize().into(),
        &RenderLimits::default(),
    )
    .unwrap();
    assert!(
        manifests.iter().all(|m| m.reference.name == "prod-podinfo"),
        "{manifests:?}"
    );
}

#[test]
fn a_kustomization_reaching_outside_the_repository_is_refused_before_kustomize_runs() {
    let files = [file("kustomization.yaml", "resources:\n- ../../etc\n")];
    // A program that does not exist proves kustomize was never started.
    let never = Kustomize {
        program: "/nonexistent/kustomize".into(),
        ..Kustomize::default()
    };
    let err = render(&files, "", &never.clone().into(), &RenderLimits::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("kustomization.yaml: resources[0]: `../../etc` points outside"),
        "{err}"
    );
    let remote = [file(
        "kustomization.yaml",
        "resources:\n- https://github.com/stefanprodan/podinfo//kustomize?ref=master\n",
    )];
    let err = render(&remote, "", &never.into(), &RenderLimits::default()).unwrap_err();
    assert!(err.to_string().contains("remote reference"), "{err}");
}

#[test]
fn kustomize_errors_name_the_problem_without_scratch_paths() {
    let files = [
        file("kustomization.yaml", "resources:\n- bad.yaml\n"),
        file("bad.yaml", "kind: [unclosed\n"),
    ];
    let err = render(&files, "", &kustomize().into(), &RenderLimits::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            RenderError::ToolFailed {
                tool: Tool::Kustomize,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("bad.yaml"), "{message}");
    assert!(!message.contains("berth-render-"), "{message}");
}

#[test]
fn kustomize_errors_do_not_quote_secret_generator_values() {
    // kustomize quotes a literal without `=` in its error; the message must not.
    let files = [
        file(
            "kustomization.yaml",
            "secretGenerator:\n- name: db\n  literals:\n  - hunter2-correct-horse\n  envs: [db.env]\n",
        ),
        file("db.env", "PASSWORD=battery-staple-42\n"),
    ];
    let err = render(&files, "", &kustomize().into(), &RenderLimits::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            RenderError::ToolFailed {
                tool: Tool::Kustomize,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("invalid literal source"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!message.contains("battery-staple"), "{message}");
}

#[test]
fn missing_fields_name_file_and_document() {
    let files = [file(
        "apps/web.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
    )];
    let err = render_plain(&files).unwrap_err();
    assert_eq!(
        err.to_string(),
        "apps/web.yaml (document 2): missing or empty metadata.name"
    );
    let no_kind = [file("a.yaml", "apiVersion: v1\nmetadata: {name: x}\n")];
    assert!(
        render_plain(&no_kind)
            .unwrap_err()
            .to_string()
            .contains("missing or empty kind")
    );
}

#[test]
fn duplicates_name_both_places() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: same}\n";
    let files = [file("a.yaml", cm), file("b.yaml", cm)];
    let err = render_plain(&files).unwrap_err();
    assert_eq!(
        err.to_string(),
        "b.yaml (document 1): duplicate of ConfigMap same already declared in a.yaml (document 1)"
    );
}

#[test]
fn malformed_yaml_and_invalid_utf8_are_named() {
    let err = render_plain(&[file("bad.yaml", "kind: [unclosed\n")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bad.yaml (document 1): malformed document"),
        "{err}"
    );
    let bytes = SourceFile {
        path: "bin.yaml".into(),
        content: vec![0x6b, 0x3a, 0xff, 0xfe],
    };
    assert_eq!(
        render_plain(&[bytes]).unwrap_err().to_string(),
        "bin.yaml: not valid UTF-8"
    );
    let scalar = render_plain(&[file("s.yaml", "just a string\n")]).unwrap_err();
    assert!(scalar.to_string().contains("must be a mapping"), "{scalar}");
}

#[test]
fn a_yaml_alias_bomb_is_refused_quickly() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut previous = 'a';
    for name in 'b'..='j' {
        let refs = vec![format!("*{previous}"); 9].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        previous = name;
    }
    let started = std::time::Instant::now();
    let err = render_plain(&[file("bomb.yaml", &bomb)]).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(matches!(err, RenderError::Malformed { .. }), "{err}");
}

#[test]
fn more_objects_than_the_limit_are_refused() {
    let many: String = (0..11)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n"))
        .collect();
    let limits = RenderLimits {
        max_objects: 10,
        ..RenderLimits::default()
    };
    let err = render(
        &[file("many.yaml", &many)],
        "",
        &Kustomize::default().into(),
        &limits,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the revision renders to more than 10 objects"
    );
}

#[test]
fn lists_are_expanded_and_empty_documents_skipped() {
    let files = [file(
        "list.yaml",
        "---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n",
    )];
    let manifests = render_plain(&files).unwrap();
    assert_eq!(manifests.len(), 2);
}

#[test]
fn only_files_below_the_path_are_rendered() {
    let cm = |n: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}}}\n");
    let files = [
        file("clusters/dev/a.yaml", &cm("dev")),
        file("clusters/prod/a.yaml", &cm("prod")),
        file("README.md", "# not a manifest"),
    ];
    let manifests = render(
        &files,
        "./clusters/prod/",
        &Kustomize::default().into(),
        &RenderLimits::default(),
    )
    .unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].reference.name, "prod");
}
