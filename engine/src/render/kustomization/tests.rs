//! The strict kustomization parse on hostile and ordinary input.

use super::*;

fn revision_files(kustomization: &str) -> Vec<SourceFile> {
    let file = |path: &str, content: &str| SourceFile {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    };
    vec![
        file("app/kustomization.yaml", kustomization),
        file("app/deployment.yaml", "kind: Deployment\n"),
        file("app/patch.yaml", "kind: Deployment\n"),
        file("app/app.env", "MODE=prod\n"),
        file("app/secret.env", "PASSWORD=correct-horse\n"),
        file("app/config.txt", "x\n"),
        file("base/kustomization.yaml", "resources: []\n"),
    ]
}

fn check_text(kustomization: &str) -> Result<(Vec<u8>, Vec<String>), RenderError> {
    let files = revision_files(kustomization);
    let revision = Revision::new(&files);
    check(&files[0], &revision)
}

/// The refusal's field and reason, or a panic naming what was accepted.
fn refusal(kustomization: &str) -> (String, String) {
    match check_text(kustomization) {
        Err(RenderError::KustomizationField { field, reason, .. }) => (field, reason),
        Err(RenderError::Kustomization { reason, .. }) => (String::new(), reason),
        other => panic!("{kustomization:?} was not refused: {other:?}"),
    }
}

#[test]
fn an_ordinary_kustomization_is_accepted_and_re_encoded() {
    let (json, secrets) = check_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         namespace: web\n\
         Resources:\n- deployment.yaml\n- ../base\n\
         commonLabels: {app: web, url: 'https://example.com'}\n\
         images:\n- name: nginx\n  newName: registry.example.com:5000/nginx\n  newTag: \"1.27\"\n\
         configMapGenerator:\n- name: settings\n  literals: [URL=https://api.example.com]\n  files: [config=config.txt]\n  envs: [app.env]\n\
         secretGenerator:\n- name: creds\n  envs: [secret.env]\n  literals: [TOKEN=s3cr3t-token]\n\
         patches:\n- path: patch.yaml\n- patch: |\n    - op: add\n      path: /metadata/annotations/x\n      value: https://example.com\n  target: {kind: Deployment}\n\
         replicas:\n- name: web\n  count: 3\n\
         generatorOptions: {disableNameSuffixHash: true}\n",
    )
    .unwrap();
    let value: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(value["resources"][1], "../base");
    assert_eq!(value["replicas"][0]["count"], 3);
    assert_eq!(value["generatorOptions"]["disableNameSuffixHash"], true);
    assert!(value.get("Resources").is_none());
    for secret in ["s3cr3t-token", "correct-horse", "TOKEN=s3cr3t-token"] {
        assert!(secrets.iter().any(|s| s == secret), "{secret}: {secrets:?}");
    }
}

