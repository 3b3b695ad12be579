//! Repository URLs: parsed once, by gix's own parser (the one that later connects), checked
//! before they reach gix or a command line (`ssh`), and only ever shown redacted.
//!
//! Accepted: `https://host[:port]/path`, `ssh://[user@]host[:port]/path`, `[user@]host:path`
//! and `file:///path`. Credentials (a password, an HTTPS user, anything that reads like
//! `user:token@host`), queries and fragments are refused, as they belong in the credentials
//! secret; the refusal never repeats the URL. What is shown of an accepted URL hides its user.

use std::fmt;

use gix::bstr::ByteSlice;
use gix::url::Scheme;

/// Longer inputs are refused before parsing (gix itself truncates past 1 KiB of host).
const MAX_LEN: usize = 2048;
/// How a user, password or query appears wherever a URL is shown.
const HIDDEN: &str = "***";

/// A repository URL that passed validation. `Display` (and `Debug`) show it redacted; the
/// parsed URL itself is only handed to gix.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoUrl {
    url: gix::Url,
    shown: String,
}

impl RepoUrl {
    pub fn is_file(&self) -> bool {
        self.url.scheme == Scheme::File
    }

    pub fn is_ssh(&self) -> bool {
        self.url.scheme == Scheme::Ssh
    }

    pub fn is_https(&self) -> bool {
        self.url.scheme == Scheme::Https
    }

    /// The host, for sending credentials only there.
    pub fn host(&self) -> Option<&str> {
        self.url.host()
    }

    /// The parsed URL, for gix.
    pub(crate) fn gix(&self) -> &gix::Url {
        &self.url
    }

    /// `text` (typically a gix or ssh message, which may quote the URL) with the URL's user
    /// hidden as it is in [`Display`](fmt::Display).
    pub fn redact(&self, text: &str) -> String {
        match self.url.user() {
            Some(user) => text.replace(&format!("{user}@"), &format!("{HIDDEN}@")),
            None => text.to_owned(),
        }
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RepoUrl").field(&self.shown).finish()
    }
}

/// How a URL is shown: its user, password and any query or fragment replaced by `***`.
fn redacted(url: &gix::Url) -> String {
    let mut shown = url.clone();
    let hidden_user = shown.user.is_some() || shown.password.is_some();
    shown.set_password(None);
    shown.set_user(hidden_user.then(|| HIDDEN.to_owned()));
    if matches!(shown.scheme, Scheme::Http | Scheme::Https) {
        let path = url.path_query_fragment().path.to_owned();
        let hidden_rest = path.len() != url.path.len();
        shown.path = path;
        let mut out = Vec::new();
        if shown.write_to(&mut out).is_err() {
            return "(a URL that cannot be shown)".into();
        }
        if hidden_rest {
            out.extend_from_slice(b"?");
            out.extend_from_slice(HIDDEN.as_bytes());
        }
        return out.to_str_lossy().into_owned();
    }
    let mut out = Vec::new();
    match shown.write_to(&mut out) {
        Ok(()) => out.to_str_lossy().into_owned(),
        Err(_) => "(a URL that cannot be shown)".into(),
    }
}

const CREDENTIALS: &str =
    "credentials must not be part of the URL; put them in the credentials secret";

/// Validates `input` (see the module documentation). Errors never quote the input: it may
/// hold a token.
pub fn validate_url(input: &str) -> Result<RepoUrl, String> {
    if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("contains whitespace or control characters".into());
    }
    if input.len() > MAX_LEN {
        return Err(format!("is longer than {MAX_LEN} bytes"));
    }
    if !input.contains("://") && !input.contains(':') {
        return Err("has no scheme (use https://, ssh:// or file://)".into());
    }
    let url = gix::url::parse(input.as_bytes().as_bstr()).map_err(|_| {
        // gix's message quotes the input.
        "is not a valid URL (use https://host/path, ssh://[user@]host[:port]/path, \
         user@host:path or file:///path)"
            .to_owned()
    })?;
    let scp_like = !input.contains("://");
    match &url.scheme {
        Scheme::Https => check_https(&url)?,
        Scheme::Ssh => check_ssh(&url, input, scp_like)?,
        Scheme::File if scp_like || url.serialize_alternative_form => {
            return Err("has no scheme (use https://, ssh:// or file://)".into());
        }
        Scheme::File => {
            if url.host().is_some() || !url.path.starts_with(b"/") {
                return Err("file URLs must be absolute (file:///path)".into());
            }
        }
        other => {
            let name = other.as_str();
            let printable = name.len() <= 16
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
            return Err(if printable {
                format!("scheme `{name}` is not allowed (use https, ssh or file)")
            } else {
                "this scheme is not allowed (use https, ssh or file)".into()
            });
        }
    }
    let shown = redacted(&url);
    Ok(RepoUrl { url, shown })
}

