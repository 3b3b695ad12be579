//! Authenticating a webhook request with its tenant's token: a GitHub-style HMAC-SHA256
//! signature of the body if there is one, else a bearer token. Pure; both checks are
//! constant-time.

use aws_lc_rs::{constant_time, hmac};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// GitHub's (and Gitea's, Forgejo's) signature header: `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

const SHA256_LEN: usize = 32;

/// How a request proved it knows the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Signature,
    Bearer,
}

/// Why a request is not authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Neither a signature nor an `Authorization` header.
    Missing,
    /// A signature or `Authorization` header that cannot be read.
    Malformed,
    /// A well-formed signature or bearer token that does not match.
    Mismatch,
}

impl Rejection {
    /// For logs; never includes what was presented.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "no signature or bearer token",
            Self::Malformed => "malformed signature or authorization header",
            Self::Mismatch => "signature or bearer token does not match",
        }
    }
}

/// A signature, when present, decides alone: a valid bearer token does not rescue a bad
/// signature, so a sender that signs is never downgraded to the weaker check.
pub fn authenticate(headers: &HeaderMap, body: &[u8], token: &[u8]) -> Result<Scheme, Rejection> {
    if let Some(value) = headers.get(SIGNATURE_HEADER) {
        let signature = parse_signature(value.as_bytes())?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, token);
        return hmac::verify(&key, body, &signature)
            .map(|()| Scheme::Signature)
            .map_err(|_| Rejection::Mismatch);
    }
    if let Some(value) = headers.get(AUTHORIZATION) {
        let presented = parse_bearer(value.as_bytes())?;
        return constant_time::verify_slices_are_equal(presented, token)
            .map(|()| Scheme::Bearer)
            .map_err(|_| Rejection::Mismatch);
    }
    Err(Rejection::Missing)
}

/// The digest of `sha256=<64 lowercase hex digits>`. Git hosts send lowercase; accepting
/// other spellings would only give a forger more strings that mean the same digest.
fn parse_signature(value: &[u8]) -> Result<Vec<u8>, Rejection> {
    let digits = value
        .strip_prefix(b"sha256=".as_slice())
        .ok_or(Rejection::Malformed)?;
    if !digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err(Rejection::Malformed);
    }
    let digest = hex::decode(digits).map_err(|_| Rejection::Malformed)?;
    if digest.len() == SHA256_LEN {
        Ok(digest)
    } else {
        Err(Rejection::Malformed)
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1).
fn parse_bearer(value: &[u8]) -> Result<&[u8], Rejection> {
    let space = value
        .iter()
        .position(|&b| b == b' ')
        .ok_or(Rejection::Malformed)?;
    let (scheme, rest) = value.split_at(space);
    let token = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty() {
        Ok(token)
    } else {
        Err(Rejection::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn sign(token: &[u8], body: &[u8]) -> String {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, token), body);
        format!("sha256={}", hex::encode(tag.as_ref()))
    }

    /// GitHub's documented example ("Validating webhook deliveries").
    #[test]
    fn known_answer() {
        let token = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(token, body), expected);
        let h = headers(&[(SIGNATURE_HEADER, expected)]);
        assert_eq!(authenticate(&h, body, token), Ok(Scheme::Signature));
        assert_eq!(
            authenticate(&h, b"Hello, World?", token),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn only_lowercase_hex_is_accepted() {
        let token = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let lower = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let upper = format!("sha256={}", lower["sha256=".len()..].to_ascii_uppercase());
        let mixed = lower.replace("757107ea", "757107EA");
        for value in [&upper, &mixed] {
            let h = headers(&[(SIGNATURE_HEADER, value)]);
            assert_eq!(
                authenticate(&h, body, token),
                Err(Rejection::Malformed),
                "{value}"
            );
        }
        // The prefix is GitHub's spelling too.
        let h = headers(&[(SIGNATURE_HEADER, &lower.replace("sha256=", "SHA256="))]);
        assert_eq!(authenticate(&h, body, token), Err(Rejection::Malformed));
    }

    #[test]
    fn malformed_signatures() {
        let good = sign(b"t", b"body");
        let digits = good.trim_start_matches("sha256=");
        for value in [
            digits.to_owned(),
            format!("sha1={digits}"),
            format!("sha256={}", &digits[..62]),
            format!("sha256={digits}00"),
            format!("sha256={}zz", &digits[..62]),
            "sha256=".to_owned(),
        ] {
            let h = headers(&[(SIGNATURE_HEADER, &value)]);
            assert_eq!(
                authenticate(&h, b"body", b"t"),
                Err(Rejection::Malformed),
                "{value}"
            );
        }
    }

    #[test]
    fn bearer_tokens() {
        let check = |value: &str| authenticate(&headers(&[("authorization", value)]), b"", b"tok");
        assert_eq!(check("Bearer tok"), Ok(Scheme::Bearer));
        assert_eq!(check("bearer  tok "), Ok(Scheme::Bearer));
        assert_eq!(check("Bearer tok2"), Err(Rejection::Mismatch));
        assert_eq!(check("Bearer to"), Err(Rejection::Mismatch));
        assert_eq!(check("Basic tok"), Err(Rejection::Malformed));
        assert_eq!(check("Bearer"), Err(Rejection::Malformed));
        assert_eq!(check("Bearer "), Err(Rejection::Malformed));
        assert_eq!(
            authenticate(&HeaderMap::new(), b"", b"tok"),
            Err(Rejection::Missing)
        );
    }

    #[test]
    fn signature_takes_precedence_over_bearer() {
        let h = headers(&[
            (SIGNATURE_HEADER, &sign(b"other", b"body")),
            ("authorization", "Bearer tok"),
        ]);
        assert_eq!(authenticate(&h, b"body", b"tok"), Err(Rejection::Mismatch));
    }
}
