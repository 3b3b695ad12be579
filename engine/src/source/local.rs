//! A local directory as a revision (for `berth-agent check` and `berth-operator validate`):
//! the same files a fetched commit would give, symbolic links refused, `.git` skipped.

use std::path::{Path, PathBuf};

use crate::render::SourceFile;

/// Why a local directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("reading {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: symbolic links are not allowed in a tenant repository")]
    Symlink { path: PathBuf },
}

/// Every regular file below `dir`, paths relative to it, in path order.
pub fn read_local_dir(dir: &Path) -> Result<Vec<SourceFile>, LocalError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let read_error = |path: &Path, e: std::io::Error| LocalError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        for entry in std::fs::read_dir(&current).map_err(|e| read_error(&current, e))? {
            let entry = entry.map_err(|e| read_error(&current, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| read_error(&path, e))?;
            if kind.is_symlink() {
                return Err(LocalError::Symlink { path });
            }
            if entry.file_name() == ".git" {
                continue;
            }
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let content = std::fs::read(&path).map_err(|e| read_error(&path, e))?;
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                files.push(SourceFile {
                    path: relative.to_string_lossy().into_owned(),
                    content,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
