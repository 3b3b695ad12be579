//! The gix side of fetching: an isolated bare cache (no user, system or environment git
//! configuration), a forced, shallow fetch of the followed reference alone (a branch, a tag,
//! the tag a semver range chose from the server's list, or a commit by its id) into its
//! remote-tracking ref, within the pack limits, and credentials and TLS roots supplied in code
//! rather than by helpers or environment.

use std::io::Read;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::protocol::transport::client::blocking_io::http as gix_http;

use super::meter::{Meter, PackLimits, Received};
use super::reference::{GitRef, highest_match};
use super::{Auth, GitSource, SourceError, TreeLimits, gix_reason};

const TRACKING_PREFIX: &str = "refs/remotes/origin/";

/// A fetched commit, the reference it was fetched for (the tag a range chose), and what it
/// took.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub commit: ObjectId,
    pub resolved: GitRef,
    pub received: Received,
}

fn open_options(allow_file: bool, limits: &TreeLimits) -> gix::open::Options {
    let mut overrides = vec![
        "protocol.allow=never".to_owned(),
        "protocol.https.allow=always".to_owned(),
        "protocol.ssh.allow=always".to_owned(),
        "gitoxide.credentials.terminalPrompt=false".to_owned(),
        // No single allocation caused by object data (a pack entry's claimed size, a delta's
        // result, an object read later) beyond what a whole pack may inflate to.
        format!("gitoxide.objects.allocLimit={}", limits.max_inflated_bytes),
    ];
    if allow_file {
        overrides.push("protocol.file.allow=always".to_owned());
    }
    gix::open::Options::isolated()
        .with(gix::sec::Trust::Full)
        .config_overrides(overrides)
}

/// Each fetch adds a pack and a shallow boundary; past this many packs the cache is started
/// afresh, its next fetch being one commit deep (what a first fetch costs) instead of a
/// growing index of packs and list of shallow commits sent with every fetch.
const MAX_PACKS: usize = 32;
/// Lock files gix takes during a fetch. A cache has one user (one agent per tenant, the
/// operator's leader for the platform repository), so one found at opening was left by a
/// process killed mid-fetch, and would otherwise block every fetch after it.
const LOCKS: [&str; 2] = ["shallow.lock", "packed-refs.lock"];

fn pack_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("objects").join("pack")).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .count()
    })
}

/// Opens the bare cache, creating it on first use (or anew once it holds too many packs).
pub fn open_cache(
    dir: &Path,
    allow_file: bool,
    limits: &TreeLimits,
) -> Result<gix::Repository, SourceError> {
    let cache_error = |reason: String| SourceError::Cache {
        path: dir.to_path_buf(),
        reason,
    };
    let mut exists = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(cache_error(e.to_string())),
    };
    // Only ever a cache of ours: a git directory with more packs than any fetch leaves.
    if exists && dir.join("HEAD").is_file() && pack_count(dir) > MAX_PACKS {
        std::fs::remove_dir_all(dir).map_err(|e| cache_error(format!("starting afresh: {e}")))?;
        exists = false;
    }
    if exists {
        for lock in LOCKS {
            match std::fs::remove_file(dir.join(lock)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(cache_error(format!("{lock}: {e}")));
                }
                _ => {}
            }
        }
    }
    let options = open_options(allow_file, limits);
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

/// An SSH log file for the connection, if it uses SSH: gix passes on only the few ssh
/// messages it recognises and lets the rest (a changed or unknown host key among them) reach
/// the agent's stderr, leaving the status with "failed to fill whole buffer"; so ssh logs to a
/// file that failures quote.
fn ssh_log(
    repo: &gix::Repository,
    source: &GitSource,
) -> Result<Option<tempfile::NamedTempFile>, SourceError> {
    match &source.auth {
        Auth::Ssh { .. } => tempfile::Builder::new()
            .prefix("ssh-")
            .suffix(".log")
            .tempfile_in(repo.path())
            .map(Some)
            .map_err(|e| SourceError::Cache {
                path: source.cache_dir.clone(),
                reason: format!("ssh log file: {e}"),
            }),
        _ => Ok(None),
    }
}

