//! Rendering a kustomization with the real `kustomize` CLI: every kustomization of the revision
//! is parsed strictly first ([`super::kustomization`]), then kustomize builds the revision in a
//! private scratch directory, inside the render sandbox ([`super::sandbox`]): no network, and
//! bounded in memory, CPU time, wall time and output.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::documents::{manifest, yaml_options};
use super::kustomization::{self, Checked};
use super::sandbox::{Bounds, Exit, Launcher};
use super::{RenderError, RenderLimits, SourceFile};
use crate::manifest::{Manifest, Origin};

/// Bytes of kustomize's stderr kept for the error message; the rest is read and dropped.
const MAX_STDERR: usize = 64 * 1024;

/// Longest kustomize error message passed on.
const MAX_MESSAGE: usize = 1_000;

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
        let scratch = tempfile::Builder::new()
            .prefix("berth-render-")
            .tempdir()
            .map_err(|source| RenderError::Scratch {
                path: std::env::temp_dir(),
                source,
            })?;
        let root = scratch.path().join("root");
        for file in files {
            let relative = Path::new(&file.path);
            if !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
            {
                return Err(RenderError::Kustomization {
                    file: file.path.clone(),
                    reason: "not a plain relative path".into(),
                });
            }
            let path = root.join(relative);
            let content = checked
                .rewritten
                .get(&file.path)
                .map_or(file.content.as_slice(), Vec::as_slice);
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
        let output = self.run(&root, &root.join(dir), scratch.path(), limits, checked)?;
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

    /// Runs kustomize in the sandbox with a fixed argument list and an almost empty
    /// environment. The render is synchronous (the pipeline calls it off the async runtime),
    /// so the child is supervised on a small runtime of its own.
    fn run(
        &self,
        root: &Path,
        target: &Path,
        home: &Path,
        limits: &RenderLimits,
        checked: &Checked,
    ) -> Result<Vec<u8>, RenderError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RenderError::Sandbox(format!("cannot start the supervisor: {e}")))?;
        let bounds = Bounds {
            memory_bytes: limits.max_kustomize_memory,
            cpu_seconds: limits.max_kustomize_cpu.as_secs().max(1),
        };
        let mut command = tokio::process::Command::new(self.launcher.program());
        command
            .args(bounds.launcher_args())
            .arg(&self.program)
            .args(["build", "--load-restrictor", "LoadRestrictionsRootOnly"])
            .arg(target)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .env("GOMEMLIMIT", bounds.go_memory_limit())
            .current_dir(home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let supervised = runtime.block_on(supervise(
            command,
            self.timeout,
            limits.max_kustomize_output,
        ))?;
        let Supervised {
            exit,
            stdout,
            stderr,
        } = supervised;
        let stderr = String::from_utf8_lossy(&stderr);
        match exit {
            Some(Exit::Success) => Ok(stdout),
            Some(Exit::CpuLimit) => Err(RenderError::KustomizeCpuLimit {
                seconds: bounds.cpu_seconds,
            }),
            Some(Exit::Failed(_)) if is_out_of_memory(&stderr) => {
                Err(RenderError::KustomizeMemoryLimit {
                    limit: bounds.memory_bytes,
                })
            }
            Some(Exit::SetupFailed) => Err(RenderError::Sandbox(
                stderr
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix("berth render sandbox: "))
                    .unwrap_or("the launcher failed")
                    .to_owned(),
            )),
            Some(Exit::Failed(_)) => Err(RenderError::KustomizeFailed(error_message(
                &stderr, root, checked,
            ))),
            // Not the CPU limit and not the deadline: the kernel's out-of-memory killer is the
            // usual sender, when the Pod's memory limit is reached before kustomize's own.
            Some(Exit::Signal(signal)) if signal == libc::SIGKILL => {
                Err(RenderError::KustomizeFailed(
                    "kustomize was killed (SIGKILL), most likely for lack of memory in the Pod"
                        .into(),
                ))
            }
            Some(Exit::Signal(signal)) => Err(RenderError::KustomizeFailed(format!(
                "kustomize was killed by signal {signal}"
            ))),
            None => Err(RenderError::Sandbox(
                "the render sandbox launcher was killed".into(),
            )),
        }
    }
}

