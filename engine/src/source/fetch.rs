//! The gix side of fetching: an isolated bare cache (no user, system or environment git
//! configuration), a forced fetch of every branch into remote-tracking refs, and credentials
//! and TLS roots supplied in code rather than by helpers or environment.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::protocol::transport::client::blocking_io::http as gix_http;

use super::{Auth, GitSource, SourceError, gix_reason};

const TRACKING_PREFIX: &str = "refs/remotes/origin/";
// Forced, so a force-pushed branch is followed rather than refused.
const FETCH_REFSPEC: &str = "+refs/heads/*:refs/remotes/origin/*";

fn open_options(allow_file: bool) -> gix::open::Options {
    let mut overrides = vec![
        "protocol.allow=never".to_owned(),
        "protocol.https.allow=always".to_owned(),
        "protocol.ssh.allow=always".to_owned(),
        "gitoxide.credentials.terminalPrompt=false".to_owned(),
    ];
    if allow_file {
        overrides.push("protocol.file.allow=always".to_owned());
    }
    gix::open::Options::isolated()
        .with(gix::sec::Trust::Full)
        .config_overrides(overrides)
}

/// Opens the bare cache, creating it on first use.
pub fn open_cache(dir: &Path, allow_file: bool) -> Result<gix::Repository, SourceError> {
    let cache_error = |reason: String| SourceError::Cache {
        path: dir.to_path_buf(),
        reason,
    };
    let exists = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(cache_error(e.to_string())),
    };
    let options = open_options(allow_file);
    let repo = if exists {
        gix::open_opts(dir, options.open_path_as_is(true))
            .map_err(|e| cache_error(gix_reason(&e)))?
    } else {
        // A cache directory nested in a fresh state directory: its parents may not exist yet.
        std::fs::create_dir_all(dir).map_err(|e| cache_error(e.to_string()))?;
        gix::ThreadSafeRepository::init_opts(
            dir,
            gix::create::Kind::Bare,
            gix::create::Options::default(),
            options,
        )
        .map_err(|e| cache_error(gix_reason(&e)))?
        .to_thread_local()
    };
    if !repo.is_bare() {
        return Err(cache_error("not a bare repository".into()));
    }
    Ok(repo)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The ssh command line: only this key, only this known_hosts, strict host key checking,
/// no agent, no prompts, no user or system ssh configuration; its messages go to `log`.
fn ssh_command(
    source: &GitSource,
    key: &Path,
    known_hosts: &Path,
    log: &Path,
) -> Result<String, SourceError> {
    let text = |p: &Path| {
        p.to_str()
            .map(shell_quote)
            .ok_or_else(|| SourceError::Url(format!("{} is not UTF-8", p.display())))
    };
    Ok(format!(
        "{} -F /dev/null -i {} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
         -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
         -o UpdateHostKeys=no -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
         -o ConnectTimeout={} -o ServerAliveInterval=15 -o ServerAliveCountMax=3 -o LogLevel=ERROR \
         -E {}",
        shell_quote(&source.ssh_program),
        text(key)?,
        text(known_hosts)?,
        source.timeout.as_secs().max(1),
        text(log)?,
    ))
}

/// The reason ssh gave up, from its log: its last lines, without the banner of `@` lines it
/// prints around a changed host key. Bounded, as the log is read into a status message.
fn ssh_diagnostics(log: &Path) -> Option<String> {
    let mut text = Vec::new();
    std::fs::File::open(log)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut text))
        .ok()?;
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('@'))
        .collect();
    let last = lines[lines.len().saturating_sub(2)..].join(" ");
    (!last.is_empty()).then(|| last.chars().take(512).collect())
}

