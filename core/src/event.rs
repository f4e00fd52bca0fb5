//! The event envelope and the rules for its fields.
//!
//! Type names follow `xentri.{boundedContext}[.{entity}].{action}.v{N}` with
//! lower-case segments; anything else is refused before it reaches storage.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::store::NewEventRecord;

/// Longest accepted event type name.
pub const MAX_TYPE_LEN: usize = 255;
/// Longest accepted correlation or causation id.
pub const MAX_ID_LEN: usize = 128;

/// An event to append: its fields checked, its payload serialised once (the
/// text stored is the text answered), not yet stored, so without a `seq`.
/// [`NewEvent::stored`] is the one way to a [`StoredEvent`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// UUID v7, assigned by the writer.
    pub id: Uuid,
    /// The tenant the event belongs to.
    pub org_id: Uuid,
    /// `xentri.{boundedContext}[.{entity}].{action}.v{N}`.
    pub event_type: EventType,
    /// A JSON object, serialised.
    pub payload: Box<RawValue>,
    /// Who caused it: `user:<sub>` or `service:<name>`.
    pub actor: Actor,
    /// W3C trace id (32 lower-case hex digits) of the request that appended it.
    pub trace_id: String,
    /// Groups the events of one business operation.
    pub correlation_id: String,
    /// The event that caused this one, if any.
    pub causation_id: Option<String>,
    /// When it was appended, UTC, to the microsecond (as PostgreSQL keeps it).
    pub occurred_at: DateTime<Utc>,
}

impl NewEvent {
    /// The event as stored at `seq`.
    pub fn stored(self, seq: i64) -> StoredEvent {
        StoredEvent {
            id: self.id,
            seq,
            org_id: self.org_id,
            event_type: self.event_type,
            payload: self.payload,
            actor: self.actor,
            trace_id: self.trace_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            occurred_at: self.occurred_at,
        }
    }

    /// The event as one item of an `append_events` call, guarded by the
    /// idempotency key `key` (with the request's hash) if given.
    pub fn record<'a>(&'a self, key: Option<(&'a str, &'a [u8])>) -> NewEventRecord<'a> {
        NewEventRecord {
            org_id: self.org_id,
            idempotency_key: key.map(|(key, _)| key),
            request_hash: key.map(|(_, hash)| hash),
            id: self.id,
            event_type: self.event_type.as_str(),
            payload: self.payload.get(),
            actor: self.actor.as_str(),
            trace_id: &self.trace_id,
            correlation_id: &self.correlation_id,
            causation_id: self.causation_id.as_deref(),
            occurred_at: self.occurred_at,
        }
    }
}

/// An immutable event as stored in `system_events`: what every route answers,
/// what the relay reads and puts on a stream, and what handlers are given.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StoredEvent {
    /// UUID v7.
    pub id: Uuid,
    /// A number unique to the event, increasing in the order events were
    /// inserted (not the order lists page in).
    pub seq: i64,
    /// The tenant the event belongs to.
    pub org_id: Uuid,
    /// `xentri.{boundedContext}[.{entity}].{action}.v{N}`.
    #[serde(rename = "type")]
    #[sqlx(rename = "type", try_from = "String")]
    #[schema(rename = "type", value_type = String, example = "xentri.soul.updated.v1", max_length = 255,
        pattern = r"^xentri\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,2}\.v[1-9][0-9]*$")]
    pub event_type: EventType,
    /// A JSON object, as appended.
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    /// `user:<sub>` or `service:<name>`.
    #[sqlx(try_from = "String")]
    #[schema(value_type = String, example = "user:user_2abc", pattern = r"^(user|service):[!-~]{1,255}$")]
    pub actor: Actor,
    /// W3C trace id of the request that appended it.
    pub trace_id: String,
    /// Groups the events of one business operation.
    pub correlation_id: String,
    /// The event that caused this one.
    #[serde(default)]
    pub causation_id: Option<String>,
    /// When it was appended, UTC.
    pub occurred_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The payload as a JSON object. Stored payloads are objects (the table
    /// checks it, the stream decoder too), so this fails only on an event
    /// built by hand.
    pub fn payload_object(&self) -> Result<serde_json::Map<String, serde_json::Value>, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }
}

