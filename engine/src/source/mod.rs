//! Fetch step: the tenant's repository through gix over HTTPS, SSH or `file://`, one bare
//! cache per tenant, incremental shallow fetches of the followed branch (or the pinned tag,
//! semver range or commit) alone with the pack's size bounded while it arrives, reference →
//! commit, and the commit's files read from its tree
//! without a worktree, within limits.

mod fetch;
mod flags;
mod local;
mod meter;
mod reference;
mod tree;
mod url;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use flags::{GitFlags, PlatformGitFlags};
pub use local::{LocalError, read_local_dir};
pub use reference::{GitRef, RefError, highest_match};
pub use tree::TreeLimits;
pub use url::{RepoUrl, validate_url};

use crate::render::SourceFile;

/// How the agent authenticates to the repository server.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// HTTPS basic auth; for a token, the username the forge expects (e.g. `x-access-token`)
    /// and the token as password. Sent only to the repository's own host.
    Basic { username: String, password: String },
    /// SSH with this private key; the server's host key must be in `known_hosts`.
    Ssh {
        private_key: PathBuf,
        known_hosts: PathBuf,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            Self::Ssh {
                private_key,
                known_hosts,
            } => f
                .debug_struct("Ssh")
                .field("private_key", private_key)
                .field("known_hosts", known_hosts)
                .finish(),
        }
    }
}

impl Auth {
    /// Authentication from command-line settings: basic auth with the password read from a
    /// file, or an SSH key with its known_hosts. SSH URLs require the latter: without them ssh
    /// would fall back to the user's configuration and trust-on-first-use.
    pub fn from_flags(
        url: &RepoUrl,
        username: Option<&str>,
        password_file: Option<&Path>,
        ssh_key: Option<&Path>,
        known_hosts: Option<&Path>,
    ) -> Result<Self, String> {
        let auth = match (username, password_file, ssh_key, known_hosts) {
            (Some(username), Some(file), _, _) => Self::Basic {
                username: username.to_owned(),
                password: std::fs::read_to_string(file)
                    .map_err(|e| format!("password file {}: {e}", file.display()))?
                    .trim_end()
                    .to_owned(),
            },
            (_, _, Some(key), Some(known_hosts)) => Self::Ssh {
                private_key: key.to_path_buf(),
                known_hosts: known_hosts.to_path_buf(),
            },
            _ => Self::None,
        };
        if url.is_ssh() && !matches!(auth, Self::Ssh { .. }) {
            return Err(format!(
                "{url}: SSH repositories need an SSH key and a known_hosts file"
            ));
        }
        Ok(auth)
    }
}

/// Where and how to fetch.
#[derive(Clone, Debug)]
pub struct GitSource {
    pub url: RepoUrl,
    /// The branch followed, or the tag, range or commit pinned.
    pub git_ref: GitRef,
    /// The bare cache repository (created on first fetch).
    pub cache_dir: PathBuf,
    pub auth: Auth,
    /// PEM bundle of the only CAs trusted for HTTPS (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Connect and read timeout.
    pub timeout: Duration,
    pub limits: TreeLimits,
    /// The `ssh` program.
    pub ssh_program: String,
}

/// A fetched commit and its files.
#[derive(Clone, Debug)]
pub struct Revision {
    /// The commit id (hex).
    pub commit: String,
    /// Every regular file of the commit, paths relative to the repository root.
    pub files: Vec<SourceFile>,
    /// Bytes of pack data this fetch received (0 when the branch had not moved).
    pub received_bytes: u64,
    /// What the reference resolved to (the tag a semver range chose; otherwise itself).
    pub resolved: GitRef,
}

/// Why a revision could not be fetched. No variant carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid repository URL: {0}")]
    Url(String),
    #[error("opening the repository cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
    /// The pack broke a bound while it arrived (bytes, objects, inflated size).
    #[error("fetching {url}: {reason}")]
    PackLimit { url: String, reason: String },
    #[error("{0}")]
    Ref(String),
    #[error("{reference} does not exist in {url}")]
    RefNotFound { url: String, reference: String },
    #[error("reading commit {commit}: {reason}")]
    Tree { commit: String, reason: String },
    #[error("{path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("the revision exceeds a limit: {0}")]
    Limit(String),
}

impl GitSource {
    /// Fetches the reference and reads its commit. Blocking: call from a blocking thread.
    pub fn fetch(&self, interrupt: &AtomicBool) -> Result<Revision, SourceError> {
        self.git_ref
            .validate()
            .map_err(|e| SourceError::Ref(e.to_string()))?;
        let repo = fetch::open_cache(&self.cache_dir, self.url.is_file(), &self.limits)?;
        let fetched =
            fetch::fetch(&repo, self, interrupt)?.ok_or_else(|| SourceError::RefNotFound {
                url: self.url.to_string(),
                reference: self.git_ref.to_string(),
            })?;
        let files = tree::read(&repo, fetched.commit, &self.limits)?;
        Ok(Revision {
            commit: fetched.commit.to_string(),
            files,
            received_bytes: fetched.received.bytes,
            resolved: fetched.resolved,
        })
    }
}

fn gix_reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
