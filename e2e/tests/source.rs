//! The fetch step on its own (no cluster) against real Git: `file://`, smart HTTP behind TLS
//! and SSH on loopback. Only the followed branch is fetched, one commit deep and then
//! incrementally; force-pushes and deleted branches are followed; a pack over a limit is
//! stopped while it arrives and leaves nothing behind; what is shown of a URL hides its user.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use berth_e2e::blob::{Content, commit_large_file, dir_size};
use berth_e2e::{HttpsGitServer, SshGitServer, TestRepo};
use berth_engine::source::{
    Auth, GitRef, GitSource, Revision, SourceError, TreeLimits, validate_url,
};

const MIB: u64 = 1024 * 1024;

fn source(url: &str, cache: &Path, auth: Auth, ca_file: Option<PathBuf>) -> GitSource {
    GitSource {
        url: validate_url(url).expect("valid URL"),
        git_ref: GitRef::Branch("main".into()),
        cache_dir: cache.to_path_buf(),
        auth,
        ca_file,
        timeout: Duration::from_secs(20),
        limits: TreeLimits::default(),
        ssh_program: "ssh".into(),
    }
}

fn fetch(source: &GitSource) -> Result<Revision, SourceError> {
    source.fetch(&AtomicBool::new(false))
}

fn file<'a>(revision: &'a Revision, path: &str) -> &'a str {
    let file = revision
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} in the revision"));
    std::str::from_utf8(&file.content).expect("UTF-8")
}

