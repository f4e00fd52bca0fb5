//! Stream keys and the stream-entry codec.
//!
//! A stream entry carries the envelope's fields flat, `payload` as a JSON string,
//! so `redis-cli XRANGE events:work - +` stays readable. Extra fields (the
//! `dlq_*` fields, `target_group`) ride along untouched.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::{Actor, EventType, StoredEvent};

/// A stream family: a work stream, its DLQ and the DLQ's alert threshold.
/// Their names and thresholds are configuration (`[streams.*]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Every appended event.
    Events,
    /// Work for background handlers.
    Jobs,
    /// Deliveries to systems outside the platform.
    Sync,
}

impl Family {
    /// All families, in a stable order.
    pub const ALL: [Family; 3] = [Family::Events, Family::Jobs, Family::Sync];
}

/// Redis key naming: every key this process touches gets `redis.key_prefix`
/// in front (tests give each run its own prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// The prefix, e.g. `""` or `"t-1234:"`.
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// The Redis key for the logical name `name` (a stream, a cache key, …).
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// The archive key for dead letters of `dlq` that failed on `date` (UTC).
pub fn archive_key(dlq: &str, date: NaiveDate) -> String {
    format!("dlq:archive:{dlq}:{}", date.format("%Y-%m-%d"))
}

/// Every archive key of `dlq` under the prefix of `keys`, sorted, found with
/// `SCAN` (never `KEYS`, which blocks the server) `count` keys per step.
pub async fn archive_keys<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    dlq: &str,
    count: usize,
) -> redis::RedisResult<Vec<String>> {
    let pattern = archive_key_pattern(keys, dlq);
    let mut found: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(count)
            .arg("TYPE")
            .arg("stream")
            .query_async(conn)
            .await?;
        found.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key more than once.
    found.sort();
    found.dedup();
    Ok(found)
}

/// The `SCAN … MATCH` pattern of every archive key of `dlq` under the prefix
/// of `keys` (the prefix and the name escaped, the date a glob).
pub fn archive_key_pattern(keys: &Keys, dlq: &str) -> String {
    let fixed = keys.key(&format!("dlq:archive:{dlq}:"));
    let mut pattern = String::with_capacity(fixed.len() + 40);
    for c in fixed.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]");
    pattern
}

/// Field names of the envelope on a stream entry, in the order they are written.
pub mod field {
    /// Event id.
    pub const ID: &str = "id";
    /// Global sequence.
    pub const SEQ: &str = "seq";
    /// Tenant.
    pub const ORG_ID: &str = "org_id";
    /// Type name.
    pub const TYPE: &str = "type";
    /// Payload, a JSON object as a string.
    pub const PAYLOAD: &str = "payload";
    /// Actor.
    pub const ACTOR: &str = "actor";
    /// Trace id.
    pub const TRACE_ID: &str = "trace_id";
    /// Correlation id.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// Causation id, absent when the event has none.
    pub const CAUSATION_ID: &str = "causation_id";
    /// RFC 3339 UTC timestamp.
    pub const OCCURRED_AT: &str = "occurred_at";
    /// Set on a replayed entry: only this group processes it, others ack and skip.
    pub const TARGET_GROUP: &str = "target_group";
}

/// A stream entry that cannot be read as an event. Never a panic: the worker
/// dead-letters such entries and keeps going.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is present but does not parse.
    #[error("invalid field `{field}`: {reason}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// Why it does not parse.
        reason: String,
    },
    /// A field's value is not a UTF-8 string.
    #[error("field `{0}` is not a UTF-8 string")]
    NotText(String),
}

/// A stream entry whose fields are not all text: [`StreamEntry::from_redis`]
/// and [`StreamEntry::from_flat`] report it rather than read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Undecodable {
    /// Which field is not text (the first).
    pub error: DecodeError,
    /// The entry with every byte that is not UTF-8 replaced by U+FFFD: what
    /// can be shown of it, and what a dead letter keeps.
    pub lossy: StreamEntry,
}

