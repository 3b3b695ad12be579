//! Reading a commit's files straight from its tree, within limits: sizes are checked from
//! object headers before a blob is loaded, and symbolic links are refused (a link could point
//! outside the repository once written to disk for kustomize).

use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice};
use gix::objs::tree::EntryKind;

use super::{SourceError, gix_reason};
use crate::render::SourceFile;

/// Bounds on what one fetch may receive (enforced while the pack arrives) and on what one
/// revision may hold (checked from object headers before a file is loaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeLimits {
    pub max_files: usize,
    pub max_file_size: u64,
    pub max_total_bytes: u64,
    /// Bytes of pack data one fetch may receive.
    pub max_pack_bytes: u64,
    /// Objects one fetch's pack may hold.
    pub max_pack_objects: u64,
    /// What the objects of one fetch's pack may inflate to, and the largest single allocation
    /// object data may cause (a few KiB of pack can claim to inflate to gigabytes).
    pub max_inflated_bytes: u64,
}

impl Default for TreeLimits {
    fn default() -> Self {
        Self {
            max_files: 10_000,
            max_file_size: 4 * 1024 * 1024,
            max_total_bytes: 64 * 1024 * 1024,
            max_pack_bytes: 64 * 1024 * 1024,
            max_pack_objects: 100_000,
            max_inflated_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Every regular file of `commit`; submodules are skipped.
pub fn read(
    repo: &gix::Repository,
    commit: ObjectId,
    limits: &TreeLimits,
) -> Result<Vec<SourceFile>, SourceError> {
    let tree_error = |reason: String| SourceError::Tree {
        commit: commit.to_string(),
        reason,
    };
    let root = repo
        .find_commit(commit)
        .map_err(|e| tree_error(gix_reason(&e)))?
        .tree_id()
        .map_err(|e| tree_error(gix_reason(&e)))?
        .detach();
    let (mut count, mut total) = (0usize, 0u64);
    let mut files = Vec::new();
    let mut pending = vec![(String::new(), root)];
    while let Some((prefix, tree_id)) = pending.pop() {
        let tree = repo
            .find_tree(tree_id)
            .map_err(|e| tree_error(gix_reason(&e)))?;
        for entry in tree.iter() {
            let entry = entry.map_err(|e| tree_error(gix_reason(&e)))?;
            let path = format!("{prefix}{}", component(entry.filename(), &prefix)?);
            let id = entry.object_id();
            match entry.mode().kind() {
                EntryKind::Tree => pending.push((format!("{path}/"), id)),
                EntryKind::Commit => {}
                EntryKind::Link => {
                    return Err(SourceError::Refused {
                        path,
                        reason: "symbolic links are not allowed in a tenant repository".into(),
                    });
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    count += 1;
                    if count > limits.max_files {
                        return Err(SourceError::Limit(format!(
                            "more than {} files",
                            limits.max_files
                        )));
                    }
                    let header = repo
                        .find_header(id)
                        .map_err(|e| tree_error(gix_reason(&e)))?;
                    let size = header.size();
                    if size > limits.max_file_size {
                        return Err(SourceError::Limit(format!(
                            "{path} is {size} bytes, more than the {} allowed per file",
                            limits.max_file_size
                        )));
                    }
                    total += size;
                    if total > limits.max_total_bytes {
                        return Err(SourceError::Limit(format!(
                            "the files add up to more than {} bytes (at {path})",
                            limits.max_total_bytes
                        )));
                    }
                    let content = repo
                        .find_object(id)
                        .map_err(|e| tree_error(gix_reason(&e)))?
                        .detach()
                        .data;
                    files.push(SourceFile { path, content });
                }
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// A tree entry name that is a plain path component.
fn component<'a>(name: &'a BStr, prefix: &str) -> Result<&'a str, SourceError> {
    let refuse = |reason: &str| SourceError::Refused {
        path: format!("{prefix}{}", name.to_str_lossy()),
        reason: reason.to_owned(),
    };
    let text = name
        .to_str()
        .map_err(|_| refuse("file name is not UTF-8"))?;
    if text.is_empty()
        || text == "."
        || text == ".."
        || text.contains(['/', '\\', '\0'])
        || text.eq_ignore_ascii_case(".git")
    {
        return Err(refuse("invalid file name"));
    }
    Ok(text)
}
