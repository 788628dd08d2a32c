//! Durations as people write them in flags and configuration ("1s", "500ms", "2m", "1h").

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses durations such as "1s", "500ms", "2m", "1h".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (for example \"1s\", \"500ms\", \"2m\")"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "{s:?} has no unit: write ms, s, m or h (for example \"1s\")"
            ))
        }
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s:?} must be greater than zero"));
    }
    // from_secs_f64 panics past Duration::MAX (found by the `config` fuzz target).
    let d = Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is too long"))?;
    // Below a nanosecond rounds to zero, and a zero period panics the daemon's timers.
    if d.is_zero() {
        return Err(format!("{s:?} must be greater than zero"));
    }
    Ok(d)
}

pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// Like [`parse_duration`], but zero ("0s", "0") is allowed: for waits such as an alert's
/// `for` duration, where zero means "at once" (no timer runs with that period).
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if matches!(
        t.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.'),
        "" | "ms" | "s" | "m" | "h"
    ) && digits.parse::<f64>() == Ok(0.0)
    {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

pub fn duration_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration_or_zero(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration_or_zero("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration_or_zero("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration_or_zero("2s").unwrap(),
            Duration::from_secs(2)
        );
        assert!(parse_duration_or_zero("0parsecs").is_err());
        assert!(parse_duration_or_zero("-0s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("0.0000000001ms").is_err());
        // Found by the `config` fuzz target: this panicked in Duration::from_secs_f64.
        assert_eq!(
            parse_duration("3333333333333333333333333333333333334s").unwrap_err(),
            "\"3333333333333333333333333333333333334s\" is too long"
        );
    }
}
