//! Durations as Tenants and flags write them: Go's syntax (`90s`, `1m30s`, `300ms`, `1h`), as
//! Flux users know it, parsed by kube's `Duration`; only positive ones within Go's range.

use std::time::Duration;

use kube::core::duration::ParseError;

/// The longest duration Go can represent (`math.MaxInt64` nanoseconds, about 292 years).
const MAX_SECONDS: f64 = 9_223_372_036.0;

/// Why a text is not a usable duration.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{text:?} is not a duration like 90s, 1m30s or 1h: {}", detail(.source))]
    Syntax {
        text: String,
        #[source]
        source: ParseError,
    },
    #[error("{text:?} is not a duration like 90s, 1m30s or 1h")]
    Malformed { text: String },
    #[error("{text:?} is not a positive duration")]
    NotPositive { text: String },
    #[error("{text:?} is longer than the longest duration (about 292 years)")]
    TooLong { text: String },
}

fn detail(error: &ParseError) -> &'static str {
    match error {
        ParseError::InvalidUnit => "unknown unit (use ns, us, ms, s, m or h)",
        ParseError::NoUnit => "a unit is missing (ns, us, ms, s, m or h)",
        _ => "a number is missing or malformed",
    }
}

/// Parses a positive duration in Go's syntax.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let owned = || text.to_owned();
    if text.trim().is_empty() {
        return Err(DurationError::Malformed { text: owned() });
    }
    if text.starts_with('-') {
        return Err(DurationError::NotPositive { text: owned() });
    }
    // kube's parser panics on a value beyond `std::time::Duration` and on a negative term
    // after the first (`5s-3s`); those are refused here, before it runs.
    match upper_bound_seconds(text) {
        Some(bound) if bound > MAX_SECONDS => return Err(DurationError::TooLong { text: owned() }),
        Some(_) => {}
        None => return Err(DurationError::Malformed { text: owned() }),
    }
    let parsed: kube::core::Duration = text.parse().map_err(|source| DurationError::Syntax {
        text: owned(),
        source,
    })?;
    let duration = Duration::from(parsed);
    if parsed.is_negative() || duration.is_zero() {
        return Err(DurationError::NotPositive { text: owned() });
    }
    Ok(duration)
}

/// An upper bound of the duration, in seconds, splitting the text into terms as kube's parser
/// does (a number, then a unit of letters) and taking every unknown unit as hours (kube refuses
/// those anyway). `None` for a term whose number is negative; a number too large for `f64`
/// counts as infinite; one that is not a number at all is left for kube to refuse by name.
fn upper_bound_seconds(text: &str) -> Option<f64> {
    let mut rest = text.trim_start_matches('+');
    let mut total = 0.0_f64;
    while !rest.is_empty() && rest != "0" {
        let unit_start = rest.find(char::is_alphabetic).unwrap_or(rest.len());
        let (number, after) = rest.split_at(unit_start);
        let unit_end = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        rest = next;
        let Ok(value) = number.parse::<f64>() else {
            break;
        };
        if value.is_sign_negative() {
            return None;
        }
        let unit_seconds = match unit {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            _ => 3600.0,
        };
        total += value * unit_seconds;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_as_flux_users_write_them() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2h45m"), Ok(Duration::from_secs(9900)));
    }

    #[test]
    fn unknown_units_and_bare_numbers_are_refused() {
        for text in ["5x", "90", "5d", "soon", "m", "1.2.3s", "", " "] {
            let error = parse(text).expect_err(text);
            assert!(
                error.to_string().contains("is not a duration like 90s"),
                "{text}: {error}"
            );
        }
        assert!(matches!(
            parse("5x"),
            Err(DurationError::Syntax {
                source: ParseError::InvalidUnit,
                ..
            })
        ));
    }

    #[test]
    fn values_beyond_the_range_are_refused_not_wrapped() {
        for text in [
            "9999999999999999999h",
            "5124095576030431h",
            "2562048h",
            &format!("1{}s", "0".repeat(400)),
            "1h9999999999999999999h",
        ] {
            assert_eq!(
                parse(text),
                Err(DurationError::TooLong {
                    text: text.to_owned()
                }),
                "{text}"
            );
        }
        // Go's own bound, just inside.
        assert_eq!(parse("2562047h"), Ok(Duration::from_secs(2_562_047 * 3600)));
    }

    #[test]
    fn zero_and_negative_durations_are_refused() {
        for text in ["0", "0s", "0h0m", "-5s", "5s-3s", "-0s"] {
            assert!(
                matches!(
                    parse(text),
                    Err(DurationError::NotPositive { .. } | DurationError::Malformed { .. })
                ),
                "{text}: {:?}",
                parse(text)
            );
        }
        assert_eq!(
            parse("-5s").map_err(|e| e.to_string()),
            Err("\"-5s\" is not a positive duration".to_owned())
        );
    }
}
