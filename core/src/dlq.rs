//! The DLQ entry format, shared by the worker (which writes dead letters) and
//! dlq-tool (which reads, replays and archives them).
//!
//! A dead letter is the original entry's fields followed by `dlq_*` fields.
//! Consumers ignore `dlq_*` fields, so the manual procedure
//! `redis-cli XADD jobs:work * [fields from the DLQ entry]` works; a proper replay
//! ([`replay_fields`]) strips them and sets `target_group`.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::stream::{DecodeError, StreamEntry, field};

/// Every `dlq_*` field starts with this.
pub const PREFIX: &str = "dlq_";
/// Longest `dlq_error` kept; longer messages are cut at a character boundary.
pub const MAX_ERROR_LEN: usize = 1024;

/// Names of the `dlq_*` fields.
pub mod dlq_field {
    /// Origin stream.
    pub const STREAM: &str = "dlq_stream";
    /// Origin entry id.
    pub const ID: &str = "dlq_id";
    /// The group whose handler gave up.
    pub const GROUP: &str = "dlq_group";
    /// The consumer that last held it.
    pub const CONSUMER: &str = "dlq_consumer";
    /// Handler attempts made.
    pub const ATTEMPTS: &str = "dlq_attempts";
    /// The last error, or why it is poison / malformed.
    pub const ERROR: &str = "dlq_error";
    /// When it was dead-lettered, RFC 3339 UTC.
    pub const FAILED_AT: &str = "dlq_failed_at";
}

/// Why and where an entry was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Origin stream, e.g. `jobs:work`.
    pub stream: String,
    /// Origin entry id.
    pub id: String,
    /// The group whose handler gave up.
    pub group: String,
    /// The consumer that last held it.
    pub consumer: String,
    /// Handler attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
}

impl DeadLetter {
    /// The `dlq_*` fields, in a fixed order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            (dlq_field::STREAM, self.stream.clone()),
            (dlq_field::ID, self.id.clone()),
            (dlq_field::GROUP, self.group.clone()),
            (dlq_field::CONSUMER, self.consumer.clone()),
            (dlq_field::ATTEMPTS, self.attempts.to_string()),
            (dlq_field::ERROR, truncate(&self.error, MAX_ERROR_LEN).to_owned()),
            (dlq_field::FAILED_AT, self.failed_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ]
    }

    /// Reads the `dlq_*` fields of a DLQ entry.
    pub fn read(entry: &StreamEntry) -> Result<Self, DecodeError> {
        let get = |name: &'static str| entry.get(name).ok_or(DecodeError::MissingField(name));
        let invalid = |field: &'static str, reason: String| DecodeError::InvalidField { field, reason };
        Ok(Self {
            stream: get(dlq_field::STREAM)?.to_owned(),
            id: get(dlq_field::ID)?.to_owned(),
            group: get(dlq_field::GROUP)?.to_owned(),
            consumer: get(dlq_field::CONSUMER)?.to_owned(),
            attempts: get(dlq_field::ATTEMPTS)?
                .parse()
                .map_err(|e: std::num::ParseIntError| invalid(dlq_field::ATTEMPTS, e.to_string()))?,
            error: get(dlq_field::ERROR)?.to_owned(),
            failed_at: DateTime::parse_from_rfc3339(get(dlq_field::FAILED_AT)?)
                .map_err(|e| invalid(dlq_field::FAILED_AT, e.to_string()))?
                .with_timezone(&Utc),
        })
    }
}

/// True for fields that only a DLQ entry carries.
pub fn is_dlq_field(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// The fields of the DLQ entry for `original`: all of its fields (but any
/// earlier `dlq_*` and `target_group`, which this dead letter replaces), then
/// the `dlq_*` fields of `letter`.
pub fn dead_letter_fields(original: &StreamEntry, letter: &DeadLetter) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = original
        .fields
        .iter()
        .filter(|(name, _)| !is_dlq_field(name) && name != field::TARGET_GROUP)
        .cloned()
        .collect();
    fields.extend(letter.fields().into_iter().map(|(k, v)| (k.to_owned(), v)));
    fields
}

/// The fields to put back on the origin stream when replaying a DLQ entry:
/// the original fields, without `dlq_*`, with `target_group` set to the group
/// that gave up so that other groups skip it.
pub fn replay_fields(dead: &StreamEntry) -> Result<Vec<(String, String)>, DecodeError> {
    let group = dead.get(dlq_field::GROUP).ok_or(DecodeError::MissingField(dlq_field::GROUP))?.to_owned();
    let mut fields: Vec<(String, String)> =
        dead.fields.iter().filter(|(name, _)| !is_dlq_field(name) && name != field::TARGET_GROUP).cloned().collect();
    fields.push((field::TARGET_GROUP.to_owned(), group));
    Ok(fields)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original() -> StreamEntry {
        StreamEntry {
            id: "1700000000000-0".into(),
            fields: vec![
                ("id".into(), "0193".into()),
                ("type".into(), "xentri.soul.updated.v1".into()),
                ("payload".into(), "{}".into()),
                ("target_group".into(), "old".into()),
            ],
        }
    }

    fn letter() -> DeadLetter {
        DeadLetter {
            stream: "events:work".into(),
            id: "1700000000000-0".into(),
            group: "cache".into(),
            consumer: "host-1-0".into(),
            attempts: 3,
            error: "boom".into(),
            failed_at: DateTime::parse_from_rfc3339("2026-11-26T10:00:00.5Z").expect("ts").with_timezone(&Utc),
        }
    }

    #[test]
    fn dead_letter_round_trip() {
        let fields = dead_letter_fields(&original(), &letter());
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "type",
                "payload",
                "dlq_stream",
                "dlq_id",
                "dlq_group",
                "dlq_consumer",
                "dlq_attempts",
                "dlq_error",
                "dlq_failed_at"
            ]
        );
        let dead = StreamEntry { id: "9-0".into(), fields };
        assert_eq!(DeadLetter::read(&dead), Ok(letter()));
    }

    #[test]
    fn replay_strips_dlq_fields_and_targets_the_group() {
        let dead = StreamEntry { id: "9-0".into(), fields: dead_letter_fields(&original(), &letter()) };
        let replay = replay_fields(&dead).expect("has a group");
        assert_eq!(
            replay,
            vec![
                ("id".to_owned(), "0193".to_owned()),
                ("type".to_owned(), "xentri.soul.updated.v1".to_owned()),
                ("payload".to_owned(), "{}".to_owned()),
                ("target_group".to_owned(), "cache".to_owned()),
            ]
        );
        assert_eq!(replay_fields(&original()), Err(DecodeError::MissingField("dlq_group")));
    }

    #[test]
    fn long_errors_are_cut_on_a_char_boundary() {
        let mut long = letter();
        long.error = "é".repeat(MAX_ERROR_LEN);
        let fields = long.fields();
        let error = &fields.iter().find(|(k, _)| *k == dlq_field::ERROR).expect("error").1;
        assert!(error.len() <= MAX_ERROR_LEN && error.chars().all(|c| c == 'é'));
    }
}
