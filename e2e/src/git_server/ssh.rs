//! The SSH Git server: Debian's openssh-server in the foreground on a loopback port, with a
//! throwaway host key and one authorized throwaway client key, for the current user; killed
//! on drop, with any connection it is still serving.

use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A loopback sshd through which the bare repositories under one directory are fetched.
pub struct SshGitServer {
    dir: tempfile::TempDir,
    root: PathBuf,
    user: String,
    pub(super) port: u16,
    pub(super) sshd: Child,
}

impl SshGitServer {
    /// Starts sshd for the repositories under `repo_root` (an absolute path) on a free
    /// 127.0.0.1 port; panics with sshd's log if it does not come up. Call it from the test's
    /// own thread: sshd is killed when the thread that started it exits, which for a pooled
    /// thread (`spawn_blocking`) can be mid-test.
    pub fn start(repo_root: &Path) -> Self {
        assert!(
            repo_root.is_absolute(),
            "{} is not absolute",
            repo_root.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-sshd-")
            .tempdir()
            .expect("temp dir");
        let user = current_user();
        // sshd refuses to start without its privilege-separation directory, which a fresh
        // container may lack.
        if !Path::new("/run/sshd").is_dir() {
            std::fs::create_dir_all("/run/sshd").expect("creating /run/sshd");
        }
        keygen(&dir.path().join("host_key"), "berth-e2e-host");
        keygen(&dir.path().join("other_host_key"), "berth-e2e-impostor");
        keygen(&dir.path().join("client_key"), "berth-e2e-client");
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("writing authorized_keys");

        // The port is picked before sshd binds it, so another process may take it first;
        // sshd then exits at once and another port is tried.
        let mut attempts = 0;
        let (sshd, port) = loop {
            attempts += 1;
            let port = super::free_port();
            let config = dir.path().join("sshd_config");
            std::fs::write(&config, sshd_config(dir.path(), port, &user)).expect("sshd_config");
            let log = dir.path().join("sshd.log");
            let mut sshd = spawn_sshd(&config, &log);
            match wait_until_listening(&mut sshd, port) {
                Ok(()) => break (sshd, port),
                Err(why) => {
                    let _ = sshd.kill();
                    let _ = sshd.wait();
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if attempts < 3 && text.contains("Address already in use") {
                        continue;
                    }
                    panic!(
                        "sshd did not come up on 127.0.0.1:{port}: {why}\n---- sshd log ----\n{text}"
                    );
                }
            }
        };

        let host_key = read_public_key(&dir.path().join("host_key.pub"));
        let other_key = read_public_key(&dir.path().join("other_host_key.pub"));
        std::fs::write(
            dir.path().join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_key}\n"),
        )
        .expect("known_hosts");
        std::fs::write(
            dir.path().join("wrong_known_hosts"),
            format!("[127.0.0.1]:{port} {other_key}\n"),
        )
        .expect("wrong known_hosts");
        Self {
            dir,
            root: repo_root.to_path_buf(),
            user,
            port,
            sshd,
        }
    }

    /// `ssh://USER@127.0.0.1:PORT/ROOT/NAME` for the repository directory `name` under the
    /// root (e.g. `repo.git`).
    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            self.root.join(name).display()
        )
    }

    /// The private key the server accepts.
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A known_hosts file holding the server's host key.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// A known_hosts file naming this server with a different key, as after a man in the
    /// middle took its place.
    pub fn wrong_known_hosts_path(&self) -> PathBuf {
        self.dir.path().join("wrong_known_hosts")
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshGitServer {
    fn drop(&mut self) {
        // sshd puts each connection in a session of its own (setsid), so neither a signal to
        // the listener nor one to its process group reaches them: they are found and killed
        // by parent before the listener goes.
        let listener = self.sshd.id();
        for pid in children_of(listener) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        if std::thread::panicking() {
            eprintln!("---- sshd log ----\n{}", self.log());
        }
    }
}

fn sshd_config(dir: &Path, port: u16, user: &str) -> String {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut config = format!(
        "ListenAddress 127.0.0.1:{port}\n\
         HostKey {host_key}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         AllowUsers {user}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         PidFile none\n\
         AcceptEnv GIT_PROTOCOL\n\
         AllowTcpForwarding no\n\
         AllowAgentForwarding no\n\
         X11Forwarding no\n\
         PermitTTY no\n\
         PrintMotd no\n\
         LogLevel VERBOSE\n",
        host_key = path("host_key"),
        authorized_keys = path("authorized_keys"),
    );
    // Key-only root login: the suite runs as root in CI.
    if user == "root" {
        config.push_str("PermitRootLogin prohibit-password\n");
    }
    config
}

fn spawn_sshd(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("sshd log file");
    // setpriv's parent-death signal kills sshd even if the test process dies without
    // dropping the server (killed, aborted); sshd needs its absolute path to re-execute.
    Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--", SSHD, "-D", "-e", "-f"])
        .arg(config)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting sshd (setpriv from util-linux, openssh-server)")
}

/// Waits until sshd greets on `port` (its `SSH-2.0-` banner), or fails if it exits or the
/// time runs out.
fn wait_until_listening(sshd: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = sshd.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("sshd exited: {status}"));
        }
        if let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0u8; 8];
            if stream.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0") {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("not listening after {START_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("running ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `TYPE BASE64` of a `.pub` file, without its comment.
fn read_public_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("public key");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The login name the suite runs as (root in CI).
fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .expect("running id -un");
    assert!(out.status.success(), "id -un failed");
    String::from_utf8(out.stdout)
        .expect("user name")
        .trim()
        .to_owned()
}

/// Processes whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let child: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // The command name (field 2) is parenthesised and may hold spaces; the parent pid
            // is the second field after it.
            let after_name = &stat[stat.rfind(')')? + 1..];
            let parent: u32 = after_name.split_whitespace().nth(1)?.parse().ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}