/// `git ARGS` in the cache; its stdout, or `None` if git failed.
fn git(cache: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(cache)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("running git");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn tracking_refs(cache: &Path) -> String {
    git(
        cache,
        &["for-each-ref", "--format=%(refname)", "refs/remotes"],
    )
    .expect("for-each-ref")
}

/// 1 MiB that does not compress, so whether it was sent again shows in the bytes received.
fn incompressible() -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    (0..MIB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[test]
fn only_the_followed_branch_is_fetched_one_commit_deep_then_incrementally() {
    let repo = TestRepo::new();
    repo.write("config.yaml", "v: 1\n")
        .write("data.bin", incompressible());
    let first = repo.commit("first");
    repo.write("config.yaml", "v: 2\n");
    let second = repo.commit("second");
    // 32 MiB on a branch nobody follows.
    commit_large_file(
        &repo.bare(),
        "big",
        Some("refs/heads/main"),
        &[],
        ("big.bin", 32 * MIB, Content::Random),
    );
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path().join("team-a");
    let source = source(&repo.file_url(), &cache, Auth::None, None);

    let revision = fetch(&source).unwrap();
    assert_eq!(revision.commit, second);
    assert_eq!(file(&revision, "config.yaml"), "v: 2\n");
    eprintln!("first fetch: {} bytes received", revision.received_bytes);
    assert!(
        (MIB..MIB + 64 * 1024).contains(&revision.received_bytes),
        "{} bytes received",
        revision.received_bytes
    );
    assert!(
        dir_size(&cache) < 2 * MIB,
        "cache of {} bytes",
        dir_size(&cache)
    );
    // One commit deep: the parent was not fetched, and nothing of the other branch.
    assert_eq!(
        git(&cache, &["rev-parse", "--is-shallow-repository"]).as_deref(),
        Some("true")
    );
    assert_eq!(git(&cache, &["cat-file", "-e", &first]), None);
    assert_eq!(tracking_refs(&cache), "refs/remotes/origin/main");

    // A new commit costs what changed, not the unchanged megabyte.
    repo.write("config.yaml", "v: 3\n");
    let third = repo.commit("third");
    let revision = fetch(&source).unwrap();
    assert_eq!(revision.commit, third);
    assert_eq!(file(&revision, "config.yaml"), "v: 3\n");
    eprintln!(
        "incremental fetch: {} bytes received",
        revision.received_bytes
    );
    assert!(
        revision.received_bytes < 16 * 1024,
        "{} bytes received",
        revision.received_bytes
    );
    // Nothing new: nothing received.
    assert_eq!(fetch(&source).unwrap().received_bytes, 0);

    // A rewritten history is followed, one commit deep again.
    repo.write("config.yaml", "v: rewritten\n");
    let rewritten = repo.force_push_new_history("rewritten");
    let revision = fetch(&source).unwrap();
    assert_eq!(revision.commit, rewritten);
    assert_eq!(file(&revision, "config.yaml"), "v: rewritten\n");

    // A deleted branch is reported, and its tracking ref goes.
    repo.delete_branch();
    let err = fetch(&source).unwrap_err();
    assert!(matches!(err, SourceError::RefNotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("branch main does not exist in {}", repo.file_url())
    );
    assert_eq!(tracking_refs(&cache), "");
    // And followed again once it is back.
    repo.write("config.yaml", "v: back\n");
    let back = repo.commit("back");
    let revision = fetch(&source).unwrap();
    assert_eq!(revision.commit, back);
    assert_eq!(file(&revision, "config.yaml"), "v: back\n");
}

#[test]
fn a_pack_over_the_byte_limit_is_stopped_while_it_arrives_and_leaves_nothing() {
    let repo = TestRepo::new();
    repo.write("config.yaml", "v: 1\n");
    let good = repo.commit("good");
    let cache = tempfile::tempdir().unwrap();
    let mut source = source(&repo.file_url(), cache.path(), Auth::None, None);
    source.limits.max_pack_bytes = MIB;
    assert_eq!(fetch(&source).unwrap().commit, good);
    let before = dir_size(cache.path());

    commit_large_file(
        &repo.bare(),
        "main",
        Some("refs/heads/main"),
        &[],
        ("big.bin", 16 * MIB, Content::Random),
    );
    for attempt in 0..2 {
        let err = fetch(&source).unwrap_err();
        assert!(matches!(err, SourceError::PackLimit { .. }), "{err}");
        let message = err.to_string();
        eprintln!("{message}");
        assert!(
            message.starts_with(&format!(
                "fetching {}: the repository's pack exceeds 1 MiB (the fetch stopped after 1.0 MiB)",
                repo.file_url()
            )),
            "attempt {attempt}: {message}"
        );
        // Nothing of the pack stays, and the branch is where it was.
        let after = dir_size(cache.path());
        assert!(after < before + 64 * 1024, "{before} → {after} bytes");
        assert_eq!(
            git(cache.path(), &["rev-parse", "refs/remotes/origin/main"]).as_deref(),
            Some(good.as_str())
        );
    }

    // Within the default limits the pack arrives, and the file is refused by its size.
    source.limits = TreeLimits::default();
    let err = fetch(&source).unwrap_err();
    assert!(
        err.to_string()
            .contains("big.bin is 16777216 bytes, more than the 4194304 allowed per file"),
        "{err}"
    );
}

#[test]
fn too_many_objects_are_refused_as_the_pack_announces_them() {
    let repo = TestRepo::new();
    for i in 0..300 {
        repo.write(&format!("files/f{i}.yaml"), format!("i: {i}\n"));
    }
    repo.commit("many");
    let cache = tempfile::tempdir().unwrap();
    let mut source = source(&repo.file_url(), cache.path(), Auth::None, None);
    source.limits.max_pack_objects = 100;
    let err = fetch(&source).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, SourceError::PackLimit { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("the repository's pack holds 303 objects, more than the 100 allowed"),
        "{err}"
    );
    source.limits = TreeLimits::default();
    assert_eq!(fetch(&source).unwrap().files.len(), 300);
}

#[test]
fn a_pack_that_inflates_beyond_the_limit_is_refused() {
    let repo = TestRepo::new();
    repo.write("config.yaml", "v: 1\n");
    repo.commit("good");
    // 256 MiB of zeros: a few hundred KiB of pack.
    commit_large_file(
        &repo.bare(),
        "main",
        Some("refs/heads/main"),
        &[],
        ("zeros.bin", 256 * MIB, Content::Zeros),
    );
    let cache = tempfile::tempdir().unwrap();
    let source = source(&repo.file_url(), cache.path(), Auth::None, None);
    let err = fetch(&source).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, SourceError::PackLimit { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("the repository's pack inflates to more than 128 MiB"),
        "{err}"
    );
}

#[test]
fn an_interrupted_fetch_stops_without_the_pack() {
    let repo = TestRepo::new();
    repo.write("config.yaml", "v: 1\n");
    repo.commit("good");
    commit_large_file(
        &repo.bare(),
        "main",
        Some("refs/heads/main"),
        &[],
        ("big.bin", 48 * MIB, Content::Random),
    );
    let cache = tempfile::tempdir().unwrap();
    let mut source = source(&repo.file_url(), cache.path(), Auth::None, None);
    source.limits.max_pack_bytes = 256 * MIB;
    let interrupt = AtomicBool::new(true);
    let started = Instant::now();
    let err = source.fetch(&interrupt).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, SourceError::Fetch { .. }), "{err}");
    assert!(err.to_string().ends_with(": interrupted"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        dir_size(cache.path()) < MIB,
        "{} bytes",
        dir_size(cache.path())
    );
}

/// A repository with `main` and, on `big`, 8 MiB that does not compress.
fn repo_with_a_big_branch() -> (TestRepo, String, String) {
    let repo = TestRepo::new();
    repo.write("config.yaml", "v: 1\n");
    let main = repo.commit("main");
    let big = commit_large_file(
        &repo.bare(),
        "big",
        Some("refs/heads/main"),
        &[],
        ("big.bin", 8 * MIB, Content::Random),
    );
    (repo, main, big)
}

#[test]
fn over_https_only_the_followed_branch_is_wanted_and_the_limit_holds() {
    let (repo, main, big) = repo_with_a_big_branch();
    let server = HttpsGitServer::start(repo.bare().parent().unwrap(), "git", "e2e-https-pw");
    let auth = Auth::Basic {
        username: "git".into(),
        password: "e2e-https-pw".into(),
    };
    let cache = tempfile::tempdir().unwrap();
    let mut source = source(
        &server.url("repo.git"),
        cache.path(),
        auth,
        Some(server.ca_pem_path()),
    );
    let revision = fetch(&source).unwrap();
    assert_eq!(revision.commit, main);
    assert!(revision.received_bytes < 64 * 1024);
    let asked: Vec<u8> = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .flat_map(|r| r.body.clone())
        .collect();
    let asked = String::from_utf8_lossy(&asked);
    assert!(asked.contains(&format!("want {main}")), "{asked}");
    assert!(asked.contains("deepen 1"), "{asked}");
    assert!(!asked.contains(&big), "{asked}");

    source.git_ref = GitRef::Branch("big".into());
    source.limits.max_pack_bytes = 2 * MIB;
    let err = fetch(&source).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "fetching {}: the repository's pack exceeds 2 MiB",
            server.url("repo.git")
        )),
        "{err}"
    );
    source.limits = TreeLimits::default();
    let revision = fetch(&source).unwrap_err();
    assert!(
        revision.to_string().contains("big.bin is 8388608 bytes"),
        "{revision}"
    );
}

