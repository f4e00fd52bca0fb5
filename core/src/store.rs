//! The event store's vocabulary on the PostgreSQL side: where a reader is in
//! the log ([`Position`], its opaque cursor) and how a batch of appends is
//! passed to `append_events` (one array of the `new_event` composite type).
//!
//! **Invariant (the ordering rule):** readers page through events by
//! [`Position`] — the writing transaction's id, then `seq` — and only through
//! rows below the commit horizon (`pg_snapshot_xmin(pg_current_snapshot())`).
//! Every transaction that has not ended has an id at or above the horizon, so
//! whatever commits later sorts after every position already handed out.
//! Writers therefore take no lock, row or sequence in turn; see the
//! `system_events` migration.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use uuid::Uuid;

/// A PostgreSQL `xid8`: a transaction id with its epoch, which never wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TxId(pub u64);

/// `xid8`'s type oid, fixed since PostgreSQL 13.
const XID8_OID: u32 = 5069;

impl Type<Postgres> for TxId {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(XID8_OID))
    }
}

impl<'r> Decode<'r, Postgres> for TxId {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let bytes: [u8; 8] = value.as_bytes()?.try_into().map_err(|_| "xid8: expected 8 bytes")?;
                Ok(Self(u64::from_be_bytes(bytes)))
            }
            PgValueFormat::Text => Ok(Self(value.as_str()?.parse()?)),
        }
    }
}

impl Encode<'_, Postgres> for TxId {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&self.0.to_be_bytes());
        Ok(IsNull::No)
    }
}

/// Where a reader is in an org's events: the last event it was given.
/// Positions order as PostgreSQL orders `(tx_id, seq)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The writing transaction of the event.
    pub tx_id: TxId,
    /// The event's `seq`.
    pub seq: i64,
}

/// A cursor that is not one the api handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor returned as next")]
pub struct InvalidCursor;

impl Position {
    /// The opaque cursor clients pass back as `after`.
    pub fn cursor(&self) -> String {
        self.to_string()
    }

    /// Reads a cursor made by [`Position::cursor`].
    pub fn parse_cursor(cursor: &str) -> Result<Self, InvalidCursor> {
        let (tx_id, seq) = cursor.split_once('-').ok_or(InvalidCursor)?;
        let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(tx_id) || !digits(seq) {
            return Err(InvalidCursor);
        }
        let tx_id = tx_id.parse().map_err(|_| InvalidCursor)?;
        let seq = seq.parse().map_err(|_| InvalidCursor)?;
        Ok(Self { tx_id: TxId(tx_id), seq })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.tx_id.0, self.seq)
    }
}

/// One item of an `append_events` call: the event to append, and the
/// idempotency key that guards it (both `None`: no key). The fields are the
/// `new_event` composite type's, in its order.
#[derive(Debug, Clone, sqlx::Encode)]
pub struct NewEventRecord<'a> {
    /// The event's org.
    pub org_id: Uuid,
    /// The idempotency key.
    pub idempotency_key: Option<&'a str>,
    /// The request's hash, stored with the key.
    pub request_hash: Option<&'a [u8]>,
    /// The event's id.
    pub id: Uuid,
    /// The type name.
    pub event_type: &'a str,
    /// The payload, a serialised JSON object.
    pub payload: &'a str,
    /// The actor.
    pub actor: &'a str,
    /// The trace id.
    pub trace_id: &'a str,
    /// The correlation id.
    pub correlation_id: &'a str,
    /// The causation id.
    pub causation_id: Option<&'a str>,
    /// When it occurred.
    pub occurred_at: DateTime<Utc>,
}

impl Type<Postgres> for NewEventRecord<'_> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("new_event")
    }
}

impl PgHasArrayType for NewEventRecord<'_> {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("_new_event")
    }
}

/// What `append_events` did with one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored, at this `seq`.
    Appended(i64),
    /// Another transaction holds the item's idempotency key.
    KeyInFlight,
    /// The key already has a live answer.
    KeyAnswered,
}

/// Appends `items` with one call of `append_events`, in the connection's
/// current transaction (or the statement's own). `role` is the role the rows
/// are written as, `stream` the stream their outbox rows aim at. Returns one
/// outcome per item, in order.
pub async fn append_events(
    conn: &mut sqlx::PgConnection,
    role: &str,
    stream: &str,
    key_ttl_secs: f64,
    items: &[NewEventRecord<'_>],
) -> Result<Vec<AppendOutcome>, sqlx::Error> {
    let rows: Vec<(i32, bool, Option<i64>)> = sqlx::query_as(crate::sql::APPEND_EVENTS)
        .bind(role)
        .bind(stream)
        .bind(key_ttl_secs)
        .bind(items)
        .fetch_all(conn)
        .await?;
    let mut outcomes = vec![None; items.len()];
    for (item, claimed, seq) in rows {
        let slot = usize::try_from(item).ok().and_then(|i| i.checked_sub(1)).and_then(|i| outcomes.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(match (claimed, seq) {
                (false, _) => AppendOutcome::KeyInFlight,
                (true, None) => AppendOutcome::KeyAnswered,
                (true, Some(seq)) => AppendOutcome::Appended(seq),
            });
        }
    }
    outcomes
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| sqlx::Error::Protocol("append_events left an item unanswered".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_order_as_positions() {
        let a = Position { tx_id: TxId(1_000), seq: 42 };
        let b = Position { tx_id: TxId(1_000), seq: 43 };
        let c = Position { tx_id: TxId(1_001), seq: 7 };
        assert!(a < b && b < c, "ordered by transaction, then seq");
        for p in [a, b, c, Position { tx_id: TxId(u64::MAX), seq: i64::MAX }] {
            assert_eq!(Position::parse_cursor(&p.cursor()), Ok(p));
        }
    }

    #[test]
    fn anything_else_is_not_a_cursor() {
        for bad in ["", "42", "-", "1-", "-1", "1-2-3", "a-1", "1-b", "+1-2", "1- 2", "99999999999999999999999-1"] {
            assert_eq!(Position::parse_cursor(bad), Err(InvalidCursor), "{bad:?}");
        }
    }
}
