//! The DLQ entry format, shared by the worker (which writes dead letters) and
//! dlq-tool (which reads, replays and archives them).
//!
//! A dead letter is the original entry's fields followed by `dlq_*` fields.
//! Consumers ignore `dlq_*` fields, so the manual procedure
//! `redis-cli XADD jobs:work * [fields from the DLQ entry]` works; a proper replay
//! ([`crate::scripts::REPLAY`]) strips them and sets `target_group`.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::stream::{DecodeError, StreamEntry, field};
use crate::stream_id::StreamId;

/// Every `dlq_*` field starts with this.
pub const PREFIX: &str = "dlq_";
/// Longest `dlq_error` kept; longer messages are cut at a character boundary.
pub const MAX_ERROR_LEN: usize = 1024;

/// The least lifetime an archive key is given: a dead letter archived long
/// after it failed still stays this long to be looked at.
pub const ARCHIVE_MIN_TTL_SECS: u64 = 3_600;

/// When a dead letter failed: its `dlq_failed_at`, or else the time in its
/// entry id (when it entered the DLQ). `None` only for an entry that has
/// neither (one built by hand with another id).
pub fn failed_at(entry: &StreamEntry) -> Option<DateTime<Utc>> {
    entry
        .get(dlq_field::FAILED_AT)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|instant| instant.with_timezone(&Utc))
        .or_else(|| StreamId::parse(&entry.id).ok().and_then(StreamId::time))
}

/// The lifetime, at `now`, of the archive key of a dead letter that failed at
/// `failed`: what is left of `ttl_secs` since it failed, at least
/// [`ARCHIVE_MIN_TTL_SECS`].
pub fn archive_ttl_secs(ttl_secs: u64, failed: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let age = u64::try_from((now - failed).num_seconds()).unwrap_or(0);
    ttl_secs.saturating_sub(age).max(ARCHIVE_MIN_TTL_SECS)
}

/// A DLQ's dead letters counted for the alert conditions, added one by one:
/// the worker's alert evaluation and `dlq-tool stats` count through this, so
/// they agree on what holds.
///
/// - **growth**: more than the family's threshold of dead letters failed
///   ([`failed_at`]) at or after the window's start;
/// - **a repeated correlation id** (a systemic issue): one `correlation_id`
///   on at least the repeat threshold of dead letters.
#[derive(Debug, Clone)]
pub struct DlqTally {
    window_start: DateTime<Utc>,
    /// Dead letters counted.
    pub seen: usize,
    /// Of those, the ones that failed within the window.
    pub in_window: usize,
    /// Of those, the ones whose fields could not be decoded (counted by the
    /// time in their id, with no correlation id).
    pub undecodable: usize,
    /// How many dead letters carry each `correlation_id`.
    pub per_correlation: HashMap<String, usize>,
}

/// The alert conditions holding for one DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqConditions {
    /// More dead letters within the window than the threshold.
    pub growth: bool,
    /// The correlation ids on at least the repeat threshold of dead letters,
    /// most frequent first, ties by id.
    pub repeated: Vec<(String, usize)>,
}

impl DlqTally {
    /// An empty tally for a window starting at `window_start`.
    pub fn new(window_start: DateTime<Utc>) -> Self {
        Self { window_start, seen: 0, in_window: 0, undecodable: 0, per_correlation: HashMap::new() }
    }

    /// Counts one dead letter.
    pub fn add(&mut self, entry: &StreamEntry) {
        self.count(failed_at(entry));
        if let Some(correlation) = entry.get(field::CORRELATION_ID) {
            *self.per_correlation.entry(correlation.to_owned()).or_default() += 1;
        }
    }

    /// Counts a dead letter whose fields could not be decoded, by the time in
    /// its entry id.
    pub fn add_undecodable(&mut self, id: &str) {
        self.undecodable += 1;
        self.count(StreamId::parse(id).ok().and_then(StreamId::time));
    }

    fn count(&mut self, failed: Option<DateTime<Utc>>) {
        self.seen += 1;
        if failed.is_some_and(|failed| failed >= self.window_start) {
            self.in_window += 1;
        }
    }