/// Every field kustomize loads from, in the spellings kustomize accepts, with the URL forms
/// it (or git, or ssh) would fetch.
#[test]
fn remote_references_are_refused_in_every_loading_field_and_spelling() {
    let urls = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/node",
        "HTTPS://127.0.0.1:8443/x.yaml",
        "git::https://example.com/org/repo//base?ref=v1",
        "git::git@example.com:org/repo",
        "ssh://git@127.0.0.1:2222/org/repo.git",
        "git@example.com:org/repo",
        "example.com:org/repo",
        "github.com/org/repo/base",
        "GitHub.com/org/repo",
        "file:///etc/passwd",
        "//example.com/share/x.yaml",
        "repo.git//dir?ref=main",
    ];
    // (key as written, the kustomization around key and URL, the field the refusal names)
    type Case = (&'static str, fn(&str, &str) -> String, &'static str);
    let fields: [Case; 13] = [
        ("resources", |k, u| format!("{k}:\n- {u}\n"), "resources[0]"),
        ("Bases", |k, u| format!("{k}:\n- {u}\n"), "bases[0]"),
        (
            "COMPONENTS",
            |k, u| format!("{k}:\n- {u}\n"),
            "components[0]",
        ),
        ("crds", |k, u| format!("{k}: [\"{u}\"]\n"), "crds[0]"),
        (
            "Configurations",
            |k, u| format!("{k}:\n- '{u}'\n"),
            "configurations[0]",
        ),
        (
            "patchesStrategicMerge",
            |k, u| format!("{k}:\n- {u}\n"),
            "patchesStrategicMerge[0]",
        ),
        (
            "Patches",
            |k, u| format!("{k}:\n- Path: {u}\n"),
            "patches[0].path",
        ),
        (
            "patchesJSON6902",
            |k, u| format!("{k}:\n- path: {u}\n  target: {{kind: X}}\n"),
            "patchesJson6902[0].path",
        ),
        (
            "REPLACEMENTS",
            |k, u| format!("{k}:\n- PATH: {u}\n"),
            "replacements[0].path",
        ),
        (
            "OpenAPI",
            |k, u| format!("{k}:\n  path: {u}\n"),
            "openapi.path",
        ),
        (
            "ConfigMapGenerator",
            |k, u| format!("{k}:\n- name: c\n  Files:\n  - key={u}\n"),
            "configMapGenerator[0].files[0]",
        ),
        (
            "secretgenerator",
            |k, u| format!("{k}:\n- name: s\n  ENVS: [\"{u}\"]\n"),
            "secretGenerator[0].envs[0]",
        ),
        (
            "secretGenerator",
            |k, u| format!("{k}:\n- name: s\n  env: \"{u}\"\n"),
            "secretGenerator[0].env",
        ),
    ];
    for url in urls {
        for (key, body, field) in &fields {
            let text = body(key, url);
            let (got, reason) = refusal(&text);
            assert_eq!(&got, field, "{text}");
            // Every URL form above is refused as remote, not merely as missing.
            assert!(
                reason.contains("remote reference") || reason.contains("looks like"),
                "{text}: {reason}"
            );
        }
    }
}

#[test]
fn urls_in_plain_fields_are_refused_but_data_may_hold_them() {
    let (field, reason) = refusal("namePrefix: https://evil.example/\n");
    assert_eq!(field, "namePrefix");
    assert!(reason.contains("looks like a URL"), "{reason}");
    let (field, _) = refusal("replacements:\n- source: {kind: X, fieldPath: 'git::x'}\n");
    assert_eq!(field, "replacements[0].source.fieldPath");
    check_text(
        "configMapGenerator:\n- name: c\n  literals: [A=http://x, B=git@github.com:o/r]\n\
         commonAnnotations: {docs: 'https://example.com/docs'}\n\
         images: [{name: app, newName: 'ghcr.io/org/app'}]\n",
    )
    .unwrap();
}

#[test]
fn key_spellings_are_one_field_and_may_not_repeat() {
    // Case variants reach the same field…
    let (json, _) = check_text("RESOURCES: [deployment.yaml]\nnAmEpReFiX: x-\n").unwrap();
    let value: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(value["resources"][0], "deployment.yaml");
    assert_eq!(value["namePrefix"], "x-");
    // …so two of them are a duplicate, and so is the same key twice.
    let (field, reason) = refusal("resources: [deployment.yaml]\nResources: [http://x]\n");
    assert_eq!(field, "resources");
    assert!(reason.contains("repeats"), "{reason}");
    let (_, reason) = refusal("resources: [deployment.yaml]\nresources: [http://x]\n");
    assert!(reason.contains("duplicate key `resources`"), "{reason}");
    let (field, _) =
        refusal("configMapGenerator:\n- name: c\n  files: [config.txt]\n  FILES: [http://x]\n");
    assert_eq!(field, "configMapGenerator[0].files");
    // Go folds Unicode too (ſ is s, K is k): only ASCII keys are accepted.
    let (_, reason) = refusal("reſources: [http://x]\n");
    assert!(reason.contains("not ASCII"), "{reason}");
}

