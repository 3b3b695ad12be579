//! The render sandbox with the real kustomize, git and ssh, the agent binary as its launcher:
//! remote references are refused by the kustomization check, and kustomize handed them anyway
//! (the check bypassed) reaches nobody: a loopback HTTP canary and an SSH stand-in count every
//! connection. Memory, CPU time, wall time and output are bounded, each with its own error.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_engine::render::{
    Kustomize, Launcher, RenderError, RenderLimits, SourceFile, Tool, render,
};

const AGENT: &str = env!("CARGO_BIN_EXE_berth-agent");

/// A loopback listener counting the connections it accepts; answers HTTP with a 404.
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
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Self { port, accepted }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn kustomize_program() -> PathBuf {
    let program = std::env::var_os("BERTH_KUSTOMIZE").map(PathBuf::from).expect(
        "BERTH_KUSTOMIZE must name the kustomize binary (cargo sets it from .cargo/config.toml)",
    );
    assert!(
        program.is_file(),
        "kustomize not found at {}: run `make tools`, which installs the pinned one there",
        program.display()
    );
    program
}

/// kustomize confined by this very agent binary.
fn sandboxed() -> Kustomize {
    Kustomize {
        program: kustomize_program(),
        launcher: Launcher::Program(AGENT.into()),
        ..Kustomize::default()
    }
}

fn file(path: &str, content: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    }
}

/// Files the kustomizations below name, so that only the remote reference is wrong.
fn with_locals(kustomization: String) -> Vec<SourceFile> {
    vec![
        file("kustomization.yaml", &kustomization),
        file(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: local}\n",
        ),
    ]
}

fn podinfo() -> Vec<SourceFile> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/podinfo-kustomize");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| SourceFile {
            path: e.file_name().to_string_lossy().into_owned(),
            content: std::fs::read(e.path()).unwrap(),
        })
        .collect()
}

/// (the key as written, the kustomization around key and URL, the field a refusal names)
type Field = (&'static str, fn(&str, &str) -> String, &'static str);

/// Every field kustomize loads something from, in several of the spellings it accepts.
const FIELDS: [Field; 13] = [
    ("resources", |k, u| format!("{k}:\n- {u}\n"), "resources[0]"),
    ("Bases", |k, u| format!("{k}:\n- {u}\n"), "bases[0]"),
    (
        "COMPONENTS",
        |k, u| format!("{k}:\n- {u}\n"),
        "components[0]",
    ),
    (
        "Crds",
        |k, u| format!("resources: [cm.yaml]\n{k}:\n- {u}\n"),
        "crds[0]",
    ),
    (
        "configurations",
        |k, u| format!("resources: [cm.yaml]\n{k}:\n- '{u}'\n"),
        "configurations[0]",
    ),
    (
        "PatchesStrategicMerge",
        |k, u| format!("resources: [cm.yaml]\n{k}:\n- {u}\n"),
        "patchesStrategicMerge[0]",
    ),
    (
        "patches",
        |k, u| format!("resources: [cm.yaml]\n{k}:\n- Path: {u}\n"),
        "patches[0].path",
    ),
    (
        "patchesJSON6902",
        |k, u| {
            format!(
                "resources: [cm.yaml]\n{k}:\n- path: {u}\n  target: {{kind: ConfigMap, name: local}}\n"
            )
        },
        "patchesJson6902[0].path",
    ),
    (
        "Replacements",
        |k, u| format!("resources: [cm.yaml]\n{k}:\n- PATH: {u}\n"),
        "replacements[0].path",
    ),
    (
        "openAPI",
        |k, u| format!("resources: [cm.yaml]\n{k}:\n  path: {u}\n"),
        "openapi.path",
    ),
    (
        "ConfigMapGenerator",
        |k, u| format!("{k}:\n- name: creds\n  FILES:\n  - key={u}\n"),
        "configMapGenerator[0].files[0]",
    ),
    (
        "secretgenerator",
        |k, u| format!("{k}:\n- name: creds\n  Envs: [\"{u}\"]\n"),
        "secretGenerator[0].envs[0]",
    ),
    (
        "secretGenerator",
        |k, u| format!("{k}:\n- name: creds\n  ENV: {u}\n"),
        "secretGenerator[0].env",
    ),
];