#[test]
fn over_ssh_only_the_followed_branch_is_fetched_and_the_limit_holds() {
    let (repo, main, _) = repo_with_a_big_branch();
    let server = SshGitServer::start(repo.bare().parent().unwrap());
    let auth = Auth::Ssh {
        private_key: server.client_key_path(),
        known_hosts: server.known_hosts_path(),
    };
    let cache = tempfile::tempdir().unwrap();
    let url = server.url("repo.git");
    let mut source = source(&url, cache.path(), auth, None);
    let revision = fetch(&source).unwrap();
    assert_eq!(revision.commit, main);
    assert!(revision.received_bytes < 64 * 1024);
    assert_eq!(tracking_refs(cache.path()), "refs/remotes/origin/main");

    source.git_ref = GitRef::Branch("big".into());
    source.limits.max_pack_bytes = 2 * MIB;
    let err = fetch(&source).unwrap_err().to_string();
    let user = url
        .strip_prefix("ssh://")
        .and_then(|rest| rest.split_once('@'))
        .map(|(user, _)| user)
        .unwrap();
    let shown = url.replace(&format!("{user}@"), "***@");
    assert!(
        err.starts_with(&format!(
            "fetching {shown}: the repository's pack exceeds 2 MiB"
        )),
        "{err}"
    );
    assert!(!err.contains(&format!("{user}@")), "{err}");
}

/// What a fetch error shows of an SSH URL never names its user, not even where ssh's own
/// messages quote it.
#[test]
fn fetch_errors_show_the_url_redacted() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("key");
    let known_hosts = keys.path().join("known_hosts");
    std::fs::write(&key, "not a key").unwrap();
    std::fs::write(&known_hosts, "").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let source = source(
        "ssh://deploy-user-7f3a@127.0.0.1:9/srv/repo.git",
        cache.path(),
        Auth::Ssh {
            private_key: key,
            known_hosts,
        },
        None,
    );
    let err = fetch(&source).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(
        err.starts_with("fetching ssh://***@127.0.0.1:9/srv/repo.git: "),
        "{err}"
    );
    assert!(!err.contains("deploy-user-7f3a"), "{err}");
}

