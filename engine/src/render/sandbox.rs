//! The render sandbox: kustomize and helm run under a launcher that takes the network away
//! from them and bounds their memory and CPU time, enforced by the kernel. What follows says
//! kustomize; helm (one static Go program that starts nothing) is confined the same way.
//!
//! # Why a seccomp filter and rlimits, and not a network namespace or cgroup
//!
//! The agent runs in a Pod with the *restricted* Pod Security profile: uid 65532, every
//! capability dropped, `allowPrivilegeEscalation: false` and seccomp `RuntimeDefault`. The
//! container runtime's default profile lets `unshare(2)`, `setns(2)` and `mount(2)` through
//! only with CAP_SYS_ADMIN and `clone(2)` only without namespace flags, so a network namespace
//! (even inside an unprivileged user namespace) cannot be created there; the Pod's cgroup is
//! read-only too. What an unprivileged process can always do, and what the default profile
//! allows (`seccomp`, `prctl`, `setrlimit`), is:
//!
//! - set `no_new_privs` and install its own seccomp filter, which every later `execve` keeps
//!   and every child inherits (kustomize, the `git` it runs for remote bases, the `ssh` git
//!   runs), and
//! - lower its own resource limits, which children inherit as well.
//!
//! The filter makes `socket(2)` fail with EPERM for every address family, so no process of the
//! render can open a TCP or UDP connection (HTTP fetches, git over HTTPS or SSH, DNS) or reach
//! a local daemon over a Unix socket; kustomize never needs one to render files on disk. It
//! also refuses `io_uring` (which can create sockets without `socket(2)`) and the calls that
//! read another process's memory or file descriptors. Landlock (ABI 4+) was considered: it can
//! refuse TCP `connect`/`bind` but not UDP or Unix sockets, so it would not be enough alone.
//!
//! Memory is bounded with RLIMIT_DATA, not RLIMIT_AS: Go reserves about 750 MiB of address
//! space before it allocates anything (measured with kustomize 5.8 on amd64), so an
//! address-space limit would either stop every kustomize at start or not bound the heap at
//! all; RLIMIT_DATA counts the private writable memory the heap actually uses. kustomize also
//! gets `GOMEMLIMIT` below that limit so that its garbage collector works harder before the
//! kernel refuses memory. CPU time is bounded with RLIMIT_CPU (the kernel kills the process at
//! the limit), open files with RLIMIT_NOFILE, and core dumps are off. RLIMIT_NPROC is not set:
//! it counts every process of the user, the agent's own threads included.
//!
//! # How
//!
//! `pre_exec` hooks would need `unsafe`, so the agent re-executes itself instead
//! (`/proc/self/exe __render-sandbox --max-memory … --max-cpu-seconds … -- kustomize build …`).
//! That launcher, single-threaded and before anything else in `main`, applies the limits and
//! the filter to itself, runs kustomize as its child, waits for it and reports through its exit
//! status whether a limit stopped it ([`Exit`]). The agent starts the launcher in a process
//! group of its own and kills the whole group when the wall-time deadline passes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use rustix::process::{Pid, Resource, Rlimit, WaitId, WaitIdOptions};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

/// The first argument that turns a program into the launcher.
pub const LAUNCHER_ARG: &str = "__render-sandbox";

/// Open files kustomize (or git) may hold at once; a build opens a handful.
const MAX_OPEN_FILES: u64 = 256;

/// Exit statuses of the launcher that are its own, not kustomize's. kustomize exits 0, 1, or
/// 2 (a Go runtime failure); a child's status in this range is reported as 1.
const EXIT_SETUP_FAILED: u8 = 120;
const EXIT_CPU_LIMIT: u8 = 121;
/// 128 + n: the child was killed by signal n (as a shell reports it).
const EXIT_SIGNAL_BASE: u8 = 128;

/// Which program is the launcher.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Launcher {
    /// The running program itself (through `/proc/self/exe`); its `main` must call
    /// [`run_launcher_if_requested`] first. `berth-agent` does.
    #[default]
    CurrentExe,
    /// Another program that does, e.g. a test's copy of the agent.
    Program(PathBuf),
}

impl Launcher {
    pub(crate) fn program(&self) -> PathBuf {
        match self {
            Launcher::CurrentExe => PathBuf::from("/proc/self/exe"),
            Launcher::Program(path) => path.clone(),
        }
    }
}

/// The kernel-enforced bounds of one render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub memory_bytes: u64,
    pub cpu_seconds: u64,
}

impl Bounds {
    /// The launcher's arguments up to and including `--`.
    pub(crate) fn launcher_args(&self) -> Vec<OsString> {
        vec![
            LAUNCHER_ARG.into(),
            "--max-memory".into(),
            self.memory_bytes.to_string().into(),
            "--max-cpu-seconds".into(),
            self.cpu_seconds.to_string().into(),
            "--".into(),
        ]
    }

