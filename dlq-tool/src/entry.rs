//! A dead letter as dlq-tool reads it: the stream entry, the instant it
//! failed, and the views of it people (table rows) and scripts (JSON) get.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use xentri_core::dlq::dlq_field;
use xentri_core::stream::{DecodeError, StreamEntry, Undecodable, field};

use crate::time::format_age;

/// The column headers of [`DeadEntry::row`].
pub const ROW_HEADERS: [&str; 7] = ["ID", "AGE", "TYPE", "ORG", "GROUP", "ATTEMPTS", "ERROR"];
/// Longest error text in a table row; `show` prints it whole.
pub const ROW_ERROR_CHARS: usize = 60;

/// One entry of a DLQ (or of an archive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEntry {
    /// The entry with its fields, envelope fields first.
    pub entry: StreamEntry,
    /// When it was dead-lettered: `dlq_failed_at`, or else the entry id's time.
    pub failed_at: DateTime<Utc>,
    /// Why the entry could not be read as text, when it could not: `entry`
    /// then holds its fields with the bad bytes replaced (U+FFFD).
    pub undecodable: Option<DecodeError>,
}

impl DeadEntry {
    /// Wraps `entry`, working out when it failed.
    pub fn new(entry: StreamEntry) -> Self {
        // An entry read from Redis has an id with a time in it: the default
        // (the epoch) is only for one built by hand.
        let failed_at = xentri_core::dlq::failed_at(&entry).unwrap_or_default();
        Self { entry, failed_at, undecodable: None }
    }

    /// Wraps an entry that could not be read as text: what can be shown of
    /// it, marked with why.
    pub fn undecodable(undecodable: Undecodable) -> Self {
        Self { undecodable: Some(undecodable.error), ..Self::new(undecodable.lossy) }
    }

    /// The entry id in its stream.
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// The value of the field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entry.get(name)
    }

    /// Seconds since it failed.
    pub fn age_secs(&self, now: DateTime<Utc>) -> i64 {
        (now - self.failed_at).num_seconds()
    }

    /// The origin stream (`dlq_stream`).
    pub fn origin(&self) -> Option<&str> {
        self.get(dlq_field::STREAM)
    }

    /// The group that gave up (`dlq_group`).
    pub fn group(&self) -> Option<&str> {
        self.get(dlq_field::GROUP)
    }

    /// The last error (`dlq_error`).
    pub fn error(&self) -> Option<&str> {
        self.get(dlq_field::ERROR)
    }

    /// A table row under [`ROW_HEADERS`].
    pub fn row(&self, now: DateTime<Utc>) -> Vec<String> {
        let text = |name: &str| self.get(name).unwrap_or("-").to_owned();
        vec![
            self.id().to_owned(),
            format_age(self.age_secs(now)),
            text(field::TYPE),
            text(field::ORG_ID),
            text(dlq_field::GROUP),
            text(dlq_field::ATTEMPTS),
            one_line(self.error().unwrap_or("-"), ROW_ERROR_CHARS),
        ]
    }

    /// The summary scripts get from `list`, `tail` and `show`: stable names,
    /// `null` for what the entry lacks.
    pub fn summary_json(&self, now: DateTime<Utc>) -> Value {
        let text = |name: &str| self.get(name).map_or(Value::Null, |v| Value::String(v.to_owned()));
        let attempts =
            self.get(dlq_field::ATTEMPTS).and_then(|a| a.parse::<u64>().ok()).map_or(Value::Null, Value::from);
        json!({
            "id": self.id(),
            "failed_at": self.failed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "age_secs": self.age_secs(now),
            "event_id": text(field::ID),
            "type": text(field::TYPE),
            "org_id": text(field::ORG_ID),
            "correlation_id": text(field::CORRELATION_ID),
            "origin_stream": text(dlq_field::STREAM),
            "origin_id": text(dlq_field::ID),
            "group": text(dlq_field::GROUP),
            "consumer": text(dlq_field::CONSUMER),
            "attempts": attempts,
            "error": text(dlq_field::ERROR),
            "undecodable": self.undecodable.as_ref().map(ToString::to_string),
        })
    }
}

impl crate::batch::Item for DeadEntry {
    fn id(&self) -> &str {
        DeadEntry::id(self)
    }
}

/// `text` on one line, cut to `max` characters with `…` when longer.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &str)]) -> DeadEntry {
        DeadEntry::new(StreamEntry {
            id: "1732600000000-0".into(),
            fields: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        })
    }

    #[test]
    fn failed_at_falls_back_to_the_id() {
        let with = entry(&[("dlq_failed_at", "2026-11-26T10:00:00.000Z")]);
        assert_eq!(with.failed_at.to_rfc3339(), "2026-11-26T10:00:00+00:00");
        let without = entry(&[("dlq_failed_at", "garbage")]);
        assert_eq!(without.failed_at.timestamp_millis(), 1_732_600_000_000);
    }

    #[test]
    fn rows_are_one_line_and_cut() {
        let long = "x".repeat(100);
        let row = entry(&[("dlq_error", &format!("line one\nline two {long}"))]).row(Utc::now());
        let error = &row[6];
        assert!(error.starts_with("line one line two"), "{error}");
        assert_eq!(error.chars().count(), ROW_ERROR_CHARS);
        assert!(error.ends_with('…'));
        assert_eq!(row[2], "-");
    }
}
