//! Durations and instants as people type them (`2h`, `1h30m`, RFC 3339), ages as
//! people read them (`2h30m`), and the time hidden in a stream entry id.

use chrono::{DateTime, TimeZone, Utc};

pub use xentri_core::human::{parse_duration, parse_since};

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
