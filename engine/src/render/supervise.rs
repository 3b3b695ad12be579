//! The agent's side of the render sandbox: starts a render tool (kustomize, helm, sops) under the
//! launcher ([`super::sandbox`]) with a fixed argument list and environment, and supervises it
//! to its end, its wall-time deadline or its output cap, whichever comes first. Each exceeded
//! limit becomes its own error, naming the tool.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::sandbox::{Bounds, Exit, Launcher};
use super::{RenderError, RenderLimits};

/// Bytes of a tool's stderr kept for the error message; the rest is read and dropped.
const MAX_STDERR: usize = 64 * 1024;

/// Longest tool error message passed on.
const MAX_MESSAGE: usize = 1_000;

/// A program the render step runs in the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Kustomize,
    Helm,
    Sops,
}

impl Tool {
    /// The command as a tenant knows it, for "… failed" messages.
    pub fn command(self) -> &'static str {
        match self {
            Tool::Kustomize => "kustomize build",
            Tool::Helm => "helm template",
            Tool::Sops => "sops decrypt",
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::Kustomize => "kustomize",
            Tool::Helm => "helm",
            Tool::Sops => "sops",
        })
    }
}

/// One run of a tool in the sandbox.
pub(super) struct Job<'a> {
    pub tool: Tool,
    pub launcher: &'a Launcher,
    pub program: &'a Path,
    pub args: Vec<OsString>,
    /// The whole environment of the tool (besides `GOMEMLIMIT`, which the job sets).
    pub env: Vec<(OsString, OsString)>,
    pub current_dir: &'a Path,
    pub timeout: Duration,
}

/// How a job ended without hitting a limit.
pub(super) enum Ended {
    /// Its standard output.
    Success(Vec<u8>),
    /// It failed on its own; the head of its standard error.
    Failed(String),
}

/// Runs `job` in the sandbox. The render is synchronous (the pipeline calls it off the async
/// runtime), so the child is supervised on a small runtime of its own.
pub(super) fn run(job: Job<'_>, limits: &RenderLimits) -> Result<Ended, RenderError> {
    let tool = job.tool;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RenderError::Sandbox {
            tool,
            message: format!("cannot start the supervisor: {e}"),
        })?;
    let bounds = Bounds {
        memory_bytes: limits.max_memory,
        cpu_seconds: limits.max_cpu.as_secs().max(1),
    };
    let mut command = tokio::process::Command::new(job.launcher.program());
    command
        .args(bounds.launcher_args())
        .arg(job.program)
        .args(&job.args)
        .env_clear()
        .envs(job.env)
        .env("GOMEMLIMIT", bounds.go_memory_limit())
        .current_dir(job.current_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let Supervised {
        exit,
        stdout,
        stderr,
    } = runtime.block_on(supervise(tool, command, job.timeout, limits.max_output))?;
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    match exit {
        Some(Exit::Success) => Ok(Ended::Success(stdout)),
        Some(Exit::CpuLimit) => Err(RenderError::CpuLimit {
            tool,
            seconds: bounds.cpu_seconds,
        }),
        Some(Exit::Failed(_)) if is_out_of_memory(&stderr) => Err(RenderError::MemoryLimit {
            tool,
            limit: bounds.memory_bytes,
        }),
        Some(Exit::SetupFailed) => Err(RenderError::Sandbox {
            tool,
            message: stderr
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("berth render sandbox: "))
                .unwrap_or("the launcher failed")
                .to_owned(),
        }),
        Some(Exit::Failed(_)) => Ok(Ended::Failed(stderr)),
        // Not the CPU limit and not the deadline: the kernel's out-of-memory killer is the
        // usual sender, when the Pod's memory limit is reached before the tool's own.
        Some(Exit::Signal(signal)) if signal == libc::SIGKILL => Err(RenderError::ToolFailed {
            tool,
            message: format!(
                "{tool} was killed (SIGKILL), most likely for lack of memory in the Pod"
            ),
        }),
        Some(Exit::Signal(signal)) => Err(RenderError::ToolFailed {
            tool,
            message: format!("{tool} was killed by signal {signal}"),
        }),
        None => Err(RenderError::Sandbox {
            tool,
            message: "the render sandbox launcher was killed".into(),
        }),
    }
}

/// A tool's error, fit for a Tenant's status: its `Error:` line only (later lines can quote
/// whole objects), scratch paths made relative to the repository, `redact`ed values replaced,
/// and bounded in length.
pub(super) fn error_message(stderr: &str, root: &Path, redact: &[String]) -> String {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Error: "))
        .or_else(|| stderr.lines().find(|l| l.starts_with("fatal error:")))
        .unwrap_or("failed without a message");
    let root_prefix = format!("{}/", root.display());
    let mut message = line.trim().replace(&root_prefix, "");
    // `redact` is sorted longest first, so that a value containing another is replaced whole.
    for secret in redact {
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

struct Supervised {
    /// `None` if the launcher itself was killed by a signal.
    exit: Option<Exit>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Kills the launcher's process group (the launcher, the tool, anything the tool started)
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
    tool: Tool,
    mut command: tokio::process::Command,
    timeout: Duration,
    max_output: usize,
) -> Result<Supervised, RenderError> {
    let mut child = command.spawn().map_err(|e| RenderError::Sandbox {
        tool,
        message: format!("cannot start the render sandbox: {e}"),
    })?;
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
            return Err(RenderError::OutputTooLarge {
                tool,
                limit: max_output,
            });
        }
        Ok(Err(ReadError::Io(e))) => {
            group.kill();
            let _ = child.wait().await;
            return Err(RenderError::ToolFailed {
                tool,
                message: format!("reading {tool}'s output: {e}"),
            });
        }
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            return Err(RenderError::Timeout { tool, timeout });
        }
    };
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            group.kill();
            return Err(RenderError::Sandbox {
                tool,
                message: format!("waiting for the render sandbox: {e}"),
            });
        }
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            return Err(RenderError::Timeout { tool, timeout });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_keep_the_error_line_and_drop_secrets_and_snippets() {
        let redact = vec!["hunter2-long".to_owned(), "hunter2".to_owned()];
        let stderr = "# Warning: 'bases' is deprecated.\n\
                      Error: invalid literal source hunter2-long in /tmp/x/root/app\n\
                      apiVersion: v1\nstringData: {password: hunter2}\n";
        let message = error_message(stderr, Path::new("/tmp/x/root"), &redact);
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