/// A reply value as text; `Err` holds what can be shown of a value that is
/// not text (its bytes with those that are not UTF-8 replaced).
fn text_of(value: &redis::Value) -> Result<String, String> {
    match value {
        redis::Value::BulkString(bytes) => {
            String::from_utf8(bytes.clone()).map_err(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }
        redis::Value::SimpleString(text) => Ok(text.clone()),
        other => Err(format!("{other:?}")),
    }
}

/// An entry as read from a stream: its id and its fields, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamEntry {
    /// The stream entry id, e.g. `1732600000000-0`.
    pub id: String,
    /// The fields, in the order they were written.
    pub fields: Vec<(String, String)>,
}

impl StreamEntry {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &'static str) -> Result<&str, DecodeError> {
        self.get(name).ok_or(DecodeError::MissingField(name))
    }

    /// Reads an entry out of what `redis` returns for `XREADGROUP`,
    /// `XCLAIM` and `XRANGE` as a map. The fields come out envelope fields
    /// first, in their written order, then the rest by name, so the same
    /// entry always reads the same way.
    ///
    /// The one rule every reader of stream entries follows: every field value
    /// is UTF-8 text, or the entry is [`Undecodable`] (never an entry with
    /// those bytes replaced, never an empty one).
    pub fn from_redis(id: String, map: &HashMap<String, redis::Value>) -> Result<Self, Undecodable> {
        let mut fields: Vec<(String, Result<String, String>)> =
            map.iter().map(|(name, value)| (name.clone(), text_of(value))).collect();
        fields.sort_by(|(a, _), (b, _)| (field_rank(a), a).cmp(&(field_rank(b), b)));
        Self::checked(id, fields)
    }

    /// Reads an entry out of an `XRANGE`-style reply's flat field list
    /// (`[name, value, …]`), keeping the order the fields were written in
    /// (envelope, then `dlq_*`). The same rule as [`StreamEntry::from_redis`],
    /// names included.
    pub fn from_flat(id: String, flat: Vec<redis::Value>) -> Result<Self, Undecodable> {
        let mut fields = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
            let (name, value) = match text_of(&name) {
                Ok(name) => (name, text_of(&value)),
                // A name that is not text: the value's text cannot save it.
                Err(lossy) => (lossy, Err(text_of(&value).unwrap_or_else(|lossy| lossy))),
            };
            fields.push((name, value));
        }
        Self::checked(id, fields)
    }

    /// The entry when every value is text; else [`Undecodable`], naming the
    /// first field that is not.
    fn checked(id: String, fields: Vec<(String, Result<String, String>)>) -> Result<Self, Undecodable> {
        let first_bad = fields.iter().find(|(_, value)| value.is_err()).map(|(name, _)| name.clone());
        let fields = fields.into_iter().map(|(name, value)| (name, value.unwrap_or_else(|lossy| lossy))).collect();
        let entry = Self { id, fields };
        match first_bad {
            None => Ok(entry),
            Some(name) => Err(Undecodable { error: DecodeError::NotText(name), lossy: entry }),
        }
    }

    /// Reads the event out of the entry's fields.
    pub fn decode(&self) -> Result<StoredEvent, DecodeError> {
        let invalid = |field: &'static str, reason: String| DecodeError::InvalidField { field, reason };
        let uuid = |field: &'static str| -> Result<Uuid, DecodeError> {
            self.require(field)?.parse().map_err(|e: uuid::Error| invalid(field, e.to_string()))
        };
        // Fields are checked in envelope order, so errors name the first bad one.
        let id = uuid(field::ID)?;
        let seq: i64 = self
            .require(field::SEQ)?
            .parse()
            .map_err(|e: std::num::ParseIntError| invalid(field::SEQ, e.to_string()))?;
        let org_id = uuid(field::ORG_ID)?;
        let event_type = EventType::parse(self.require(field::TYPE)?).map_err(|e| invalid(field::TYPE, e.message))?;
        // Kept as text: a JSON object, checked, not re-serialised.
        let payload = match serde_json::from_str::<Box<RawValue>>(self.require(field::PAYLOAD)?) {
            Ok(raw) if raw.get().starts_with('{') => raw,
            Ok(_) => return Err(invalid(field::PAYLOAD, "not a JSON object".to_owned())),
            Err(e) => return Err(invalid(field::PAYLOAD, e.to_string())),
        };
        Ok(StoredEvent {
            id,
            seq,
            org_id,
            event_type,
            payload,
            actor: Actor::parse(self.require(field::ACTOR)?).map_err(|e| invalid(field::ACTOR, e.message))?,
            trace_id: self.require(field::TRACE_ID)?.to_owned(),
            correlation_id: self.require(field::CORRELATION_ID)?.to_owned(),
            causation_id: self.get(field::CAUSATION_ID).map(str::to_owned),
            occurred_at: DateTime::parse_from_rfc3339(self.require(field::OCCURRED_AT)?)
                .map_err(|e| invalid(field::OCCURRED_AT, e.to_string()))?
                .with_timezone(&Utc),
        })
    }
}

