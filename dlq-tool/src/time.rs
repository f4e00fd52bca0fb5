//! Durations and instants as people type them (`2h`, `1h30m`, RFC 3339), ages as
//! people read them (`2h30m`), and the time hidden in a stream entry id.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// Parses `30s`, `15m`, `2h`, `7d`, `1w` and sums like `1h30m` (also `ms`).
/// A bare number is refused: the unit is what makes a duration readable.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration `{text}`: use a number with a unit, e.g. 30s, 15m, 2h, 7d or 1h30m");
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total = number.checked_mul(millis_per_unit).and_then(|ms| total.checked_add(ms)).ok_or_else(invalid)?;
    }
    Ok(Duration::from_millis(total))
}

/// Parses `--since`: an RFC 3339 instant, or a duration meaning "that long ago".
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    let ago = parse_duration(text).map_err(|_| {
        format!("invalid time `{text}`: use RFC 3339 (2026-11-26T10:00:00Z) or a duration like 2h (failed within the last 2h)")
    })?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    Utc::now().checked_sub_signed(ago).ok_or_else(|| format!("invalid time `{text}`: too far in the past"))
}

/// The millisecond part of a stream entry id (`1732600000000-0` → 1732600000000).
pub fn id_millis(id: &str) -> Option<i64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}

/// The instant a stream entry id was created.
pub fn id_time(id: &str) -> Option<DateTime<Utc>> {
    id_millis(id).and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

/// True for a complete stream entry id, `<ms>-<seq>`.
pub fn is_entry_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| {
        !ms.is_empty()
            && !seq.is_empty()
            && ms.bytes().all(|b| b.is_ascii_digit())
            && seq.bytes().all(|b| b.is_ascii_digit())
            && ms.parse::<u64>().is_ok()
            && seq.parse::<u64>().is_ok()
    })
}

/// An age (or TTL) in its two most significant units: `45s`, `5m12s`,
/// `2h30m`, `3d4h`, `1d` (a zero second unit is left out). Negative ages (clock skew) read as `0s`.
pub fn format_age(secs: i64) -> String {
    let secs = secs.max(0);
    let (days, hours, minutes, seconds) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60);
    let (major, minor) = if days > 0 {
        ((days, 'd'), (hours, 'h'))
    } else if hours > 0 {
        ((hours, 'h'), (minutes, 'm'))
    } else if minutes > 0 {
        ((minutes, 'm'), (seconds, 's'))
    } else {
        return format!("{seconds}s");
    };
    match minor {
        (0, _) => format!("{}{}", major.0, major.1),
        _ => format!("{}{}{}{}", major.0, major.1, minor.0, minor.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "90", "h", "2x", "banana", "1h 30m", "-2h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn since() {
        let instant = parse_since("2026-11-26T10:00:00Z").expect("rfc 3339");
        assert_eq!(instant.to_rfc3339(), "2026-11-26T10:00:00+00:00");
        let ago = parse_since("2h").expect("duration");
        let expected = Utc::now() - chrono::Duration::hours(2);
        assert!((ago - expected).num_seconds().abs() <= 1);
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn ids() {
        assert_eq!(id_millis("1732600000000-3"), Some(1_732_600_000_000));
        assert!(is_entry_id("1732600000000-3"));
        for bad in ["1732600000000", "-1", "1-", "a-1", "1-2-3", "", "99999999999999999999-0"] {
            assert!(!is_entry_id(bad), "{bad}");
        }
    }

    #[test]
    fn ages() {
        assert_eq!(format_age(-5), "0s");
        assert_eq!(format_age(45), "45s");
        assert_eq!(format_age(312), "5m12s");
        assert_eq!(format_age(9_030), "2h30m");
        assert_eq!(format_age(273_600), "3d4h");
        assert_eq!(format_age(86_400), "1d");
        assert_eq!(format_age(7_200), "2h");
    }
}
