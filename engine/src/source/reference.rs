//! What a source follows or is pinned to: a branch (followed as it moves), a tag, the highest
//! tag matching a semver range, or one commit. Pure: names are checked before they reach a
//! refspec, and the semver choice is made from the list of tags the server advertises.

use std::fmt;

/// The reference a source fetches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitRef {
    Branch(String),
    Tag(String),
    /// A semver range over the repository's tags (`>=1.2.0 <2.0.0`, `^1.2`, `~1.4`, `1.x`);
    /// the highest matching tag is taken (pre-releases only if the range names one).
    Semver(String),
    /// A full commit id (40 hex characters).
    Commit(String),
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Branch(b) => write!(f, "branch {b}"),
            Self::Tag(t) => write!(f, "tag {t}"),
            Self::Semver(r) => write!(f, "semver {r}"),
            Self::Commit(c) => write!(f, "commit {c}"),
        }
    }
}

/// Why a reference cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("invalid branch name {0:?}")]
    Branch(String),
    #[error("invalid tag name {0:?}")]
    Tag(String),
    #[error("invalid semver range {range:?}: {reason}")]
    Semver { range: String, reason: String },
    #[error("invalid commit {0:?}: a full commit id (40 hexadecimal characters) is needed")]
    Commit(String),
}

fn ref_name_ok(prefix: &str, name: &str) -> bool {
    // Goes into a refspec: no patterns, no second side, nothing git would refuse.
    !name.is_empty()
        && !name.contains(['*', ':', ' '])
        && gix::refs::FullName::try_from(format!("{prefix}{name}")).is_ok()
}

impl GitRef {
    /// Checks the reference as written.
    pub fn validate(&self) -> Result<(), RefError> {
        match self {
            Self::Branch(b) if !ref_name_ok("refs/heads/", b) => Err(RefError::Branch(b.clone())),
            Self::Tag(t) if !ref_name_ok("refs/tags/", t) => Err(RefError::Tag(t.clone())),
            Self::Semver(range) => version_req(range).map(|_| ()),
            Self::Commit(c)
                if c.len() != 40
                    || !c
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
            {
                Err(RefError::Commit(c.clone()))
            }
            _ => Ok(()),
        }
    }

    /// The remote ref this reference names directly (`None` for a range or a commit).
    pub fn remote_name(&self) -> Option<String> {
        match self {
            Self::Branch(b) => Some(format!("refs/heads/{b}")),
            Self::Tag(t) => Some(format!("refs/tags/{t}")),
            Self::Semver(_) | Self::Commit(_) => None,
        }
    }
}

/// A range as Flux users write it (comparators separated by spaces, as Masterminds/semver
/// reads them) or as Cargo does (commas), `x` wildcards included.
fn version_req(range: &str) -> Result<semver::VersionReq, RefError> {
    let mut comparators: Vec<String> = Vec::new();
    for part in range.split([',', ' ']).filter(|p| !p.is_empty()) {
        // `>= 1.2` (operator and version apart) joins into one comparator.
        match comparators.last_mut() {
            Some(last) if last.chars().all(|c| "<>=~^".contains(c)) => last.push_str(part),
            _ => comparators.push(part.to_owned()),
        }
    }
    let normalised = comparators
        .iter()
        .map(|c| c.replace(['x', 'X'], "*"))
        .collect::<Vec<_>>()
        .join(", ");
    semver::VersionReq::parse(&normalised).map_err(|e| RefError::Semver {
        range: range.to_owned(),
        reason: e.to_string(),
    })
}

/// The highest of `tags` (names without `refs/tags/`, a leading `v` allowed) in `range`.
pub fn highest_match<'a>(
    range: &str,
    tags: impl IntoIterator<Item = &'a str>,
) -> Result<Option<&'a str>, RefError> {
    let req = version_req(range)?;
    Ok(tags
        .into_iter()
        .filter_map(|tag| {
            let version = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
            req.matches(&version).then_some((version, tag))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, tag)| tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_they_reach_a_refspec() {
        for ok in [
            GitRef::Branch("main".into()),
            GitRef::Branch("release/1.x".into()),
            GitRef::Tag("v1.2.3".into()),
            GitRef::Semver(">=1.0.0 <2.0.0".into()),
            GitRef::Commit("0123456789abcdef0123456789abcdef01234567".into()),
        ] {
            assert_eq!(ok.validate(), Ok(()), "{ok}");
        }
        for bad in [
            GitRef::Branch("a:b".into()),
            GitRef::Branch("*".into()),
            GitRef::Branch("".into()),
            GitRef::Branch("a..b".into()),
            GitRef::Tag("v1 2".into()),
            GitRef::Tag("refs/heads/x:y".into()),
            GitRef::Semver("not a range".into()),
            GitRef::Commit("abc123".into()),
            GitRef::Commit("0123456789ABCDEF0123456789abcdef01234567".into()),
        ] {
            assert!(bad.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_highest_matching_tag_is_taken() {
        let tags = [
            "v1.0.0",
            "v1.2.0",
            "v1.10.1",
            "v2.0.0",
            "v1.11.0-rc.1",
            "latest",
            "1.3.0",
        ];
        let pick = |range: &str| highest_match(range, tags).unwrap();
        assert_eq!(pick(">=1.0.0 <2.0.0"), Some("v1.10.1"));
        assert_eq!(pick(">= 1.0, < 2"), Some("v1.10.1"));
        assert_eq!(pick("^1.2"), Some("v1.10.1"));
        assert_eq!(pick("~1.2"), Some("v1.2.0"));
        assert_eq!(pick("1.x"), Some("v1.10.1"));
        assert_eq!(pick("*"), Some("v2.0.0"));
        assert_eq!(pick(">=1.11.0-rc.0, <1.12"), Some("v1.11.0-rc.1"));
        assert_eq!(pick(">=3"), None);
        assert!(highest_match("nope", tags).is_err());
    }
}
