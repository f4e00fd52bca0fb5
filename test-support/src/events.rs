//! Event fixtures: a [`NewEvent`] or [`StoredEvent`] with sensible defaults,
//! changed field by field where a test cares.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;
use xentri_core::{Actor, EventType, NewEvent, StoredEvent};

/// An event to build: a new org, `xentri.soul.updated.v1` by `user:user_1`,
/// payload `{"n": <seq>}`, seq 1, correlation id `corr-1`, a fixed trace id,
/// no causation id, occurred now (to the microsecond, as PostgreSQL keeps it).
#[derive(Debug, Clone)]
pub struct EventFixture {
    id: Uuid,
    seq: i64,
    org_id: Uuid,
    event_type: String,
    payload: Option<serde_json::Value>,
    actor: String,
    trace_id: String,
    correlation_id: String,
    causation_id: Option<String>,
    occurred_at: DateTime<Utc>,
}

impl Default for EventFixture {
    fn default() -> Self {
        Self {
            id: Uuid::now_v7(),
            seq: 1,
            org_id: Uuid::new_v4(),
            event_type: "xentri.soul.updated.v1".to_owned(),
            payload: None,
            actor: "user:user_1".to_owned(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            correlation_id: "corr-1".to_owned(),
            causation_id: None,
            occurred_at: Utc::now().trunc_subsecs(6),
        }
    }
}

/// A stored event of `org` with `seq`, the other fields as [`EventFixture`]'s.
pub fn stored_event(org: Uuid, seq: i64) -> StoredEvent {
    EventFixture::default().org(org).seq(seq).stored()
}

impl EventFixture {
    /// The event's id (a fresh UUID v7 unless set).
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// Its seq (a stored event's position in the log).
    pub fn seq(mut self, seq: i64) -> Self {
        self.seq = seq;
        self
    }

    /// Its org.
    pub fn org(mut self, org_id: Uuid) -> Self {
        self.org_id = org_id;
        self
    }

    /// Its type; panics unless it is a valid type name.
    pub fn event_type(mut self, event_type: &str) -> Self {
        self.event_type = event_type.to_owned();
        self
    }

    /// Its payload (a JSON object).
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Its actor (`user:<sub>` or `service:<name>`).
    pub fn actor(mut self, actor: &str) -> Self {
        self.actor = actor.to_owned();
        self
    }

    /// Its correlation id.
    pub fn correlation_id(mut self, correlation_id: &str) -> Self {
        self.correlation_id = correlation_id.to_owned();
        self
    }

    /// Its causation id.
    pub fn causation_id(mut self, causation_id: &str) -> Self {
        self.causation_id = Some(causation_id.to_owned());
        self
    }

    /// When it occurred.
    pub fn occurred_at(mut self, occurred_at: DateTime<Utc>) -> Self {
        self.occurred_at = occurred_at;
        self
    }

    /// The event as a client appends it.
    pub fn new_event(self) -> NewEvent {
        let payload = self.payload.unwrap_or_else(|| serde_json::json!({ "n": self.seq }));
        NewEvent {
            id: self.id,
            org_id: self.org_id,
            event_type: EventType::parse(&self.event_type).expect("a valid event type"),
            payload: serde_json::value::to_raw_value(&payload).expect("a JSON payload"),
            actor: Actor::parse(&self.actor).expect("a valid actor"),
            trace_id: self.trace_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            occurred_at: self.occurred_at,
        }
    }

    /// The event as stored, with its seq.
    pub fn stored(self) -> StoredEvent {
        let seq = self.seq;
        self.new_event().stored(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_encodes_and_decodes_as_a_stream_entry() {
        let event = EventFixture::default().seq(9).correlation_id("c-9").causation_id("cause").stored();
        let fields = xentri_core::stream::encode(&event).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let entry = xentri_core::stream::StreamEntry { id: "1-1".to_owned(), fields };
        assert_eq!(entry.decode().unwrap(), event);
        assert_eq!(event.payload.get(), r#"{"n":9}"#);
    }

    #[test]
    fn every_field_can_be_set() {
        let org = Uuid::new_v4();
        let event =
            EventFixture::default().org(org).event_type("xentri.finance.invoice.created.v1").actor("service:billing");
        let event = event.payload(serde_json::json!({})).new_event();
        assert_eq!(event.org_id, org);
        assert_eq!(event.event_type.as_str(), "xentri.finance.invoice.created.v1");
        assert_eq!(event.actor.as_str(), "service:billing");
        assert_eq!(event.payload.get(), "{}");
    }
}
