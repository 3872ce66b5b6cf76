//! Durations as people write them in rig and dialect files: `30s`, `5m`,
//! `500ms`, `1h`, or a sum like `1m30s`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses `"30s"`, `"5m"`, `"500ms"`, `"1h"`, `"1m30s"`. A bare number is
/// refused: a unit-less timeout is a guess waiting to go wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("expected a duration like 30s, 5m or 500ms, found an empty string".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "expected a duration like 30s, 5m or 500ms, found `{text}`"
            ));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration `{text}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "" => {
                return Err(format!(
                    "duration `{text}` needs a unit (ms, s, m or h), e.g. `{value}s`"
                ))
            }
            other => {
                return Err(format!(
                    "duration `{text}`: unknown unit `{other}` (expected ms, s, m or h)"
                ))
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Renders a duration the way [`parse_duration`] reads it (`1m30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    for (v, u) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    out
}

/// `#[serde(deserialize_with = "crate::duration::deserialize")]`
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// `#[serde(default, deserialize_with = "crate::duration::deserialize_option")]`
pub fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) => parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn unitless_and_garbage_are_refused() {
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5 min").is_err());
        assert!(parse_duration("10d")
            .unwrap_err()
            .contains("unknown unit `d`"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999999s").is_err());
    }

    #[test]
    fn format_round_trips() {
        for ms in [0u64, 1, 500, 1000, 90_000, 3_723_004] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn format_then_parse_is_identity(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