fn check_host(url: &gix::Url) -> Result<(), String> {
    match url.host() {
        Some(host) if !host.is_empty() && !host.starts_with('-') => Ok(()),
        Some(host) if host.starts_with('-') => Err("the host must not start with `-`".into()),
        _ => Err("the URL names no host".into()),
    }
}

fn check_https(url: &gix::Url) -> Result<(), String> {
    if url.user().is_some() || url.password().is_some() {
        return Err(CREDENTIALS.into());
    }
    let parts = url.path_query_fragment();
    if parts.query.is_some() || parts.fragment.is_some() {
        return Err(format!("a query or fragment is not allowed; {CREDENTIALS}"));
    }
    check_host(url)?;
    if url.path_is_root() {
        return Err("the URL names no repository path".into());
    }
    Ok(())
}

fn check_ssh(url: &gix::Url, input: &str, scp_like: bool) -> Result<(), String> {
    if url.password().is_some() {
        return Err(CREDENTIALS.into());
    }
    // SCP-like syntax has no password: `u:token@host:x.git` parses as host `u` and a path
    // holding the token. No repository path of this form needs an `@`.
    if scp_like && url.path.contains(&b'@') {
        return Err(format!("reads like user:password@host; {CREDENTIALS}"));
    }
    if input.contains(['?', '#']) {
        return Err(format!("a query or fragment is not allowed; {CREDENTIALS}"));
    }
    if let Some(user) = url.user() {
        if user.starts_with('-') {
            return Err("the user must not start with `-`".into());
        }
        if user.is_empty()
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err("the SSH user may only hold letters, digits, `.`, `_` and `-`".into());
        }
    }
    check_host(url)?;
    let path = url.path.strip_prefix(b"/").unwrap_or(&url.path);
    if path.is_empty() || path.starts_with(b"-") {
        return Err("invalid repository path".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms_and_how_they_are_shown() {
        for (input, shown) in [
            (
                "https://git.example.com/team-a/apps.git",
                "https://git.example.com/team-a/apps.git",
            ),
            (
                "https://127.0.0.1:8443/repo.git",
                "https://127.0.0.1:8443/repo.git",
            ),
            (
                "ssh://git@git.example.com:2222/team-a/apps.git",
                "ssh://***@git.example.com:2222/team-a/apps.git",
            ),
            (
                "ssh://git.example.com/srv/apps.git",
                "ssh://git.example.com/srv/apps.git",
            ),
            (
                "git@git.example.com:team-a/apps.git",
                "***@git.example.com:team-a/apps.git",
            ),
            ("file:///srv/git/apps.git", "file:///srv/git/apps.git"),
        ] {
            let url = validate_url(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(url.to_string(), shown, "{input}");
            assert_eq!(format!("{url:?}"), format!("RepoUrl({shown:?})"));
        }
        let ssh = validate_url("ssh://git@host/x.git").unwrap();
        assert!(ssh.is_ssh() && !ssh.is_file() && !ssh.is_https());
        assert!(validate_url("git@host:x.git").unwrap().is_ssh());
        assert!(validate_url("file:///x").unwrap().is_file());
        assert!(validate_url("https://h/x").unwrap().is_https());
        assert_eq!(
            ssh.redact("Permission denied for git@host (ssh://git@host/x.git)"),
            "Permission denied for ***@host (ssh://***@host/x.git)"
        );
    }

    /// Every hostile form is refused for the stated reason, and the refusal repeats none of
    /// the secret it carried.
    #[test]
    fn hostile_forms_are_refused_without_repeating_their_secret() {
        for (input, why) in [
            // Passwords, tokens as users, and tokens in queries.
            ("https://user:SECRET@git.example.com/a.git", "credentials"),
            ("https://SECRET@git.example.com/a.git", "credentials"),
            ("https://x-access-token:SECRET@h/a.git", "credentials"),
            ("https://u%3Ax:SEC%52ET@h/a.git", "credentials"),
            ("https://user:SECRET@h:443/a.git?x=1", "credentials"),
            ("https://h/a.git?access_token=SECRET", "query or fragment"),
            (
                "https://h/a.git?private_token=SECRET&x=1",
                "query or fragment",
            ),
            ("https://h/a.git#SECRET", "query or fragment"),
            ("https://h?token=SECRET", "query or fragment"),
            ("ssh://git:SECRET@h/a.git", "credentials"),
            ("ssh://h/a.git?token=SECRET", "query or fragment"),
            // SCP-like forms that hide a token: gix reads the part before `:` as the host.
            ("u:SECRET@host:x.git", "user:password@host"),
            ("u:SECRET@host/x.git", "user:password@host"),
            ("git:SECRET@github.com:org/x.git", "user:password@host"),
            ("x-access-token:SECRET@h:org/x.git", "user:password@host"),
            // Option injection into ssh.
            (
                "ssh://-oProxyCommand=SECRET/x",
                "host must not start with `-`",
            ),
            (
                "git@-oProxyCommand=SECRET:repo",
                "host must not start with `-`",
            ),
            (
                "-oProxyCommand=SECRET@host:repo",
                "user must not start with `-`",
            ),
            (
                "ssh://-oProxyCommand=SECRET@host/x",
                "user must not start with `-`",
            ),
            (
                "ssh://git@host/-upload-pack=SECRET",
                "invalid repository path",
            ),
            ("git@host:-upload-pack=SECRET", "invalid repository path"),
            ("ssh://us$er@host/x", "SSH user may only hold"),
            // Schemes and forms that are not ours.
            (
                "http://git.example.com/SECRET.git",
                "scheme `http` is not allowed",
            ),
            (
                "git://git.example.com/SECRET.git",
                "scheme `git` is not allowed",
            ),
            ("ext::sh -c touch% /tmp/pwned", "whitespace"),
            ("ext::SECRET", "scheme `ext` is not allowed"),
            ("fd::17/SECRET", "scheme `fd` is not allowed"),
            ("file://relative/SECRET", "absolute"),
            ("/srv/git/SECRET.git", "no scheme"),
            ("git.example.com/SECRET.git", "no scheme"),
            ("https://h/SECRET\n.git", "whitespace"),
            ("https:///SECRET.git", "not a valid URL"),
            ("https://h", "no repository path"),
        ] {
            let err = match validate_url(input) {
                Ok(url) => panic!("{input} was accepted as {url}"),
                Err(e) => e,
            };
            assert!(err.contains(why), "{input}: {err}");
            assert!(!err.contains("SECRET"), "{input}: {err}");
            assert!(!err.contains("SEC%52ET"), "{input}: {err}");
        }
        assert!(validate_url(&format!("https://h/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn redaction_hides_user_password_and_query() {
        for (input, shown) in [
            (
                "https://user:SECRET@git.example.com/a.git?access_token=SECRET#SECRET",
                "https://***@git.example.com/a.git?***",
            ),
            ("https://SECRET@h/a.git", "https://***@h/a.git"),
            ("https://h/a.git?access_token=SECRET", "https://h/a.git?***"),
            ("ssh://git:SECRET@h:22/a.git", "ssh://***@h:22/a.git"),
            ("SECRET@h:a.git", "***@h:a.git"),
        ] {
            let url = gix::url::parse(input.as_bytes().as_bstr()).unwrap();
            assert_eq!(redacted(&url), shown, "{input}");
        }
    }
}
