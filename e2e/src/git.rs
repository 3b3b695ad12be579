//! Test Git repositories driven by the real `git` CLI: a bare repository to serve, and a work
//! tree to commit and push from.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A bare repository plus a clone to change it through.
pub struct TestRepo {
    dir: tempfile::TempDir,
    pub branch: String,
}

impl TestRepo {
    /// An empty repository with branch `main`.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-repo-")
            .tempdir()
            .expect("temp dir");
        let repo = Self {
            dir,
            branch: "main".into(),
        };
        repo.git(
            &["init", "--quiet", "--bare", "--initial-branch=main"],
            &repo.bare(),
        );
        repo.git(&["init", "--quiet", "--initial-branch=main"], &repo.work());
        repo.git(
            &[
                "remote",
                "add",
                "origin",
                repo.bare().to_str().expect("utf-8 path"),
            ],
            &repo.work(),
        );
        repo
    }

    /// The bare repository (what servers serve).
    pub fn bare(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    /// Writes a file of the work tree (creating directories).
    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) -> &Self {
        let full = self.work().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
        self
    }

    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.work().join(path)).expect("remove");
        self
    }

    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        std::os::unix::fs::symlink(target, self.work().join(path)).expect("symlink");
        self
    }

    /// Commits everything and pushes; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "--all"], &self.work());
        self.git(
            &["commit", "--quiet", "--allow-empty", "-m", message],
            &self.work(),
        );
        self.git(
            &[
                "push",
                "--quiet",
                "--force",
                "origin",
                &format!("HEAD:{}", self.branch),
            ],
            &self.work(),
        );
        self.head()
    }

    /// Rewrites history: the branch becomes a single new root commit with the current tree.
    pub fn force_push_new_history(&self, message: &str) -> String {
        self.git(
            &["checkout", "--quiet", "--orphan", "rewritten"],
            &self.work(),
        );
        self.commit(message)
    }

    pub fn delete_branch(&self) {
        self.git(
            &["branch", "--quiet", "--delete", "--force", &self.branch],
            &self.bare(),
        );
    }

    pub fn head(&self) -> String {
        let out = self
            .command(&["rev-parse", "HEAD"], &self.work())
            .output()
            .expect("git rev-parse");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn command(&self, args: &[&str], dir: &Path) -> Command {
        std::fs::create_dir_all(dir).expect("mkdir");
        let mut cmd = Command::new("git");
        cmd.args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Tenant")
            .env("GIT_AUTHOR_EMAIL", "tenant@example.com")
            .env("GIT_COMMITTER_NAME", "Tenant")
            .env("GIT_COMMITTER_EMAIL", "tenant@example.com");
        cmd
    }

    fn git(&self, args: &[&str], dir: &Path) {
        let out = self.command(args, dir).output().expect("running git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}