/// Fetches every branch; returns the remote's branches and their commits. Tracking refs of
/// branches deleted upstream are removed (gix does not prune).
pub fn fetch(
    repo: &gix::Repository,
    source: &GitSource,
    interrupt: &AtomicBool,
) -> Result<BTreeMap<String, ObjectId>, SourceError> {
    let shown = source.url.to_string();
    // gix passes on only the few ssh messages it recognises and lets the rest (a changed or
    // unknown host key among them) reach the agent's stderr, leaving the status with "failed
    // to fill whole buffer"; so ssh logs to a file that failures quote.
    let ssh_log = match &source.auth {
        Auth::Ssh { .. } => Some(
            tempfile::Builder::new()
                .prefix("ssh-")
                .suffix(".log")
                .tempfile_in(repo.path())
                .map_err(|e| SourceError::Cache {
                    path: source.cache_dir.clone(),
                    reason: format!("ssh log file: {e}"),
                })?,
        ),
        _ => None,
    };
    // gix's and ssh's messages may quote the URL: they are shown redacted like the URL itself.
    let failed = |reason: String| {
        let reason = match ssh_log.as_ref().and_then(|log| ssh_diagnostics(log.path())) {
            Some(ssh) => format!("{reason} (ssh: {ssh})"),
            None => reason,
        };
        SourceError::Fetch {
            url: shown.clone(),
            reason: source.url.redact(&reason),
        }
    };
    let mut repo = repo.clone();
    if let (
        Auth::Ssh {
            private_key,
            known_hosts,
        },
        Some(log),
    ) = (&source.auth, &ssh_log)
    {
        let command = ssh_command(source, private_key, known_hosts, log.path())?;
        let mut config = repo.config_snapshot_mut();
        config
            .set_value(&gix::config::tree::Core::SSH_COMMAND, command.as_str())
            .map_err(|e| failed(gix_reason(&e)))?;
        // Without it gix first probes the client with `ssh -G`.
        config
            .set_value(&gix::config::tree::Ssh::VARIANT, "ssh")
            .map_err(|e| failed(gix_reason(&e)))?;
        config.commit().map_err(|e| failed(gix_reason(&e)))?;
    }

    let remote = repo
        .remote_at(source.url.gix().clone())
        .map_err(|e| failed(gix_reason(&e)))?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs([FETCH_REFSPEC], gix::remote::Direction::Fetch)
        .map_err(|e| failed(gix_reason(&e)))?;
    let mut connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| failed(gix_reason(&e)))?;

    if source.url.is_https() {
        connection = connection.with_transport_options(Box::new(http_options(&repo, source)?));
    }

    let account = match &source.auth {
        Auth::Basic { username, password } => Some(gix::sec::identity::Account {
            username: username.clone(),
            password: password.clone(),
            oauth_refresh_token: None,
        }),
        _ => None,
    };
    let expected_host = source.url.host().map(ToOwned::to_owned);
    // Always installed, so git's credential helpers are never consulted; credentials go only
    // to the repository's own host (not to a host a redirect names).
    let connection = connection.with_credentials(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => {
            let same_host = ctx
                .url
                .as_ref()
                .and_then(|u| gix::url::parse(u.as_bstr()).ok())
                .is_some_and(|u| u.host().map(ToOwned::to_owned) == expected_host);
            Ok(match (&account, same_host) {
                (Some(identity), true) => Some(gix::credentials::protocol::Outcome {
                    identity: identity.clone(),
                    next: ctx.into(),
                }),
                _ => None,
            })
        }
        _ => Ok(None),
    });

    let outcome = connection
        .prepare_fetch(
            gix::progress::Discard,
            gix::remote::ref_map::Options::default(),
        )
        .map_err(|e| failed(gix_reason(&e)))?
        .with_write_packed_refs_only(true)
        .receive(gix::progress::Discard, interrupt)
        .map_err(|e| failed(gix_reason(&e)))?;

    let mut heads = BTreeMap::new();
    for r in &outcome.ref_map.remote_refs {
        let (name, target, peeled) = r.unpack();
        if let (Some(branch), Some(id)) = (name.strip_prefix(b"refs/heads/"), peeled.or(target)) {
            heads.insert(branch.to_str_lossy().into_owned(), id.to_owned());
        }
    }
    prune_tracking_refs(&repo, &heads).map_err(failed)?;
    Ok(heads)
}

