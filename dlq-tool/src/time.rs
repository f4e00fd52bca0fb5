//! Durations and instants as people type them (`2h`, `1h30m`, RFC 3339), and
//! ages as people read them (`2h30m`).

pub use xentri_core::human::{parse_duration, parse_since};

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
