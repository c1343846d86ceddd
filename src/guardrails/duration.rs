//! Go-style durations (`30s`, `10m`, `1h30m`, `1.5h`) as Kubernetes users write them, read the way
//! Go's `time.ParseDuration` reads them. Pure; shared by the `provider-config` rule and the reconciler
//! (drift detection interval).

use std::time::Duration;

/// The largest duration Go can represent: `i64::MAX` nanoseconds (about 292 years).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits that can still change the result (more than nanosecond precision of an hour).
const MAX_FRACTION_DIGITS: usize = 20;

/// Why a text is not a Go duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty.
    #[error("the duration is empty; write one such as `30s`, `10m` or `1h30m`")]
    Empty,
    /// Not a sequence of numbers with units.
    #[error("`{0}` is not a duration such as `30s`, `10m` or `1h30m`")]
    Malformed(String),
    /// A number without a unit.
    #[error("`{0}` has a number without a unit (ns, us, ms, s, m or h)")]
    MissingUnit(String),
    /// A unit Go does not know.
    #[error("unknown unit `{unit}` in `{text}` (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The whole duration text.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// Longer than Go can represent.
    #[error("`{0}` is longer than a Go duration can be (about 292 years)")]
    Overflow(String),
    /// A negative, non-zero duration.
    #[error("`{0}` is negative")]
    Negative(String),
}

/// Parses a Go duration: an optional sign, then one or more decimal numbers (with an optional
/// fraction), each followed by a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`); `0` alone is zero.
/// Negative durations other than zero are refused, as `Duration` cannot hold them.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if unsigned == "0" {
        return Ok(Duration::ZERO);
    }
    if unsigned.is_empty() {
        return Err(if text.is_empty() {
            DurationError::Empty
        } else {
            DurationError::Malformed(text.to_owned())
        });
    }
    let mut total: u128 = 0;
    let mut rest = unsigned;
    while !rest.is_empty() {
        let (whole, after) = split_digits(rest);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after_dot) => split_digits(after_dot),
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(DurationError::Malformed(text.to_owned()));
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(text.to_owned()));
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            text: text.to_owned(),
            unit: unit.to_owned(),
        })?;
        total = amount(whole, fraction, scale)
            .and_then(|nanos| total.checked_add(nanos))
            .filter(|sum| *sum <= MAX_NANOS)
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        rest = after;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative(text.to_owned()));
    }
    let nanos = u64::try_from(total).map_err(|_| DurationError::Overflow(text.to_owned()))?;
    Ok(Duration::from_nanos(nanos))
}

/// Splits the leading ASCII digits off `text`.
fn split_digits(text: &str) -> (&str, &str) {
    let len = text.bytes().take_while(u8::is_ascii_digit).count();
    text.split_at(len)
}

/// Nanoseconds in one `unit`.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// `whole.fraction` units of `scale` nanoseconds, or `None` on overflow. Both parts are ASCII digits.
fn amount(whole: &str, fraction: &str, scale: u128) -> Option<u128> {
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
        if nanos > MAX_NANOS {
            return None;
        }
    }
    nanos = nanos.checked_mul(scale)?;
    let (mut numerator, mut denominator) = (0u128, 1u128);
    for digit in fraction.bytes().take(MAX_FRACTION_DIGITS) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    nanos.checked_add(numerator * scale / denominator)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_without_panicking(text in "[-+]?[0-9.hmsunµx ]{0,20}|\\PC{0,20}") {
            if let Ok(duration) = parse_go_duration(&text) {
                prop_assert!(duration.is_zero() || !text.starts_with('-'));
                prop_assert!(text.bytes().any(|b| b.is_ascii_digit()));
            }
        }

        #[test]
        fn hours_minutes_seconds_add_up(h in 0u64..10_000, m in 0u64..100, s in 0u64..100, ms in 0u64..1000) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let expected = Duration::from_millis(((h * 60 + m) * 60 + s) * 1000 + ms);
            prop_assert_eq!(parse_go_duration(&text), Ok(expected));
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_what_go_parses() {
        assert_eq!(parse_go_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_go_duration("10m"), Ok(secs(600)));
        assert_eq!(parse_go_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Ok(secs(5400)));
        assert_eq!(parse_go_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.s"), Ok(secs(1)));
        assert_eq!(parse_go_duration("+2m"), Ok(secs(120)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("3us"), Ok(Duration::from_micros(3)));
        assert_eq!(parse_go_duration("3µs"), Ok(Duration::from_micros(3)));
        assert_eq!(parse_go_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(
            parse_go_duration("1h2m3s4ms"),
            Ok(Duration::from_millis(3_723_004))
        );
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_go_duration("0.000000001s"),
            Ok(Duration::from_nanos(1))
        );
        assert_eq!(
            parse_go_duration("2562047h47m16.854775807s"),
            Ok(Duration::from_nanos(i64::MAX as u64))
        );
    }

    #[test]
    fn refuses_what_go_refuses() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_go_duration("-"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_go_duration("s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_go_duration(".s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_go_duration("1h 30m"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("10"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_go_duration("1h30"),
            Err(DurationError::MissingUnit(_))
        ));
        assert_eq!(
            parse_go_duration("10d"),
            Err(DurationError::UnknownUnit {
                text: "10d".to_owned(),
                unit: "d".to_owned()
            })
        );
        assert!(matches!(
            parse_go_duration("5M"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert_eq!(
            parse_go_duration("-5m"),
            Err(DurationError::Negative("-5m".to_owned()))
        );
        assert!(matches!(
            parse_go_duration("2562047h47m16.854775808s"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration("99999999999999999999999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }
}
