//! What the on-call commands (`dlq-tool`, `worker audit`) share with the people
//! who run them: durations and instants as people type them (`2h`, `1h30m`,
//! RFC 3339), and aligned plain-text tables as people read them.

use std::time::Duration;

use chrono::{DateTime, Utc};

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
        format!("invalid time `{text}`: use RFC 3339 (2026-11-26T10:00:00Z) or a duration like 2h (that long ago)")
    })?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    Utc::now().checked_sub_signed(ago).ok_or_else(|| format!("invalid time `{text}`: too far in the past"))
}

/// Renders `rows` under `headers` as an aligned table, each line ending in
/// `\n`: columns two spaces apart, no trailing blanks (so output diffs and
/// pastes cleanly).
pub fn render_table<S: AsRef<str>>(headers: &[&str], rows: &[Vec<S>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.as_ref().chars().count();
            match widths.get_mut(i) {
                Some(width) => *width = (*width).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(AsRef::as_ref));
    }
    out
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
    fn aligns_columns() {
        let rows = vec![vec!["1-0", "a long value", "x"], vec!["12345-0", "b", ""]];
        assert_eq!(
            render_table(&["ID", "VALUE", "LAST"], &rows),
            "ID       VALUE         LAST\n1-0      a long value  x\n12345-0  b\n"
        );
    }
}