    /// The Go runtime's soft memory limit: three quarters of the hard one, so that the garbage
    /// collector runs harder before allocations start to fail.
    pub(crate) fn go_memory_limit(&self) -> String {
        (self.memory_bytes / 4 * 3).to_string()
    }
}

/// How the sandboxed program ended, as the launcher reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Success,
    /// The program exited with this status.
    Failed(i32),
    /// The kernel stopped it at its CPU-time limit.
    CpuLimit,
    /// A signal other than the CPU-time limit killed it.
    Signal(i32),
    /// The launcher could not set up the sandbox (its message is on stderr).
    SetupFailed,
}

impl Exit {
    /// Decodes the launcher's exit status. `None`: the launcher itself was killed.
    pub(crate) fn from_launcher(status: std::process::ExitStatus) -> Option<Self> {
        let code = status.code()?;
        Some(match code {
            0 => Exit::Success,
            c if c == i32::from(EXIT_SETUP_FAILED) => Exit::SetupFailed,
            c if c == i32::from(EXIT_CPU_LIMIT) => Exit::CpuLimit,
            c if c > i32::from(EXIT_SIGNAL_BASE) => Exit::Signal(c - i32::from(EXIT_SIGNAL_BASE)),
            c => Exit::Failed(c),
        })
    }
}

/// If this process was started as the launcher (`argv[1] == "__render-sandbox"`), runs it and
/// returns its exit code; otherwise returns `None` and the program goes on as usual. Call it
/// first in `main`, before any thread (an async runtime) is started.
pub fn run_launcher_if_requested() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(LAUNCHER_ARG.as_ref()) {
        return None;
    }
    let rest: Vec<OsString> = args.collect();
    Some(ExitCode::from(launch(&rest)))
}

fn launch(args: &[OsString]) -> u8 {
    let (bounds, program, program_args) = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(message) => return setup_failed(&message),
    };
    if let Err(message) = confine(&bounds) {
        return setup_failed(&message);
    }
    let mut child = match Command::new(&program).args(program_args).spawn() {
        Ok(child) => child,
        Err(e) => return setup_failed(&format!("cannot run {}: {e}", program.display())),
    };
    // Wait without reaping first: the child's CPU time is readable until it is reaped.
    let pid = Pid::from_child(&child);
    let _ = rustix::process::waitid(
        WaitId::Pid(pid),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
    );
    let cpu_seconds = cpu_seconds_of(pid);
    let status = match child.wait() {
        Ok(status) => status,
        Err(e) => return setup_failed(&format!("waiting for {}: {e}", program.display())),
    };
    exit_code(status, cpu_seconds, bounds.cpu_seconds)
}

fn setup_failed(message: &str) -> u8 {
    eprintln!("berth render sandbox: {message}");
    EXIT_SETUP_FAILED
}

/// What the launcher reports for the child's `status`.
fn exit_code(status: std::process::ExitStatus, cpu_seconds: Option<f64>, cpu_limit: u64) -> u8 {
    if let Some(code) = status.code() {
        return match u8::try_from(code) {
            Ok(code) if code < EXIT_SETUP_FAILED => code,
            _ => 1,
        };
    }
    let signal = status.signal().unwrap_or(0);
    // The kernel sends SIGKILL at the hard CPU limit (SIGXCPU only at a lower soft one); the
    // CPU time tells that kill from any other. /proc counts it in clock ticks, sampled, so it
    // reads a little below what the kernel enforced (0.98 s at a limit of 1 s, measured).
    let at_cpu_limit = cpu_seconds.is_some_and(|s| s >= cpu_limit as f64 * 0.9);
    if (signal == libc::SIGKILL || signal == libc::SIGXCPU) && at_cpu_limit {
        return EXIT_CPU_LIMIT;
    }
    EXIT_SIGNAL_BASE.saturating_add(u8::try_from(signal).unwrap_or(127).min(127))
}

/// `--max-memory BYTES --max-cpu-seconds N -- PROGRAM ARGS…`
fn parse_args(args: &[OsString]) -> Result<(Bounds, PathBuf, &[OsString]), String> {
    let mut memory = None;
    let mut cpu = None;
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].to_str().unwrap_or_default();
        if flag == "--" {
            let program = args
                .get(i + 1)
                .ok_or("no program after `--`")?
                .clone()
                .into();
            let bounds = Bounds {
                memory_bytes: memory.ok_or("--max-memory is required")?,
                cpu_seconds: cpu.ok_or("--max-cpu-seconds is required")?,
            };
            return Ok((bounds, program, &args[i + 2..]));
        }
        let value = args
            .get(i + 1)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("{flag} needs a positive number"))?;
        match flag {
            "--max-memory" => memory = Some(value),
            "--max-cpu-seconds" => cpu = Some(value),
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    Err("missing `--` before the program".into())
}