/// URL forms of a remote reference, all pointing at the canaries.
fn remote_forms(http: u16, ssh: u16) -> Vec<String> {
    vec![
        format!("http://127.0.0.1:{http}/latest/meta-data/iam/security-credentials/node"),
        format!("HTTPS://127.0.0.1:{http}/x.yaml"),
        format!("git::http://127.0.0.1:{http}/org/repo.git//base?ref=main"),
        format!("https://127.0.0.1:{http}/org/repo//base?ref=v1"),
        format!("ssh://git@127.0.0.1:{ssh}/org/repo.git"),
        format!("git::ssh://git@127.0.0.1:{ssh}/org/repo//base"),
        // scp-like forms cannot name a port: ssh would go to 127.0.0.1:22, which no canary
        // watches; the SSH test below covers them through git's ssh command.
        "git@127.0.0.1:org/repo".to_owned(),
        "git::git@127.0.0.1:org/repo".to_owned(),
    ]
}

/// Without the sandbox, kustomize does reach the canaries from these fields: the counts of
/// zero below mean something.
#[test]
fn outside_the_sandbox_kustomize_and_git_reach_the_canaries() {
    let http = Canary::start();
    for (key, body, field) in FIELDS {
        let before = http.connections();
        // Components are only ever directories: kustomize fetches them with git.
        let url = if field.starts_with("components") {
            format!("http://127.0.0.1:{}/org/repo.git//base", http.port)
        } else {
            format!("http://127.0.0.1:{}/x.yaml", http.port)
        };
        let dir = tempfile::tempdir().unwrap();
        for f in with_locals(body(key, &url)) {
            std::fs::write(dir.path().join(&f.path), &f.content).unwrap();
        }
        let output = Command::new(kustomize_program())
            .args(["build"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            http.connections() > before,
            "{field}: kustomize did not fetch {url} outside the sandbox: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let ssh = Canary::start();
    let output = Command::new("git")
        .args([
            "ls-remote",
            &format!("ssh://git@127.0.0.1:{}/org/repo", ssh.port),
        ])
        .env(
            "GIT_SSH_COMMAND",
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=5",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        ssh.connections() > 0,
        "git over ssh did not reach the stand-in"
    );
}

#[test]
fn every_remote_reference_is_refused_by_the_check_and_unreachable_in_the_sandbox() {
    let http = Canary::start();
    let ssh = Canary::start();
    let limits = RenderLimits::default();
    let kustomize = sandboxed();
    for url in remote_forms(http.port, ssh.port) {
        for (key, body, field) in FIELDS {
            let files = with_locals(body(key, &url));
            // The check refuses it, naming the file and the field…
            match render(&files, "", &kustomize.clone().into(), &limits) {
                Err(RenderError::KustomizationField {
                    file,
                    field: named,
                    reason,
                }) => {
                    assert_eq!(file, "kustomization.yaml");
                    assert_eq!(named, field, "{url} in {key}: {reason}");
                    assert!(reason.contains("remote reference"), "{url}: {reason}");
                }
                other => panic!("{url} in {key} was not refused: {other:?}"),
            }
            // …and kustomize handed it all the same fails without a single connection.
            let err = kustomize
                .build_unchecked_for_sandbox_tests(&files, "", &limits)
                .expect_err(&format!("{url} in {key} rendered in the sandbox"));
            assert!(
                matches!(
                    err,
                    RenderError::ToolFailed {
                        tool: Tool::Kustomize,
                        ..
                    }
                ),
                "{url} in {key}: {err}"
            );
            assert_eq!(
                (http.connections(), ssh.connections()),
                (0, 0),
                "{url} in {key}: a connection left the sandbox ({err})"
            );
        }
    }
}

/// The launcher's filter and limits stay with every program started below it: git, the ssh
/// git runs (the scp-like form included), and any other.
#[test]
fn programs_started_in_the_sandbox_have_no_network_either() {
    let ssh = Canary::start();
    let http = Canary::start();
    let port = ssh.port;
    let in_sandbox = |program: &str, args: &[&str], env: &[(&str, String)]| -> Output {
        let mut command = Command::new(AGENT);
        command
            .args([
                "__render-sandbox",
                "--max-memory",
                "536870912",
                "--max-cpu-seconds",
                "30",
                "--",
            ])
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", std::env::temp_dir());
        for (k, v) in env {
            command.env(k, v);
        }
        command.stdin(Stdio::null()).output().unwrap()
    };
    let git_ssh = format!("ssh -p {port} -o BatchMode=yes -o StrictHostKeyChecking=no");
    let cases = [
        in_sandbox(
            "ssh",
            &[
                "-p",
                &port.to_string(),
                "-o",
                "BatchMode=yes",
                "127.0.0.1",
                "true",
            ],
            &[],
        ),
        in_sandbox(
            "git",
            &["ls-remote", "git@127.0.0.1:org/repo"],
            &[("GIT_SSH_COMMAND", git_ssh.clone())],
        ),
        in_sandbox(
            "git",
            &["ls-remote", "127.0.0.1:org/repo"],
            &[("GIT_SSH_COMMAND", git_ssh)],
        ),
        in_sandbox(
            "git",
            &[
                "ls-remote",
                &format!("http://127.0.0.1:{}/org/repo", http.port),
            ],
            &[],
        ),
        in_sandbox(
            "bash",
            &["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{}", http.port)],
            &[],
        ),
    ];
    for (i, output) in cases.iter().enumerate() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        // libcurl (git over HTTP) reports a failed socket(2) as "Couldn't connect"; the
        // others name the errno the filter returns.
        assert!(
            stderr.to_lowercase().contains("not permitted")
                || (i == 3 && stderr.contains("Couldn't connect")),
            "the failure is not the filter's: {stderr}"
        );
    }
    assert_eq!((ssh.connections(), http.connections()), (0, 0));
}

#[test]
fn ordinary_kustomizations_render_in_the_sandbox() {
    let manifests = render(
        &podinfo(),
        "",
        &sandboxed().into(),
        &RenderLimits::default(),
    )
    .unwrap();
    let mut kinds: Vec<&str> = manifests
        .iter()
        .map(|m| m.reference.kind.as_str())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["Deployment", "HorizontalPodAutoscaler", "Service"]);
    let files = vec![
        file(
            "kustomization.yaml",
            "Resources: [cm.yaml]\nconfigMapGenerator:\n- name: settings\n  literals: [URL=https://api.example.com]\n  files: [app.properties]\nsecretGenerator:\n- name: creds\n  envs: [creds.env]\n",
        ),
        file(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: local}\n",
        ),
        file("app.properties", "mode=prod\n"),
        file("creds.env", "PASSWORD=correct-horse\n"),
    ];
    let manifests = render(&files, "", &sandboxed().into(), &RenderLimits::default()).unwrap();
    assert_eq!(manifests.len(), 3, "{manifests:?}");
}