#[test]
fn yaml_indirection_is_refused() {
    for (text, expected) in [
        ("x: &u http://x\nresources: [*u]\n", "anchors"),
        ("resources: *u\n", "anchor"),
        ("x: &u [a]\nresources: *u\n", "anchors"),
        ("base: &b {resources: [http://x]}\n<<: *b\n", "anchors"),
        ("<<: {resources: [http://x]}\n", "merge keys"),
        ("resources: !!seq [deployment.yaml]\n", "tags"),
        ("%YAML 1.1\n---\nresources: []\n", "malformed YAML"),
        (
            "resources: []\n---\nresources: [http://x]\n",
            "more than one YAML document",
        ),
        ("? [resources]\n: [http://x]\n", "plain string"),
    ] {
        let (_, reason) = refusal(text);
        assert!(reason.contains(expected), "{text:?}: {reason}");
    }
}

#[test]
fn unknown_and_code_running_fields_are_refused() {
    let (field, reason) = refusal("resourcez: [deployment.yaml]\n");
    assert_eq!(field, "resourcez");
    assert!(reason.contains("unknown field"), "{reason}");
    let (field, reason) = refusal("configMapGenerator:\n- name: c\n  url: http://x\n");
    assert_eq!(field, "configMapGenerator[0].url");
    assert!(reason.contains("unknown field"), "{reason}");
    for key in [
        "helmCharts",
        "HelmGlobals",
        "helmChartInflationGenerator",
        "generators",
        "Transformers",
        "validators",
    ] {
        let (_, reason) = refusal(&format!("{key}:\n- x\n"));
        assert!(
            reason.contains("runs code or fetches charts"),
            "{key}: {reason}"
        );
    }
}

#[test]
fn paths_must_stay_inside_and_exist() {
    let (field, reason) = refusal("resources:\n- ../../etc\n");
    assert_eq!(field, "resources[0]");
    assert!(reason.contains("outside the repository"), "{reason}");
    let (_, reason) = refusal("resources:\n- /etc/passwd\n");
    assert!(reason.contains("outside the repository"), "{reason}");
    let (_, reason) = refusal("resources:\n- missing.yaml\n");
    assert!(
        reason.contains("is not a file or directory of the revision"),
        "{reason}"
    );
    let (_, reason) = refusal("crds:\n- ../base\n");
    assert!(reason.contains("is not a file of the revision"), "{reason}");
    check_text("resources:\n- ../base\n- ./deployment.yaml\n").unwrap();
}

#[test]
fn inline_patches_are_data_and_file_patches_paths() {
    check_text(
        "patchesStrategicMerge:\n- patch.yaml\n- |\n  kind: Deployment\n  metadata: {name: web, annotations: {a: 'http://x'}}\n",
    )
    .unwrap();
    let (_, reason) = refusal("patchesStrategicMerge:\n- other.yaml\n");
    assert!(reason.contains("is not a file of the revision"), "{reason}");
}

#[test]
fn values_are_typed_as_kustomize_types_them() {
    let (field, reason) = refusal("replicas:\n- name: web\n  count: many\n");
    assert_eq!(field, "replicas[0].count");
    assert!(reason.contains("expected an integer"), "{reason}");
    let (field, _) = refusal("generatorOptions: {disableNameSuffixHash: yes}\n");
    assert_eq!(field, "generatorOptions.disableNameSuffixHash");
    let (field, _) = refusal("resources: deployment.yaml\n");
    assert_eq!(field, "resources");
    let (json, _) = check_text("").unwrap();
    assert_eq!(json, b"{}");
}

#[test]
fn scp_like_references_are_told_from_ordinary_values() {
    for remote in [
        "git@host:org/repo",
        "host.example:org/repo",
        "host:org/repo",
    ] {
        assert!(remote_form(remote).is_some(), "{remote}");
    }
    for plain in ["app=web", "spec.template.spec", "nginx:1.27", "a: b/c"] {
        assert!(remote_form(plain).is_none(), "{plain}");
    }
}