/// Applies the limits and the network filter to this process, for it and every child.
fn confine(bounds: &Bounds) -> Result<(), String> {
    // Should the agent die, the launcher goes too (kustomize is bounded by its CPU limit).
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|e| format!("setting the parent-death signal: {e}"))?;
    let limit = |resource: Resource, name: &str, value: u64| {
        rustix::process::setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(value),
            },
        )
        .map_err(|e| format!("setting {name} to {value}: {e}"))
    };
    limit(Resource::Data, "RLIMIT_DATA", bounds.memory_bytes)?;
    limit(Resource::Cpu, "RLIMIT_CPU", bounds.cpu_seconds)?;
    limit(Resource::Nofile, "RLIMIT_NOFILE", MAX_OPEN_FILES)?;
    limit(Resource::Core, "RLIMIT_CORE", 0)?;
    let filter = network_filter()?;
    // Sets no_new_privs first, which an unprivileged process needs for a filter of its own.
    seccompiler::apply_filter_all_threads(&filter).map_err(|e| format!("seccomp filter: {e}"))
}

/// The seccomp filter: everything is allowed except the calls listed, which fail with EPERM.
pub(crate) fn network_filter() -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("no seccomp filter for this architecture: {e}"))?;
    let denied: &[i64] = &[
        // Every address family: kustomize reads files on disk and needs no socket at all.
        libc::SYS_socket,
        // Creates sockets and performs I/O on them without passing through socket(2).
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // Reach into another process (the agent, with its API-server connection).
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
    ];
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &number in denied {
        rules.insert(number, Vec::new());
        // The x32 ABI shares the x86_64 audit architecture but numbers its calls with this bit
        // set; without it, an x32 socket(2) would pass a filter keyed on the x86_64 number.
        if arch == TargetArch::x86_64 {
            rules.insert(number | X32_SYSCALL_BIT, Vec::new());
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("building the seccomp filter: {e}"))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("compiling the seccomp filter: {e}"))
}

const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// The CPU time (user + system, the process's own and its waited-for children's) of a process
/// that has exited but is not yet reaped, from `/proc/<pid>/stat`.
fn cpu_seconds_of(pid: Pid) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields 3… follow the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14–17: utime, stime, cutime, cstime, in clock ticks.
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_arguments_round_trip() {
        let bounds = Bounds {
            memory_bytes: 512 << 20,
            cpu_seconds: 30,
        };
        let mut args = bounds.launcher_args();
        args.extend(["kustomize".into(), "build".into(), "dir".into()]);
        let (parsed, program, rest) = parse_args(&args[1..]).unwrap();
        assert_eq!(parsed, bounds);
        assert_eq!(program, PathBuf::from("kustomize"));
        assert_eq!(rest, [OsString::from("build"), OsString::from("dir")]);
    }

    #[test]
    fn bad_launcher_arguments_are_named() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(
            parse_args(&args(&["--max-memory", "x", "--", "k"]))
                .unwrap_err()
                .contains("--max-memory needs a positive number")
        );
        assert!(
            parse_args(&args(&["--max-memory", "1", "--", "k"]))
                .unwrap_err()
                .contains("--max-cpu-seconds is required")
        );
        assert!(
            parse_args(&args(&["--max-memory", "1", "--max-cpu-seconds", "1"]))
                .unwrap_err()
                .contains("missing `--`")
        );
    }

    #[test]
    fn exit_statuses_are_decoded() {
        let exit = |code: i32| Exit::from_launcher(std::process::ExitStatus::from_raw(code << 8));
        assert_eq!(exit(0), Some(Exit::Success));
        assert_eq!(exit(1), Some(Exit::Failed(1)));
        assert_eq!(exit(2), Some(Exit::Failed(2)));
        assert_eq!(exit(120), Some(Exit::SetupFailed));
        assert_eq!(exit(121), Some(Exit::CpuLimit));
        assert_eq!(exit(137), Some(Exit::Signal(9)));
        // The launcher itself killed by a signal.
        assert_eq!(
            Exit::from_launcher(std::process::ExitStatus::from_raw(9)),
            None
        );
    }

    #[test]
    fn a_child_killed_at_its_cpu_limit_is_told_from_other_kills() {
        let killed = std::process::ExitStatus::from_raw(libc::SIGKILL);
        assert_eq!(exit_code(killed, Some(30.0), 30), EXIT_CPU_LIMIT);
        assert_eq!(exit_code(killed, Some(0.98), 1), EXIT_CPU_LIMIT);
        assert_eq!(exit_code(killed, Some(2.0), 30), 128 + 9);
        assert_eq!(exit_code(killed, None, 30), 128 + 9);
        let exited = |code: i32| std::process::ExitStatus::from_raw(code << 8);
        assert_eq!(exit_code(exited(1), None, 30), 1);
        assert_eq!(exit_code(exited(121), None, 30), 1);
    }

    #[test]
    fn the_filter_compiles_for_this_machine() {
        assert!(!network_filter().unwrap().is_empty());
    }
}