fn http_options(
    repo: &gix::Repository,
    source: &GitSource,
) -> Result<gix_http::Options, SourceError> {
    let failed = |reason: String| SourceError::Fetch {
        url: source.url.to_string(),
        reason: source.url.redact(&reason),
    };
    // Start from the repository's options: a fresh object would drop gix's own settings.
    let url = source.url.gix().to_bstring();
    let mut options: gix_http::Options = match repo
        .transport_options(url.as_bstr(), None)
        .map_err(|e| failed(gix_reason(&e)))?
    {
        Some(any) => any
            .downcast::<gix_http::Options>()
            .map(|b| *b)
            .unwrap_or_default(),
        None => gix_http::Options::default(),
    };
    // The reqwest backend ignores http.sslCAInfo and proxies from git config; it reads proxy
    // variables from the environment itself, so both are set here.
    let roots = match &source.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| failed(format!("CA file {}: {e}", path.display())))?;
            Some(
                reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| failed(format!("CA file {}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let timeout = source.timeout;
    let backend = gix_http::reqwest::Options {
        configure_client: Some(Box::new(
            move |builder: reqwest::blocking::ClientBuilder| -> gix::Result<reqwest::blocking::ClientBuilder> {
                let mut builder = builder
                    .no_proxy()
                    .connect_timeout(timeout)
                    .timeout(timeout)
                    .https_only(true);
                if let Some(roots) = &roots {
                    builder = builder.tls_certs_only(roots.clone());
                }
                Ok(builder)
            },
        )),
        configure_request: None,
    };
    options.backend =
        Some(Arc::new(Mutex::new(backend)) as Arc<Mutex<dyn std::any::Any + Send + Sync>>);
    Ok(options)
}

fn prune_tracking_refs(
    repo: &gix::Repository,
    heads: &BTreeMap<String, ObjectId>,
) -> Result<(), String> {
    let platform = repo.references().map_err(|e| gix_reason(&e))?;
    let mut stale = Vec::new();
    for r in platform
        .prefixed(TRACKING_PREFIX)
        .map_err(|e| gix_reason(&e))?
    {
        let r = r.map_err(|e| e.to_string())?;
        let name = r.name().as_bstr();
        let branch = name
            .strip_prefix(TRACKING_PREFIX.as_bytes())
            .unwrap_or(name.as_bytes());
        if !heads.contains_key(branch.to_str_lossy().as_ref()) {
            stale.push(r);
        }
    }
    for r in stale {
        r.delete().map_err(|e| gix_reason(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_diagnostics_quote_the_last_lines_without_the_banner() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ssh.log");
        std::fs::write(
            &log,
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
             @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
             @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
             IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n\
             Offending ED25519 key in /tmp/known_hosts:1\r\n\
             Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\r\n\
             Host key verification failed.\r\n",
        )
        .unwrap();
        assert_eq!(
            ssh_diagnostics(&log).as_deref(),
            Some(
                "Host key for [127.0.0.1]:2222 has changed and you have requested strict \
                 checking. Host key verification failed."
            )
        );
        std::fs::write(&log, "git@host: Permission denied (publickey).\n").unwrap();
        assert_eq!(
            ssh_diagnostics(&log).as_deref(),
            Some("git@host: Permission denied (publickey).")
        );
        std::fs::write(&log, "").unwrap();
        assert_eq!(ssh_diagnostics(&log), None);
        std::fs::write(&log, "x".repeat(10_000)).unwrap();
        assert_eq!(ssh_diagnostics(&log).map(|d| d.len()), Some(512));
        assert_eq!(ssh_diagnostics(&dir.path().join("missing")), None);
    }
}