impl PartialEq for StoredEvent {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.seq == other.seq
            && self.org_id == other.org_id
            && self.event_type == other.event_type
            && self.payload.get() == other.payload.get()
            && self.actor == other.actor
            && self.trace_id == other.trace_id
            && self.correlation_id == other.correlation_id
            && self.causation_id == other.causation_id
            && self.occurred_at == other.occurred_at
    }
}

/// A field of an event that breaks its rule; the message is safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidEventField {
    /// The field, as named in the envelope.
    pub field: &'static str,
    /// What is wrong, in words a client can act on.
    pub message: String,
}

impl InvalidEventField {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// A validated event type name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

impl EventType {
    /// Checks `name` against the naming rule.
    pub fn parse(name: &str) -> Result<Self, InvalidEventField> {
        Self::check(name).map(|()| Self(name.to_owned()))
    }

    /// The rule, without allocating: every stored event read back (a list
    /// page, the relay's batch, a stream entry) passes it.
    fn check(name: &str) -> Result<(), InvalidEventField> {
        if name.len() > MAX_TYPE_LEN {
            return Err(InvalidEventField::new("type", format!("must be at most {MAX_TYPE_LEN} characters")));
        }
        let well_formed =
            name.strip_prefix("xentri.").and_then(|rest| rest.rsplit_once('.')).is_some_and(|(words, version)| {
                let count = words.split('.').count();
                matches!(count, 2 | 3) && words.split('.').all(is_word) && is_version(version)
            });
        if well_formed {
            Ok(())
        } else {
            Err(InvalidEventField::new("type", "must look like xentri.{context}[.{entity}].{action}.v{N}, lower-case"))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[a-z][a-z0-9_]*`
fn is_word(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `v[1-9][0-9]*`
fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|n| n.starts_with(|c: char| matches!(c, '1'..='9')) && n.bytes().all(|b| b.is_ascii_digit()))
}

impl TryFrom<String> for EventType {
    type Error = InvalidEventField;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::check(&value).map(|()| Self(value))
    }
}

impl From<EventType> for String {
    fn from(value: EventType) -> Self {
        value.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A filter on event types, as the list route's `type` and dlq-tool's
/// `--type` take it: one type (`xentri.soul.updated.v1`), or every type under
/// a prefix of whole words followed by `*` (`xentri.soul.*`, `xentri.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// Exactly this type.
    Exact(EventType),
    /// Types starting with this prefix, which ends in a dot (`xentri.soul.`).
    Prefix(String),
}

impl TypeFilter {
    /// Parses a type or a prefix ending in `.*`; anything else is refused.
    pub fn parse(text: &str) -> Result<Self, InvalidEventField> {
        let refused =
            || InvalidEventField::new("type", "must be an event type or a prefix ending in .* (xentri.soul.*)");
        let Some(prefix) = text.strip_suffix('*') else {
            return EventType::parse(text).map(Self::Exact).map_err(|_| refused());
        };
        // After `xentri.`: at most three whole words (context, entity,
        // action), each followed by its dot.
        let well_formed = prefix.strip_prefix("xentri.").is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_suffix('.')
                    .is_some_and(|words| words.split('.').count() <= 3 && words.split('.').all(is_word))
        });
        if well_formed { Ok(Self::Prefix(prefix.to_owned())) } else { Err(refused()) }
    }

    /// True when `event_type` passes the filter.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Exact(name) => name.as_str() == event_type,
            Self::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
        }
    }
}

/// Who caused an event: `user:<sub>` or `service:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Actor(String);

impl Actor {
    /// The actor for a user token's `sub`.
    pub fn user(sub: &str) -> Result<Self, InvalidEventField> {
        Self::parse(&format!("user:{sub}"))
    }

    /// The actor for a service's name.
    pub fn service(name: &str) -> Result<Self, InvalidEventField> {
        Self::parse(&format!("service:{name}"))
    }

    /// Checks `value` is `user:<sub>` or `service:<name>` with a printable,
    /// non-empty remainder of at most 255 bytes.
    pub fn parse(value: &str) -> Result<Self, InvalidEventField> {
        Self::check(value).map(|()| Self(value.to_owned()))
    }

    fn check(value: &str) -> Result<(), InvalidEventField> {
        let rest = value.strip_prefix("user:").or_else(|| value.strip_prefix("service:"));
        match rest {
            Some(rest) if !rest.is_empty() && rest.len() <= 255 && rest.chars().all(|c| c.is_ascii_graphic()) => Ok(()),
            _ => Err(InvalidEventField::new("actor", "must be user:<sub> or service:<name>")),
        }
    }