    /// The conditions holding for `threshold` (growth: more than this many
    /// within the window) and `repeat` (a correlation id on at least this
    /// many).
    pub fn conditions(&self, threshold: u32, repeat: u32) -> DlqConditions {
        let at_least = |limit: u32| usize::try_from(limit).unwrap_or(usize::MAX);
        let mut repeated: Vec<(String, usize)> = self
            .per_correlation
            .iter()
            .filter(|(_, n)| **n >= at_least(repeat))
            .map(|(c, n)| (c.clone(), *n))
            .collect();
        repeated.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        DlqConditions { growth: self.in_window > at_least(threshold), repeated }
    }
}

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

    fn dead(id: &str, failed: &str, correlation: Option<&str>) -> StreamEntry {
        let mut fields = vec![(dlq_field::FAILED_AT.to_owned(), failed.to_owned())];
        fields.extend(correlation.map(|c| (field::CORRELATION_ID.to_owned(), c.to_owned())));
        StreamEntry { id: id.to_owned(), fields }
    }

    #[test]
    fn the_alert_conditions_count_the_window_and_repeated_correlation_ids() {
        let start = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").map(|t| t.with_timezone(&Utc));
        let mut tally = DlqTally::new(start.expect("a time"));
        tally.add(&dead("1-0", "2026-11-26T09:59:59Z", Some("order-1")));
        tally.add(&dead("2-0", "2026-11-26T10:00:00Z", Some("order-1")));
        tally.add(&dead("3-0", "2026-11-26T10:30:00Z", Some("order-2")));
        tally.add(&dead("4-0", "2026-11-26T10:31:00Z", Some("order-1")));
        // Undecodable: counted by its id's time (1795687200000 ms is 10:00Z).
        tally.add_undecodable("1795687200000-0");
        assert_eq!((tally.seen, tally.in_window, tally.undecodable), (5, 4, 1));
        assert_eq!(tally.conditions(4, 3), DlqConditions { growth: false, repeated: vec![("order-1".to_owned(), 3)] });
        assert_eq!(tally.conditions(3, 4), DlqConditions { growth: true, repeated: Vec::new() });
        let both = tally.conditions(0, 1).repeated;
        assert_eq!(both, [("order-1".to_owned(), 3), ("order-2".to_owned(), 1)]);
    }

    #[test]
    fn a_dead_letter_failed_at_its_field_else_at_its_id() {
        let mut entry = StreamEntry { id: "1732600000000-0".into(), fields: Vec::new() };
        assert_eq!(failed_at(&entry).map(|t| t.timestamp_millis()), Some(1_732_600_000_000));
        entry.fields.push((dlq_field::FAILED_AT.into(), "2026-11-26T10:00:00Z".into()));
        assert_eq!(failed_at(&entry).map(|t| t.to_rfc3339()), Some("2026-11-26T10:00:00+00:00".to_owned()));
        assert_eq!(failed_at(&StreamEntry { id: "by-hand".into(), fields: Vec::new() }), None);
    }

    #[test]
    fn an_archive_lives_what_is_left_of_its_ttl_and_at_least_an_hour() {
        let failed = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").map(|t| t.with_timezone(&Utc));
        let failed = failed.expect("a time");
        let now = failed + chrono::Duration::hours(10);
        assert_eq!(archive_ttl_secs(86_400, failed, now), 86_400 - 36_000);
        assert_eq!(archive_ttl_secs(7_200, failed, now), ARCHIVE_MIN_TTL_SECS);
        // A failure in the future (clock skew) counts as age zero.
        assert_eq!(archive_ttl_secs(86_400, now, failed), 86_400);
    }

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
    fn long_errors_are_cut_on_a_char_boundary() {
        let mut long = letter();
        long.error = "é".repeat(MAX_ERROR_LEN);
        let fields = long.fields();
        let error = &fields.iter().find(|(k, _)| *k == dlq_field::ERROR).expect("error").1;
        assert!(error.len() <= MAX_ERROR_LEN && error.chars().all(|c| c == 'é'));
    }
}