/// An error of the connection, shown redacted like the URL (gix's and ssh's messages may quote
/// it), with ssh's own last words when it gave up.
fn failure(
    source: &GitSource,
    log: Option<&tempfile::NamedTempFile>,
    reason: String,
) -> SourceError {
    let reason = match log.and_then(|log| ssh_diagnostics(log.path())) {
        Some(ssh) => format!("{reason} (ssh: {ssh})"),
        None => reason,
    };
    SourceError::Fetch {
        url: source.url.to_string(),
        reason: source.url.redact(&reason),
    }
}

/// Sets the locked-down ssh command if the repository is reached over SSH.
fn configure_ssh(
    repo: &mut gix::Repository,
    source: &GitSource,
    log: Option<&tempfile::NamedTempFile>,
) -> Result<(), SourceError> {
    let failed = |reason: String| failure(source, log, reason);
    if let (
        Auth::Ssh {
            private_key,
            known_hosts,
        },
        Some(log),
    ) = (&source.auth, log)
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
    Ok(())
}

/// The remote to fetch `refspec` from.
fn remote<'repo>(
    repo: &'repo gix::Repository,
    source: &GitSource,
    refspec: &str,
    log: Option<&tempfile::NamedTempFile>,
) -> Result<gix::Remote<'repo>, SourceError> {
    let failed = |reason: String| failure(source, log, reason);
    repo.remote_at(source.url.gix().clone())
        .map_err(|e| failed(gix_reason(&e)))?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs([refspec], gix::remote::Direction::Fetch)
        .map_err(|e| failed(gix_reason(&e)))
}

/// A connection of `remote` with the HTTPS roots and timeouts, and credentials for the
/// repository's own host only.
fn connect<'remote, 'repo>(
    remote: &'remote gix::Remote<'repo>,
    source: &GitSource,
    log: Option<&tempfile::NamedTempFile>,
) -> Result<
    gix::remote::Connection<
        'remote,
        'static,
        'repo,
        Box<dyn gix::protocol::transport::client::blocking_io::Transport + Send>,
    >,
    SourceError,
> {
    let failed = |reason: String| failure(source, log, reason);
    let mut connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| failed(gix_reason(&e)))?;
    if source.url.is_https() {
        connection =
            connection.with_transport_options(Box::new(http_options(remote.repo(), source)?));
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
    Ok(connection.with_credentials(move |action| match action {
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
    }))
}

/// The names of the repository's tags (without `refs/tags/`), as the server lists them; no
/// object is fetched.
fn remote_tags(repo: &gix::Repository, source: &GitSource) -> Result<Vec<String>, SourceError> {
    let mut repo = repo.clone();
    let log = ssh_log(&repo, source)?;
    let failed = |reason: String| failure(source, log.as_ref(), reason);
    configure_ssh(&mut repo, source, log.as_ref())?;
    let remote = remote(&repo, source, "refs/tags/*:refs/tags/*", log.as_ref())?;
    let connection = connect(&remote, source, log.as_ref())?;
    let prepare = connection
        .prepare_fetch(
            gix::progress::Discard,
            gix::remote::ref_map::Options::default(),
        )
        .map_err(|e| failed(gix_reason(&e)))?;
    Ok(prepare
        .ref_map()
        .remote_refs
        .iter()
        .filter_map(|r| {
            let name = r.unpack().0.to_str().ok()?;
            name.strip_prefix("refs/tags/").map(ToOwned::to_owned)
        })
        .collect())
}

/// What to fetch for a reference: the remote ref (or commit) asked for and where it is kept.
struct Target {
    /// The remote ref, or `None` for a commit asked for by its id.
    wanted: Option<String>,
    commit: Option<ObjectId>,
    tracking: String,
    /// What it resolved to, for the status: the tag a range chose.
    resolved: GitRef,
}