    /// The actor as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Actor {
    type Error = InvalidEventField;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::check(&value).map(|()| Self(value))
    }
}

impl From<Actor> for String {
    fn from(value: Actor) -> Self {
        value.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a correlation or causation id: 1 to 128 characters of
/// `A-Z a-z 0-9 . _ : -`.
pub fn validate_id(field: &'static str, value: &str) -> Result<(), InvalidEventField> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidEventField::new(
            field,
            format!("must be 1-{MAX_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_', ':', '-'"),
        ))
    }
}

/// Checks a W3C trace id: 32 lower-case hex digits, not all zero.
pub fn is_trace_id(value: &str) -> bool {
    value.len() == 32
        && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && value.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_filters_are_a_type_or_a_prefix_of_whole_words() {
        let prefix = |p: &str| Ok(TypeFilter::Prefix(p.to_owned()));
        assert_eq!(TypeFilter::parse("xentri.soul.*"), prefix("xentri.soul."));
        assert_eq!(TypeFilter::parse("xentri.*"), prefix("xentri."));
        assert_eq!(TypeFilter::parse("xentri.finance.invoice.created.*"), prefix("xentri.finance.invoice.created."));
        let exact = TypeFilter::parse("xentri.soul.updated.v1");
        assert_eq!(exact, EventType::parse("xentri.soul.updated.v1").map(TypeFilter::Exact));
        let refusal = TypeFilter::parse("xentri.soul").map_err(|e| e.message);
        assert_eq!(refusal, Err("must be an event type or a prefix ending in .* (xentri.soul.*)".to_owned()));
        for refused in
            ["*", "xentri.soul*", "other.*", "xentri.So%.*", "xentri.soul", "xentri..*", "xentri.a.b.c.d.*", "nothing"]
        {
            assert!(TypeFilter::parse(refused).is_err(), "{refused} should be refused");
        }
        let soul = TypeFilter::parse("xentri.soul.*").expect("a prefix");
        assert!(soul.matches("xentri.soul.updated.v1"));
        assert!(!soul.matches("xentri.soulmate.updated.v1"));
        assert!(exact.is_ok_and(|f| f.matches("xentri.soul.updated.v1") && !f.matches("xentri.soul.updated.v2")));
    }

    #[test]
    fn valid_type_names() {
        for name in [
            "xentri.soul.updated.v1",
            "xentri.finance.invoice.created.v1",
            "xentri.website.published.v12",
            "xentri.lead_scoring.lead.rescored.v2",
        ] {
            assert!(EventType::parse(name).is_ok(), "{name} should be valid");
        }
    }

    #[test]
    fn invalid_type_names() {
        for name in [
            "",
            "xentri",
            "xentri.soul.v1",
            "xentri.soul.updated",
            "xentri.soul.updated.v0",
            "xentri.soul.updated.v01",
            "xentri.soul.updated.V1",
            "xentri.Soul.updated.v1",
            "xentri.soulUpdated.updated.v1",
            "other.soul.updated.v1",
            "xentri.a.b.c.updated.v1",
            "xentri..updated.v1",
            "xentri.soul.updated.v1.",
            "xentri.1soul.updated.v1",
            "xentri.soul-x.updated.v1",
            " xentri.soul.updated.v1",
        ] {
            assert!(EventType::parse(name).is_err(), "{name:?} should be invalid");
        }
        let long = format!("xentri.{}.updated.v1", "a".repeat(300));
        assert!(EventType::parse(&long).is_err());
    }

    #[test]
    fn actors() {
        assert_eq!(Actor::user("user_2abc").map(|a| a.to_string()), Ok("user:user_2abc".to_owned()));
        assert!(Actor::service("billing").is_ok());
        assert!(Actor::parse("user:").is_err());
        assert!(Actor::parse("admin:x").is_err());
        assert!(Actor::parse("user:a b").is_err());
    }

    #[test]
    fn ids_and_trace_ids() {
        assert!(validate_id("correlation_id", "order-42:step_1.a").is_ok());
        assert!(validate_id("correlation_id", "").is_err());
        assert!(validate_id("correlation_id", "a/b").is_err());
        assert!(validate_id("correlation_id", &"a".repeat(129)).is_err());
        assert!(is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!is_trace_id("00000000000000000000000000000000"));
        assert!(!is_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736"));
    }
}