struct Supervised {
    /// `None` if the launcher itself was killed by a signal.
    exit: Option<Exit>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Kills the launcher's process group (the launcher, kustomize, anything kustomize started)
/// unless disarmed. It must only fire while the launcher is not yet reaped: until then its
/// process ID, which is also the group's ID, cannot be reused.
struct GroupKiller(Option<rustix::process::Pid>);

impl GroupKiller {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

enum ReadError {
    TooLarge,
    Io(std::io::Error),
}

/// Runs the launcher to completion, or until the deadline or the output cap, whichever first.
async fn supervise(
    mut command: tokio::process::Command,
    timeout: Duration,
    max_output: usize,
) -> Result<Supervised, RenderError> {
    let mut child = command
        .spawn()
        .map_err(|e| RenderError::Sandbox(format!("cannot start the render sandbox: {e}")))?;
    let mut group = GroupKiller(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw),
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let streams = async {
        tokio::try_join!(read_capped(stdout, max_output), async {
            read_head(stderr, MAX_STDERR).await.map_err(ReadError::Io)
        },)
    };
    // Both streams end when every process of the group has closed them; the launcher is
    // reaped only after that, so the group can still be killed safely until then.
    let (stdout, stderr) = match tokio::time::timeout_at(deadline, streams).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(ReadError::TooLarge)) => {
            group.kill();
            let _ = child.wait().await;
            return Err(RenderError::KustomizeOutputTooLarge { limit: max_output });
        }
        Ok(Err(ReadError::Io(e))) => {
            group.kill();
            let _ = child.wait().await;
            return Err(RenderError::KustomizeFailed(format!(
                "reading kustomize's output: {e}"
            )));
        }
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            return Err(RenderError::KustomizeTimeout { timeout });
        }
    };
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            group.kill();
            return Err(RenderError::Sandbox(format!(
                "waiting for the render sandbox: {e}"
            )));
        }
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            return Err(RenderError::KustomizeTimeout { timeout });
        }
    };
    // Reaped: the group ID may now be reused, so it must not be signalled any more.
    group.0 = None;
    Ok(Supervised {
        exit: Exit::from_launcher(status),
        stdout,
        stderr,
    })
}

/// Reads everything, failing as soon as there is more than `max`.
async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let Some(stream) = stream else {
        return Ok(out);
    };
    // One byte over the cap tells that the output is too large.
    stream
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .await
        .map_err(ReadError::Io)?;
    if out.len() > max {
        return Err(ReadError::TooLarge);
    }
    Ok(out)
}

/// Keeps the first `max` bytes and reads the rest to the end, so the writer never blocks.
async fn read_head(stream: Option<impl AsyncRead + Unpin>, max: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let Some(mut stream) = stream else {
        return Ok(head);
    };
    let mut buffer = [0u8; 8192];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(head);
        }
        let room = max.saturating_sub(head.len()).min(n);
        head.extend_from_slice(&buffer[..room]);
    }
}

/// Whether the Go runtime gave up for lack of memory (its allocations failing at the limit).
fn is_out_of_memory(stderr: &str) -> bool {
    stderr.lines().any(|line| {
        line.starts_with("fatal error:")
            && (line.contains("out of memory") || line.contains("cannot allocate memory"))
    }) || stderr.contains("runtime: out of memory")
}

/// kustomize's error, fit for a Tenant's status: its `Error:` line only (later lines can quote
/// whole objects), scratch paths made relative to the repository, values of `secretGenerator`
/// sources replaced, and bounded in length.
fn error_message(stderr: &str, root: &Path, checked: &Checked) -> String {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Error: "))
        .or_else(|| stderr.lines().find(|l| l.starts_with("fatal error:")))
        .unwrap_or("kustomize failed without a message");
    let root_prefix = format!("{}/", root.display());
    let mut message = line.trim().replace(&root_prefix, "");
    // Longest first, so that a value containing another is replaced whole.
    for secret in &checked.secrets {
        if message.contains(secret.as_str()) {
            message = message.replace(secret.as_str(), "[redacted]");
        }
    }
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_keep_the_error_line_and_drop_secrets_and_snippets() {
        let checked = Checked {
            secrets: vec!["hunter2-long".into(), "hunter2".into()],
            ..Checked::default()
        };
        let stderr = "# Warning: 'bases' is deprecated.\n\
                      Error: invalid literal source hunter2-long in /tmp/x/root/app\n\
                      apiVersion: v1\nstringData: {password: hunter2}\n";
        let message = error_message(stderr, Path::new("/tmp/x/root"), &checked);
        assert_eq!(message, "invalid literal source [redacted] in app");
    }

    #[test]
    fn go_running_out_of_memory_is_recognised() {
        assert!(is_out_of_memory(
            "fatal error: runtime: out of memory\n\nruntime stack:\n"
        ));
        assert!(is_out_of_memory(
            "fatal error: out of memory allocating heap arena map\n"
        ));
        assert!(!is_out_of_memory(
            "Error: accumulating resources: out of memory (a file name)"
        ));
    }
}
