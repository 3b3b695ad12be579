//! Large incompressible (or, for inflation tests, highly compressible) files committed straight
//! into a bare repository with `git fast-import`, streamed from a generator: the test never
//! holds the file in memory and nothing is written twice (no work tree, no loose object).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What the file is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// Pseudo-random bytes: the pack holds as many bytes as the file.
    Random,
    /// Zeros: a few KiB of pack that inflate to the whole size.
    Zeros,
}

/// Commits `files` (path and content) plus a file `path` of `size` bytes on `branch` of the
/// bare repository `bare`, on top of `from` (a ref or commit) if given; returns the commit.
pub fn commit_large_file(
    bare: &Path,
    branch: &str,
    from: Option<&str>,
    files: &[(&str, &str)],
    (path, size, content): (&str, u64, Content),
) -> String {
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(bare)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .spawn()
        .expect("running git fast-import");
    {
        let mut input = std::io::BufWriter::with_capacity(
            1 << 20,
            child.stdin.take().expect("fast-import stdin"),
        );
        write!(input, "blob\nmark :1\ndata {size}\n").expect("writing to fast-import");
        stream(&mut input, size, content);
        let message = format!("add {path}");
        write!(
            input,
            "\ncommit refs/heads/{branch}\ncommitter Tenant <tenant@example.com> 1700000000 +0000\ndata {}\n{message}\n",
            message.len()
        )
        .expect("writing to fast-import");
        if let Some(from) = from {
            // `^0`: a branch may continue from its own tip.
            writeln!(input, "from {from}^0").expect("writing to fast-import");
        }
        writeln!(input, "M 100644 :1 {path}").expect("writing to fast-import");
        for (name, text) in files {
            write!(
                input,
                "M 100644 inline {name}\ndata {}\n{text}\n",
                text.len()
            )
            .expect("writing to fast-import");
        }
        input.flush().expect("writing to fast-import");
    }
    assert!(
        child.wait().expect("git fast-import").success(),
        "git fast-import failed"
    );
    let out = Command::new("git")
        .args(["rev-parse", &format!("refs/heads/{branch}")])
        .current_dir(bare)
        .output()
        .expect("git rev-parse");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes `size` bytes of `content`, a megabyte at a time.
fn stream(out: &mut impl Write, size: u64, content: Content) {
    let mut chunk = vec![0u8; 1 << 20];
    // xorshift64*: fast, and as incompressible as zlib can tell.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if content == Content::Random {
            for word in chunk[..n].chunks_mut(8) {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let bytes = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                word.copy_from_slice(&bytes[..word.len()]);
            }
        }
        out.write_all(&chunk[..n]).expect("writing to fast-import");
        left -= n as u64;
    }
}

/// Total size of the files under `dir` (e.g. a repository cache), in bytes.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