fn field_rank(name: &str) -> usize {
    ENVELOPE_ORDER.iter().position(|f| *f == name).unwrap_or(ENVELOPE_ORDER.len())
}

const ENVELOPE_ORDER: [&str; 10] = [
    field::ID,
    field::SEQ,
    field::ORG_ID,
    field::TYPE,
    field::PAYLOAD,
    field::ACTOR,
    field::TRACE_ID,
    field::CORRELATION_ID,
    field::CAUSATION_ID,
    field::OCCURRED_AT,
];

/// The event as flat stream fields, ready for `XADD`: the envelope's fields in
/// order, `payload` as its JSON text, `causation_id` only when present. The
/// one encoder; [`StreamEntry::decode`] reads it back.
pub fn encode(event: &StoredEvent) -> Vec<(&'static str, String)> {
    let mut fields = Vec::with_capacity(10);
    fields.push((field::ID, event.id.to_string()));
    fields.push((field::SEQ, event.seq.to_string()));
    fields.push((field::ORG_ID, event.org_id.to_string()));
    fields.push((field::TYPE, event.event_type.as_str().to_owned()));
    fields.push((field::PAYLOAD, event.payload.get().to_owned()));
    fields.push((field::ACTOR, event.actor.as_str().to_owned()));
    fields.push((field::TRACE_ID, event.trace_id.clone()));
    fields.push((field::CORRELATION_ID, event.correlation_id.clone()));
    if let Some(causation_id) = &event.causation_id {
        fields.push((field::CAUSATION_ID, causation_id.clone()));
    }
    fields.push((field::OCCURRED_AT, event.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true)));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredEvent {
        let payload = RawValue::from_string(r#"{"name":"Ada","tags":["a",{"b":1}]}"#.to_owned()).expect("json");
        StoredEvent {
            id: Uuid::now_v7(),
            seq: 42,
            org_id: Uuid::new_v4(),
            event_type: EventType::parse("xentri.soul.updated.v1").expect("valid"),
            payload,
            actor: Actor::user("user_1").expect("valid"),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            correlation_id: "corr-1".into(),
            causation_id: Some("cause-1".into()),
            occurred_at: DateTime::parse_from_rfc3339("2026-11-26T10:00:00.123456Z").expect("ts").with_timezone(&Utc),
        }
    }

    fn entry(fields: Vec<(&'static str, String)>) -> StreamEntry {
        StreamEntry { id: "1-0".into(), fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
    }

    #[test]
    fn round_trip() {
        let event = sample();
        assert_eq!(entry(encode(&event)).decode(), Ok(event.clone()));
        let without_cause = StoredEvent { causation_id: None, ..event };
        let fields = encode(&without_cause);
        assert!(fields.iter().all(|(k, _)| *k != field::CAUSATION_ID));
        assert_eq!(entry(fields).decode(), Ok(without_cause));
    }

    #[test]
    fn payload_is_a_json_string() {
        let fields = encode(&sample());
        let payload = fields.iter().find(|(k, _)| *k == field::PAYLOAD).map(|(_, v)| v.as_str());
        assert_eq!(payload, Some(r#"{"name":"Ada","tags":["a",{"b":1}]}"#));
    }

    #[test]
    fn malformed_entries_are_typed_errors() {
        let mut missing = entry(encode(&sample()));
        missing.fields.retain(|(k, _)| k != field::ORG_ID);
        assert_eq!(missing.decode(), Err(DecodeError::MissingField("org_id")));

        for (name, bad) in [
            (field::PAYLOAD, "not json"),
            (field::PAYLOAD, "[1,2]"),
            (field::SEQ, "x"),
            (field::ID, "nope"),
            (field::TYPE, "Bad.Type"),
            (field::OCCURRED_AT, "yesterday"),
            (field::ACTOR, "root"),
        ] {
            let mut e = entry(encode(&sample()));
            for (k, v) in &mut e.fields {
                if k == name {
                    *v = bad.to_owned();
                }
            }
            assert!(
                matches!(e.decode(), Err(DecodeError::InvalidField { field, .. }) if field == name),
                "{name}={bad}"
            );
        }
    }

    #[test]
    fn from_redis_rejects_non_text_and_orders_fields() {
        let event = sample();
        let mut map = HashMap::new();
        for (k, v) in encode(&event) {
            map.insert(k.to_owned(), redis::Value::BulkString(v.into_bytes()));
        }
        map.insert("dlq_error".into(), redis::Value::BulkString(b"boom".to_vec()));
        let read = StreamEntry::from_redis("1-0".into(), &map).expect("text");
        assert_eq!(read.fields[0].0, "id");
        assert_eq!(read.fields.last().map(|(k, _)| k.as_str()), Some("dlq_error"));
        assert_eq!(read.decode().as_ref(), Ok(&event));

        map.insert("seq".into(), redis::Value::BulkString(b"4\xff".to_vec()));
        let undecodable = StreamEntry::from_redis("1-0".into(), &map).expect_err("not text");
        assert_eq!(undecodable.error, DecodeError::NotText("seq".into()));
        // What can be kept is kept, the bad bytes replaced: never an empty entry.
        assert_eq!(undecodable.lossy.id, "1-0");
        assert_eq!(undecodable.lossy.get("seq"), Some("4\u{fffd}"));
        assert_eq!(undecodable.lossy.get("type"), Some(event.event_type.as_str()));
        map.insert("seq".into(), redis::Value::Int(4));
        let undecodable = StreamEntry::from_redis("1-0".into(), &map).expect_err("not text");
        assert_eq!(undecodable.error, DecodeError::NotText("seq".into()));
    }

    #[test]
    fn from_flat_keeps_the_written_order_and_reports_what_is_not_text() {
        let bulk = |bytes: &[u8]| redis::Value::BulkString(bytes.to_vec());
        let flat = vec![bulk(b"type"), bulk(b"t"), bulk(b"dlq_error"), bulk(b"boom"), bulk(b"id"), bulk(b"1")];
        let entry = StreamEntry::from_flat("5-0".into(), flat).expect("text");
        let names: Vec<&str> = entry.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["type", "dlq_error", "id"]);

        let flat =
            vec![bulk(b"type"), bulk(b"t"), bulk(b"dlq_error"), bulk(b"bad \xff byte"), bulk(b"n\xffme"), bulk(b"v")];
        let undecodable = StreamEntry::from_flat("5-0".into(), flat).expect_err("not text");
        assert_eq!(undecodable.error, DecodeError::NotText("dlq_error".into()));
        assert_eq!(undecodable.lossy.get("dlq_error"), Some("bad \u{fffd} byte"));
        assert_eq!(undecodable.lossy.get("n\u{fffd}me"), Some("v"));
    }

    #[test]
    fn archive_keys() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 26).expect("date");
        assert_eq!(archive_key("jobs:dlq", date), "dlq:archive:jobs:dlq:2026-11-26");
        assert_eq!(
            archive_key_pattern(&Keys::new("t-1:"), "a*b?[c]"),
            "t-1:dlq:archive:a\\*b\\?\\[c\\]:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
        );
    }
}