/// A fetch killed mid-way (an agent OOM-killed or SIGKILLed) leaves lock files in the cache;
/// they do not block later fetches. A cache that has gathered many packs (one per fetch) is
/// started afresh, which also bounds its list of shallow commits.
#[test]
fn a_cache_survives_a_killed_fetch_and_many_fetches() {
    let repo = TestRepo::new();
    repo.write("config.yaml", "v: 0\n");
    repo.commit("0");
    let cache = tempfile::tempdir().unwrap();
    let source = source(&repo.file_url(), cache.path(), Auth::None, None);
    fetch(&source).unwrap();
    for lock in ["shallow.lock", "packed-refs.lock"] {
        std::fs::write(cache.path().join(lock), "").unwrap();
    }
    repo.write("config.yaml", "v: 1\n");
    let one = repo.commit("1");
    assert_eq!(fetch(&source).unwrap().commit, one);

    let packs = || {
        std::fs::read_dir(cache.path().join("objects/pack"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("pack".as_ref()))
            .count()
    };
    let shallow = || {
        std::fs::read_to_string(cache.path().join("shallow"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let (mut most_packs, mut most_shallow) = (0, 0);
    for i in 2..80 {
        repo.write("config.yaml", format!("v: {i}\n"));
        let commit = repo.commit(&i.to_string());
        let revision = fetch(&source).unwrap();
        assert_eq!(revision.commit, commit);
        assert_eq!(file(&revision, "config.yaml"), format!("v: {i}\n"));
        most_packs = most_packs.max(packs());
        most_shallow = most_shallow.max(shallow());
    }
    eprintln!("at most {most_packs} packs and {most_shallow} shallow commits");
    assert!(most_packs <= 33, "{most_packs} packs");
    assert!(most_shallow <= 33, "{most_shallow} shallow commits");
}

#[test]
fn tags_semver_ranges_and_commits_can_be_pinned_and_rolled_back() {
    let repo = TestRepo::new();
    repo.write("config.yaml", "v: 1.0.0\n");
    let v1 = repo.commit("1.0.0");
    repo.tag("v1.0.0", true);
    repo.write("config.yaml", "v: 1.2.0\n");
    let v12 = repo.commit("1.2.0");
    repo.tag("v1.2.0", false);
    repo.write("config.yaml", "v: 2.0.0\n");
    let v2 = repo.commit("2.0.0");
    repo.tag("v2.0.0", true);
    repo.write("config.yaml", "v: unreleased\n");
    let head = repo.commit("unreleased");
    let cache = tempfile::tempdir().expect("cache");
    let mut source = source(&repo.file_url(), &cache.path().join("c"), Auth::None, None);

    let mut pinned = |git_ref: GitRef| {
        source.git_ref = git_ref;
        let revision = fetch(&source).unwrap_or_else(|e| panic!("{}: {e}", source.git_ref));
        (
            revision.commit.clone(),
            file(&revision, "config.yaml").to_owned(),
            revision.resolved.clone(),
        )
    };
    // An annotated tag is peeled to its commit; a lightweight one names it.
    assert_eq!(pinned(GitRef::Tag("v2.0.0".into())).0, v2);
    assert_eq!(pinned(GitRef::Tag("v1.2.0".into())).0, v12);
    // The highest tag in the range, and which one it was.
    let (commit, content, resolved) = pinned(GitRef::Semver(">=1.0.0 <2.0.0".into()));
    assert_eq!(
        (commit.as_str(), content.as_str()),
        (v12.as_str(), "v: 1.2.0\n")
    );
    assert_eq!(resolved, GitRef::Tag("v1.2.0".into()));
    assert_eq!(
        pinned(GitRef::Semver("*".into())).2,
        GitRef::Tag("v2.0.0".into())
    );
    // The branch moves on; a commit pin rolls back to an earlier commit, one commit deep.
    assert_eq!(pinned(GitRef::Branch("main".into())).0, head);
    let (commit, content, _) = pinned(GitRef::Commit(v1.clone()));
    assert_eq!(
        (commit.as_str(), content.as_str()),
        (v1.as_str(), "v: 1.0.0\n")
    );
    assert_eq!(
        tracking_refs(&cache.path().join("c")),
        "refs/remotes/origin/pinned"
    );

    // What does not exist is named; a bad reference never reaches git.
    source.git_ref = GitRef::Semver(">=3".into());
    let err = fetch(&source).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("semver >=3 does not exist in {}", repo.file_url())
    );
    source.git_ref = GitRef::Tag("v9".into());
    assert!(matches!(
        fetch(&source),
        Err(SourceError::RefNotFound { .. })
    ));
    source.git_ref = GitRef::Commit("abc".into());
    assert!(matches!(fetch(&source), Err(SourceError::Ref(_))));
    source.git_ref = GitRef::Commit("0123456789abcdef0123456789abcdef01234567".into());
    assert!(fetch(&source).is_err(), "a commit the server does not have");
}