fn target(repo: &gix::Repository, source: &GitSource) -> Result<Option<Target>, SourceError> {
    let tracked = |name: &str, resolved: GitRef| Target {
        wanted: resolved.remote_name(),
        commit: None,
        tracking: format!("{TRACKING_PREFIX}{name}"),
        resolved,
    };
    Ok(Some(match &source.git_ref {
        GitRef::Branch(b) => tracked(b, source.git_ref.clone()),
        GitRef::Tag(t) => tracked(&format!("tags/{t}"), source.git_ref.clone()),
        GitRef::Semver(range) => {
            let tags = remote_tags(repo, source)?;
            let chosen = highest_match(range, tags.iter().map(String::as_str))
                .map_err(|e| SourceError::Ref(e.to_string()))?;
            let Some(tag) = chosen else {
                return Ok(None);
            };
            tracked(&format!("tags/{tag}"), GitRef::Tag(tag.to_owned()))
        }
        GitRef::Commit(c) => Target {
            wanted: None,
            commit: Some(
                ObjectId::from_hex(c.as_bytes()).map_err(|e| SourceError::Ref(e.to_string()))?,
            ),
            tracking: format!("{TRACKING_PREFIX}pinned"),
            resolved: source.git_ref.clone(),
        },
    }))
}

/// Fetches the followed reference alone, one commit deep, into its tracking ref; `None` if the
/// remote has no such reference. Aborts as soon as the pack breaks a limit. Other tracking
/// refs (a deleted branch's, an earlier pin's) are removed: gix does not prune.
pub fn fetch(
    repo: &gix::Repository,
    source: &GitSource,
    interrupt: &AtomicBool,
) -> Result<Option<Fetched>, SourceError> {
    let Some(target) = target(repo, source)? else {
        prune_tracking_refs(repo, None).map_err(|e| failure(source, None, e))?;
        return Ok(None);
    };
    let mut repo = repo.clone();
    let log = ssh_log(&repo, source)?;
    let failed = |reason: String| failure(source, log.as_ref(), reason);
    let tracking = target.tracking.clone();
    // Forced, so a force-pushed branch is followed rather than refused.
    let refspec = match (&target.wanted, &target.commit) {
        (Some(wanted), _) => format!("+{wanted}:{tracking}"),
        (None, Some(commit)) => format!("+{commit}:{tracking}"),
        (None, None) => return Ok(None),
    };
    configure_ssh(&mut repo, source, log.as_ref())?;
    let remote = remote(&repo, source, &refspec, log.as_ref())?;
    let connection = connect(&remote, source, log.as_ref())?;

    // The refspec names one ref, so the server lists (protocol v2) and sends only that one.
    let prepare = connection
        .prepare_fetch(
            gix::progress::Discard,
            gix::remote::ref_map::Options::default(),
        )
        .map_err(|e| failed(gix_reason(&e)))?;
    // A commit asked for by its id is not listed: the server is asked for it directly.
    let remote_head = target.commit.or_else(|| {
        prepare.ref_map().remote_refs.iter().find_map(|r| {
            let (name, oid, peeled) = r.unpack();
            (Some(name.to_str().ok()?) == target.wanted.as_deref())
                .then(|| peeled.or(oid).map(ToOwned::to_owned))
                .flatten()
        })
    });
    let Some(commit) = remote_head else {
        drop(prepare);
        prune_tracking_refs(&repo, None).map_err(failed)?;
        return Ok(None);
    };
    let have = repo
        .try_find_reference(tracking.as_str())
        .ok()
        .flatten()
        .and_then(|r| r.target().try_id().map(ToOwned::to_owned));
    // Nothing new: a shallow fetch would negotiate the tip again for an empty pack.
    if have == Some(commit) && repo.has_object(commit) {
        drop(prepare);
        prune_tracking_refs(&repo, Some(&tracking)).map_err(failed)?;
        return Ok(Some(Fetched {
            commit,
            resolved: target.resolved,
            received: Received::default(),
        }));
    }

    let limits = &source.limits;
    let meter = Meter::new(PackLimits {
        max_bytes: limits.max_pack_bytes,
        max_objects: limits.max_pack_objects,
        max_inflated_bytes: limits.max_inflated_bytes,
    });
    // One commit deep: a new or rewritten history costs its tip, not its past. The objects of
    // the commit we have are still left out (it is sent as a `have`).
    let prepare = prepare
        .with_write_packed_refs_only(true)
        .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN));
    let done = AtomicBool::new(false);
    let received = std::thread::scope(|scope| {
        // gix polls one flag: the meter's, which the caller's interrupt is forwarded to.
        let watcher = scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if interrupt.load(Ordering::SeqCst) {
                    meter.stop();
                    break;
                }
                std::thread::park_timeout(Duration::from_millis(50));
            }
        });
        let received = prepare.receive(meter.clone(), meter.stop_flag());
        done.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        received
    });
    if let Some(exceeded) = meter.exceeded() {
        // Stopped, or (the bound crossed by the very last read) complete: either way the
        // branch is not taken, so the next fetch asks for it again.
        if received.is_ok() {
            remove_ref(&repo, &tracking).map_err(failed)?;
        }
        return Err(SourceError::PackLimit {
            url: source.url.to_string(),
            reason: exceeded.to_string(),
        });
    }
    if received.is_err() && interrupt.load(Ordering::SeqCst) {
        return Err(failed("interrupted".into()));
    }
    received.map_err(|e| failed(gix_reason(&e)))?;
    prune_tracking_refs(&repo, Some(&tracking)).map_err(failed)?;
    let received = meter.received();
    tracing::info!(
        repo = %source.url,
        reference = %target.resolved,
        %commit,
        pack_bytes = received.bytes,
        objects = received.objects,
        "fetched"
    );
    // A tag that peels to something else than a commit is not a revision.
    if !repo
        .find_object(commit)
        .is_ok_and(|o| o.kind == gix::object::Kind::Commit)
    {
        return Err(failed(format!(
            "{} does not name a commit",
            target.resolved
        )));
    }
    Ok(Some(Fetched {
        commit,
        resolved: target.resolved,
        received,
    }))
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

