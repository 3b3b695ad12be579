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

    /// Tags the last commit `name` (annotated when `annotated`) and pushes the tag.
    pub fn tag(&self, name: &str, annotated: bool) {
        let mut args = vec!["tag", "--force"];
        if annotated {
            args.extend(["--annotate", "-m", name]);
        }
        args.push(name);
        self.git(&args, &self.work());
        self.git(
            &[
                "push",
                "--quiet",
                "--force",
                "origin",
                &format!("refs/tags/{name}"),
            ],
            &self.work(),
        );
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
        git_command(args, dir)
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

/// `git ARGS` in `dir`, untouched by the user's and system's configuration, as author "Tenant".
fn git_command(args: &[&str], dir: &Path) -> Command {
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

fn run_git(args: &[&str], dir: &Path) -> Result<String, String> {
    let out = git_command(args, dir)
        .output()
        .map_err(|e| format!("running git {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A repository meant to outlive the program that made it (for `make up`, the benchmarks): a
/// bare repository at a chosen path, typically under a directory a Git server serves, and a
/// work tree whose `origin` is that bare repository, so a plain `git push` there publishes.
/// Unlike [`TestRepo`] its operations return errors instead of panicking.
#[derive(Clone, Debug)]
pub struct LocalRepo {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl LocalRepo {
    /// Creates both (their parent directories too) with branch `main`.
    pub fn create(bare: &Path, work: &Path) -> Result<Self, String> {
        for dir in [bare, work] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        run_git(
            &["init", "--quiet", "--bare", "--initial-branch=main"],
            bare,
        )?;
        run_git(&["init", "--quiet", "--initial-branch=main"], work)?;
        let origin = bare
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", bare.display()))?;
        run_git(&["remote", "add", "origin", origin], work)?;
        Ok(Self {
            bare: bare.to_path_buf(),
            work: work.to_path_buf(),
        })
    }

    /// Writes `content` to `path` of the work tree, creating directories.
    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) -> Result<(), String> {
        let full = self.work.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&full, content).map_err(|e| format!("{}: {e}", full.display()))
    }

    /// Copies the directory `from` into the work tree, replacing each `(placeholder, value)`
    /// in every file's text.
    pub fn copy_from(&self, from: &Path, substitutions: &[(&str, &str)]) -> Result<(), String> {
        let mut pending = vec![PathBuf::new()];
        while let Some(relative) = pending.pop() {
            let dir = from.join(&relative);
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = relative.join(entry.file_name());
                if entry.path().is_dir() {
                    pending.push(path);
                    continue;
                }
                let mut text = std::fs::read_to_string(entry.path())
                    .map_err(|e| format!("{}: {e}", entry.path().display()))?;
                for (placeholder, value) in substitutions {
                    text = text.replace(placeholder, value);
                }
                let path = path
                    .to_str()
                    .ok_or_else(|| format!("{} is not UTF-8", path.display()))?
                    .to_owned();
                self.write(&path, text)?;
            }
        }
        Ok(())
    }

    /// Commits everything and pushes to the bare repository (setting it as upstream, so a
    /// person can `git push` later); returns the commit id.
    pub fn commit(&self, message: &str) -> Result<String, String> {
        run_git(&["add", "--all"], &self.work)?;
        run_git(
            &["commit", "--quiet", "--allow-empty", "-m", message],
            &self.work,
        )?;
        run_git(
            &["push", "--quiet", "--set-upstream", "origin", "HEAD:main"],
            &self.work,
        )?;
        run_git(&["rev-parse", "HEAD"], &self.work)
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}
