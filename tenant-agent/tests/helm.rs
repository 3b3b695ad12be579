//! Helm charts through the whole agent pipeline, with the real helm and the agent binary as the
//! sandbox launcher: `berth-agent check` on the real podinfo chart under the default and the
//! restricted profile, a chart with CRDs refused by the guard rails naming the file, hostile
//! charts refused before helm starts, and helm kept off the network even when the chart check
//! is bypassed.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_engine::render::{Helm, Launcher, Release, RenderLimits, SourceFile};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_berth-agent");

fn helm_program() -> PathBuf {
    let program = std::env::var_os("BERTH_HELM")
        .map(PathBuf::from)
        .expect("BERTH_HELM must name the helm binary (run through `make`, which installs it)");
    assert!(program.is_file(), "helm not found at {}", program.display());
    program
}

fn podinfo_chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/podinfo-chart")
}

fn check(dir: &Path, extra: &[&str]) -> Output {
    Command::new(AGENT)
        .arg("check")
        .arg(dir)
        .args(["--tenant", "team-a", "--namespace", "team-a"])
        .args(extra)
        .env("BERTH_HELM", helm_program())
        .output()
        .unwrap()
}

fn restricted() -> tempfile::NamedTempFile {
    let data = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(data.path(), r#"{"params": {"profile": "restricted"}}"#).unwrap();
    data
}

/// The rules the upstream podinfo Deployment breaks under the restricted profile.
const RESTRICTED_RULES: [&str; 4] = [
    "pod-security/no-privilege-escalation",
    "pod-security/run-as-non-root",
    "pod-security/require-seccomp",
    "pod-security/restricted-capabilities",
];

fn rules(json: &Value, severity: &str) -> Vec<String> {
    let mut rules: Vec<String> = json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["severity"] == severity)
        .map(|v| {
            format!(
                "{}/{}",
                v["policy"].as_str().unwrap(),
                v["rule"].as_str().unwrap()
            )
        })
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

#[test]
fn check_passes_the_podinfo_chart_with_warnings_and_refuses_it_under_restricted() {
    let out = check(&podinfo_chart(), &["--output", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["result"], "clean");
    assert_eq!(json["objects"], 2, "{json}");
    let warned = rules(&json, "warn");
    for rule in RESTRICTED_RULES {
        assert!(warned.contains(&rule.to_owned()), "{rule}: {warned:?}");
    }
    // Each finding names the template it came from.
    let origins: Vec<&str> = json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["origin"]["file"].as_str().unwrap())
        .collect();
    assert!(
        origins.iter().all(|o| *o == "templates/deployment.yaml"),
        "{origins:?}"
    );

    let data = restricted();
    let out = check(
        &podinfo_chart(),
        &["--policy-data", data.path().to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for rule in RESTRICTED_RULES {
        assert!(
            text.contains(&format!(
                "DENIED   Deployment team-a/team-a-podinfo (templates/deployment.yaml (document 1)): [{rule}]"
            )),
            "{rule}: {text}"
        );
    }
}

#[test]
fn check_renders_production_values_and_a_release_name() {
    let out = check(
        &podinfo_chart(),
        &[
            "--values",
            "values-prod.yaml",
            "--release-name",
            "shop",
            "--output",
            "json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["objects"], 6, "{json}");
    let objects: Vec<&str> = json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["object"]["name"].as_str().unwrap())
        .collect();
    assert!(objects.contains(&"shop-podinfo-redis"), "{objects:?}");

    // A values file the repository does not have is an error naming it.
    let out = check(&podinfo_chart(), &["--values", "values-staging.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("values file \"values-staging.yaml\": no such file in the repository"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_chart_with_crds_is_refused_by_the_guard_rails_naming_the_crd_and_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("crds")).unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: widgets\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("crds/widget.yaml"),
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: []\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    )
    .unwrap();
    let out = check(dir.path(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "REFUSED  CustomResourceDefinition widgets.example.com (crds/widget.yaml (document 1)): "
        ),
        "{text}"
    );
    assert!(text.contains("1 refused by guard rails"), "{text}");
}

#[test]
fn hostile_charts_are_refused_by_check_before_helm_starts() {
    let recorder = tempfile::tempdir().unwrap();
    let marker = recorder.path().join("started");
    let fake = recorder.path().join("helm");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nexec {} \"$@\"\n",
            marker.display(),
            helm_program().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |dir: &Path, extra: &[&str]| {
        Command::new(AGENT)
            .arg("check")
            .arg(dir)
            .args(["--tenant", "team-a", "--namespace", "team-a", "--helm"])
            .arg(&fake)
            .args(extra)
            .output()
            .unwrap()
    };
    let chart = |files: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    };
    let sound = "apiVersion: v2\nname: app\nversion: 0.1.0\n";
    let cm = (
        "templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    let cases = [
        (
            chart(&[
                ("Chart.yaml", &format!("{sound}postRenderer: /bin/sh\n")),
                cm,
            ]),
            vec![],
            "Chart.yaml: postRenderer: not a field of Chart.yaml",
        ),
        (
            chart(&[("Chart.yaml", sound), cm]),
            vec!["--release-name=--post-renderer=/bin/sh"],
            "release name \"--post-renderer=/bin/sh\": must be a DNS label",
        ),
        (
            chart(&[
                (
                    "Chart.yaml",
                    &format!(
                        "{sound}dependencies:\n- name: redis\n  version: 20.x\n  repository: https://charts.bitnami.com/bitnami\n"
                    ),
                ),
                cm,
            ]),
            vec![],
            "Chart.yaml: dependencies[0] (redis).repository: the chart would be fetched from https://charts.bitnami.com/bitnami",
        ),
        (
            chart(&[
                ("Chart.yaml", sound),
                ("plugin.yaml", "name: x\ncommand: /bin/sh\n"),
                cm,
            ]),
            vec![],
            "plugin.yaml: a Helm plugin in a chart",
        ),
        (
            chart(&[
                ("Chart.yaml", sound),
                (
                    "values.schema.json",
                    r#"{"properties": {"x": {"$ref": "file:///etc/passwd"}}}"#,
                ),
                cm,
            ]),
            vec![],
            "values.schema.json: /properties/x/$ref",
        ),
    ];
    for (dir, extra, expected) in &cases {
        let out = run(dir.path(), extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{expected}: {stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!marker.exists(), "{expected}: helm was started");
    }
    // Control: a sound chart goes through the recorder to the real helm.
    let out = run(chart(&[("Chart.yaml", sound), cm]).path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = std::fs::read_to_string(&marker).unwrap();
    assert!(
        recorded.starts_with("template --namespace team-a --include-crds --skip-tests -- team-a "),
        "{recorded}"
    );
}

/// A loopback listener counting the connections it accepts; answers HTTP with a schema.
struct Canary {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Canary {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = stream.read(&mut [0u8; 4096]);
                let body = r#"{"type": "object"}"#;
                let _ = stream.write_all(
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes(),
                );
            }
        });
        Self { port, accepted }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A chart whose values schema points at the canary: helm's schema validation fetches it.
fn phoning_chart(port: u16) -> Vec<SourceFile> {
    let file = |path: &str, content: String| SourceFile {
        path: path.into(),
        content: content.into_bytes(),
    };
    vec![
        file("Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- {name: redis, repository: 'http://127.0.0.1:PORT/charts'}\n".replace("PORT", &port.to_string())),
        file("charts/redis/Chart.yaml", "apiVersion: v2\nname: redis\nversion: 0.1.0\n".into()),
        file(
            "values.schema.json",
            format!(r#"{{"$ref": "http://127.0.0.1:{port}/schema.json"}}"#),
        ),
        file(
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".into(),
        ),
    ]
}

#[test]
fn helm_cannot_reach_the_network_even_with_the_check_bypassed() {
    let canary = Canary::start();
    let files = phoning_chart(canary.port);
    let dir = tempfile::tempdir().unwrap();
    for f in &files {
        let path = dir.path().join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &f.content).unwrap();
    }
    // Outside the sandbox, helm fetches the schema: a count of zero below means something.
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(helm_program())
        .args(["template", "x"])
        .arg(dir.path())
        .env_clear()
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(
        canary.connections() > 0,
        "helm did not fetch the schema outside the sandbox: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let before = canary.connections();

    let helm = Helm {
        program: helm_program(),
        launcher: Launcher::Program(AGENT.into()),
        release: Release {
            name: "team-a".into(),
            namespace: "team-a".into(),
            values: Vec::new(),
        },
        ..Helm::default()
    };
    let limits = RenderLimits::default();
    // The check refuses the chart…
    let err = helm.template(&files, "", &limits).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("values.schema.json: /$ref: \"http://127.0.0.1:"),
        "{err}"
    );
    // …and helm handed it all the same fails without a single connection.
    let err = helm
        .template_unchecked_for_sandbox_tests(&files, "", &limits)
        .unwrap_err();
    assert!(
        err.to_string().starts_with("helm template failed: "),
        "{err}"
    );
    assert_eq!(
        canary.connections(),
        before,
        "a connection left the sandbox: {err}"
    );

    // A dependency left in its remote repository: refused by the check, and helm, handed it
    // anyway, fetches nothing either.
    let unvendored: Vec<SourceFile> = files
        .into_iter()
        .filter(|f| !f.path.starts_with("charts/") && f.path != "values.schema.json")
        .collect();
    let err = helm.template(&unvendored, "", &limits).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "Chart.yaml: dependencies[0] (redis).repository: the chart would be fetched from http://127.0.0.1:"
        ),
        "{err}"
    );
    let err = helm
        .template_unchecked_for_sandbox_tests(&unvendored, "", &limits)
        .unwrap_err();
    assert!(err.to_string().contains("missing in charts/"), "{err}");
    assert_eq!(
        canary.connections(),
        before,
        "a connection left the sandbox: {err}"
    );
}