/// Removes every tracking ref but `keep`.
fn prune_tracking_refs(repo: &gix::Repository, keep: Option<&str>) -> Result<(), String> {
    let platform = repo.references().map_err(|e| gix_reason(&e))?;
    let mut stale = Vec::new();
    for r in platform
        .prefixed(TRACKING_PREFIX)
        .map_err(|e| gix_reason(&e))?
    {
        let r = r.map_err(|e| e.to_string())?;
        if keep.is_none_or(|keep| r.name().as_bstr() != keep.as_bytes()) {
            stale.push(r);
        }
    }
    for r in stale {
        r.delete().map_err(|e| gix_reason(&e))?;
    }
    Ok(())
}

fn remove_ref(repo: &gix::Repository, name: &str) -> Result<(), String> {
    match repo.try_find_reference(name).map_err(|e| gix_reason(&e))? {
        Some(r) => r.delete().map_err(|e| gix_reason(&e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_caps_allocations_by_object_data() {
        let dir = tempfile::tempdir().unwrap();
        let limits = TreeLimits {
            max_inflated_bytes: 12345678,
            ..TreeLimits::default()
        };
        for _ in 0..2 {
            // Created, then opened.
            let repo = open_cache(&dir.path().join("cache"), false, &limits).unwrap();
            assert_eq!(
                repo.config_snapshot()
                    .integer("gitoxide.objects.allocLimit"),
                Some(12345678)
            );
        }
    }

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