/// A kustomization whose generators repeat a 1 MiB file 400 times: unbounded, kustomize
/// grows past 2 GiB.
fn memory_bomb() -> Vec<SourceFile> {
    let line = "0123456789abcdef".repeat(6) + "\n";
    let big = line.repeat(1024 * 1024 / line.len());
    let mut kustomization = String::from("configMapGenerator:\n");
    for g in 0..4 {
        kustomization.push_str(&format!("- name: cm{g}\n  files:\n"));
        for i in 0..100 {
            kustomization.push_str(&format!("  - k{i}=big.txt\n"));
        }
    }
    vec![
        file("kustomization.yaml", &kustomization),
        file("big.txt", &big),
    ]
}

/// 3,000 resources: several seconds of CPU for kustomize, little memory.
fn cpu_hog() -> Vec<SourceFile> {
    let many: String = (0..3000)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\ndata: {{a: \"{i}\"}}\n"))
        .collect();
    vec![
        file(
            "kustomization.yaml",
            "resources: [many.yaml]\nnamePrefix: p-\n",
        ),
        file("many.yaml", &many),
    ]
}

#[test]
fn a_memory_bomb_gets_the_memory_limit_error_and_stays_bounded() {
    let started = Instant::now();
    let err = render(
        &memory_bomb(),
        "",
        &sandboxed().into(),
        &RenderLimits::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "kustomize exceeded its memory limit of 512 MiB"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // The next render goes on as usual.
    render(
        &podinfo(),
        "",
        &sandboxed().into(),
        &RenderLimits::default(),
    )
    .unwrap();

    // Peak resident memory of the launcher and kustomize, as GNU time reports it.
    let dir = tempfile::tempdir().unwrap();
    for f in memory_bomb() {
        std::fs::write(dir.path().join(&f.path), &f.content).unwrap();
    }
    let output = Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib=%M"])
        .arg(AGENT)
        .args([
            "__render-sandbox",
            "--max-memory",
            "536870912",
            "--max-cpu-seconds",
            "30",
            "--",
        ])
        .arg(kustomize_program())
        .arg("build")
        .arg(dir.path())
        .env("GOMEMLIMIT", "402653184")
        .stdout(Stdio::null())
        .output()
        .expect("running under /usr/bin/time (Debian package `time`)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak_kib: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {stderr}"));
    eprintln!("memory bomb: peak RSS {} MiB", peak_kib / 1024);
    assert!(peak_kib < 512 * 1024, "peak RSS {peak_kib} KiB");
}

