//! Validating repository URLs before they reach gix or a command line (`ssh`): only https,
//! ssh and file, no option-like hosts or paths, no credentials embedded in the URL.

use std::fmt;

/// A repository URL that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoUrl(String);

impl RepoUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_file(&self) -> bool {
        self.0.starts_with("file://")
    }

    pub fn is_ssh(&self) -> bool {
        self.0.starts_with("ssh://") || !self.0.contains("://")
    }

    /// The URL for messages (validation already refused embedded credentials).
    pub fn redacted(&self) -> String {
        self.0.clone()
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Accepts `https://host/path`, `ssh://[user@]host[:port]/path`, `user@host:path` and
/// `file:///path`.
pub fn validate_url(url: &str) -> Result<RepoUrl, String> {
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("contains whitespace or control characters".into());
    }
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None if url.contains('@') && url.contains(':') => ("scp", url),
        None => {
            return Err(format!(
                "`{url}` has no scheme (use https://, ssh:// or file://)"
            ));
        }
    };
    match scheme {
        "https" | "ssh" | "scp" => {
            let authority = match scheme {
                "scp" => rest.split_once(':').map_or(rest, |(a, _)| a),
                _ => rest.split('/').next().unwrap_or(""),
            };
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(user, host)| {
                    if scheme == "https" || user.contains(':') {
                        ""
                    } else {
                        host
                    }
                });
            if authority.contains('@') && host.is_empty() {
                return Err(
                    "credentials must not be part of the URL; use a credentials secret".into(),
                );
            }
            if host.is_empty() || host.starts_with('-') {
                return Err(format!("invalid host in `{url}`"));
            }
            let path = match scheme {
                "scp" => rest.split_once(':').map_or("", |(_, p)| p),
                _ => rest.split_once('/').map_or("", |(_, p)| p),
            };
            if path.is_empty() || path.starts_with('-') {
                return Err(format!("invalid repository path in `{url}`"));
            }
        }
        "file" => {
            if !rest.starts_with('/') {
                return Err("file URLs must be absolute (file:///path)".into());
            }
        }
        other => {
            return Err(format!(
                "scheme `{other}` is not allowed (use https, ssh or file)"
            ));
        }
    }
    Ok(RepoUrl(url.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        for url in [
            "https://git.example.com/team-a/apps.git",
            "ssh://git@git.example.com:2222/team-a/apps.git",
            "git@git.example.com:team-a/apps.git",
            "file:///srv/git/apps.git",
        ] {
            assert!(validate_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn refused_forms() {
        for (url, why) in [
            ("http://git.example.com/a.git", "not allowed"),
            ("ext::sh -c touch% /tmp/pwned", "whitespace"),
            ("ssh://-oProxyCommand=touch/x", "invalid host"),
            ("git@-oProxyCommand=x:repo", "invalid host"),
            ("ssh://git@host/-upload-pack", "invalid repository path"),
            ("https://user:secret@git.example.com/a.git", "credentials"),
            ("file://relative/path", "absolute"),
            ("git.example.com/a.git", "no scheme"),
        ] {
            let err = validate_url(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}