#[test]
fn a_cpu_hog_gets_the_cpu_time_limit_error() {
    let limits = RenderLimits {
        max_cpu: Duration::from_secs(1),
        ..RenderLimits::default()
    };
    let err = render(&cpu_hog(), "", &sandboxed().into(), &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kustomize exceeded its CPU-time limit of 1 s"
    );
}

#[test]
fn a_slow_render_is_stopped_at_its_deadline() {
    let kustomize = Kustomize {
        timeout: Duration::from_secs(1),
        ..sandboxed()
    };
    let started = Instant::now();
    let err = render(&cpu_hog(), "", &kustomize.into(), &RenderLimits::default()).unwrap_err();
    assert_eq!(err.to_string(), "kustomize exceeded its time limit of 1 s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn output_beyond_the_cap_is_refused() {
    let limits = RenderLimits {
        max_output: 1000,
        ..RenderLimits::default()
    };
    let err = render(&podinfo(), "", &sandboxed().into(), &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kustomize output exceeded its limit of 1000 bytes"
    );
}

/// As in the Pod: an unprivileged user with no_new_privs installs the filter and the limits
/// all the same (run as uid 65532 through setpriv when the tests run as root).
#[test]
fn the_sandbox_needs_no_privileges() {
    let http = Canary::start();
    let tools = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Within reach of uid 65532 (the tool cache may be in root's home), linked where possible:
    // a debug build of the agent is half a gigabyte. The file itself, not a symbolic link to
    // it (target/tools/ holds links into that cache).
    let agent = tools.path().join("berth-agent");
    let kustomize = tools.path().join("kustomize");
    let kustomize_file = std::fs::canonicalize(kustomize_program()).unwrap();
    for (from, to) in [(Path::new(AGENT), &agent), (&kustomize_file, &kustomize)] {
        if std::fs::hard_link(from, to).is_err() {
            std::fs::copy(from, to).unwrap();
        }
    }
    let work = tools.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(
        work.join("kustomization.yaml"),
        format!(
            "configMapGenerator:\n- name: c\n  files: [k=http://127.0.0.1:{}/x]\n",
            http.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = running_as_root();
    let mut command = if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65532",
            "--regid=65532",
            "--clear-groups",
            "--no-new-privs",
        ])
        .arg(&agent);
        c
    } else {
        Command::new(&agent)
    };
    let output = command
        .args([
            "__render-sandbox",
            "--max-memory",
            "536870912",
            "--max-cpu-seconds",
            "30",
            "--",
        ])
        .arg(&kustomize)
        .arg("build")
        .arg(&work)
        // kustomize resolves its working directory, which uid 65532 may not reach where the
        // checkout lives (a 0700 temporary directory, say).
        .current_dir(&work)
        .env_clear()
        .env("HOME", &work)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("not permitted"), "{stderr}");
    assert_eq!(http.connections(), 0);
}

fn running_as_root() -> bool {
    // /proc/self/status: `Uid:\treal\teffective…`.
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap()
}
