//! The event store: append (event, outbox row and idempotency key, one
//! statement) and the reads.
//!
//! A fetch by id takes an [`OrgTx`], so row-level security scopes it to one
//! org; the list and the appends call database functions that scope
//! themselves the same way (the appends through the [`Appender`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::FromRow;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;
use xentri_core::EventEnvelope;
use xentri_core::store::{Position, TxId};
use xentri_core::stream::FlatEvent;

use crate::appender::{AppendItem, Appender};
use crate::db::{Db, OrgTx};
use crate::idempotency::IdempotencyKey;
use crate::problem::ApiError;
use xentri_core::store::AppendOutcome;

/// An event as stored and as every route answers it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct StoredEvent {
    /// UUID v7.
    pub id: Uuid,
    /// Global position.
    pub seq: i64,
    /// The org.
    pub org_id: Uuid,
    /// `xentri.{context}[.{entity}].{action}.v{N}`
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    #[schema(rename = "type", example = "xentri.soul.updated.v1")]
    pub event_type: String,
    /// A JSON object, as stored.
    #[schema(value_type = Object)]
    pub payload: Json<Box<RawValue>>,
    /// `user:<sub>` or `service:<name>`.
    #[schema(example = "user:user_2abc")]
    pub actor: String,
    /// W3C trace id of the request that appended it.
    pub trace_id: String,
    /// Groups the events of one business operation.
    pub correlation_id: String,
    /// The event that caused this one.
    pub causation_id: Option<String>,
    /// When it was appended, UTC.
    pub occurred_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, seq, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at";

/// What [`append`] did.
#[derive(Debug)]
pub enum Appended {
    /// Stored; the envelope as stored.
    Created(StoredEvent),
    /// Another request with the same idempotency key is still in flight.
    KeyInFlight,
    /// The key already has a live answer (see [`crate::idempotency::stored`]).
    KeyAnswered,
}

/// Appends `event` (its `seq` is assigned here), its outbox row and its
/// idempotency key, with the next batch of the [`Appender`]: the
/// `append_event` database function sets the api's role and the event's org
/// transaction-locally, takes the key's lock, and writes all three rows only
/// if the key is new or expired.
pub async fn append(
    appender: &Appender,
    event: &EventEnvelope,
    key: &IdempotencyKey,
    request_hash: &[u8],
) -> Result<Appended, ApiError> {
    // Serialised once: the text stored is the text answered.
    let payload = serde_json::value::to_raw_value(&event.payload).map_err(|e| ApiError::Internal(e.into()))?;
    let item = AppendItem {
        event: FlatEvent {
            id: event.id,
            seq: 0,
            org_id: event.org_id,
            event_type: event.event_type.as_str().to_owned(),
            payload: payload.get().to_owned(),
            actor: event.actor.as_str().to_owned(),
            trace_id: event.trace_id.clone(),
            correlation_id: event.correlation_id.clone(),
            causation_id: event.causation_id.clone(),
            occurred_at: event.occurred_at,
        },
        key: key.as_str().to_owned(),
        request_hash: request_hash.to_vec(),
    };
    Ok(match appender.append(item).await? {
        AppendOutcome::KeyInFlight => Appended::KeyInFlight,
        AppendOutcome::KeyAnswered => Appended::KeyAnswered,
        AppendOutcome::Appended(seq) => Appended::Created(StoredEvent {
            id: event.id,
            seq,
            org_id: event.org_id,
            event_type: event.event_type.as_str().to_owned(),
            payload: Json(payload),
            actor: event.actor.as_str().to_owned(),
            trace_id: event.trace_id.clone(),
            correlation_id: event.correlation_id.clone(),
            causation_id: event.causation_id.clone(),
            occurred_at: event.occurred_at,
        }),
    })
}

/// One event by id, if this org has it.
pub async fn get(tx: &mut OrgTx, id: Uuid) -> Result<Option<StoredEvent>, sqlx::Error> {
    sqlx::query_as::<_, StoredEvent>(&format!("SELECT {COLUMNS} FROM system_events WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// A type filter: one name, or every name under a prefix (`xentri.soul.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// Exactly this type.
    Exact(String),
    /// Types starting with this prefix, which ends in a dot.
    Prefix(String),
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only events after this position (the previous page's last).
    pub after: Option<Position>,
    /// At most this many.
    pub limit: i64,
    /// By type.
    pub event_type: Option<TypeFilter>,
    /// By correlation id.
    pub correlation_id: Option<String>,
    /// `occurred_at >= since`.
    pub since: Option<DateTime<Utc>>,
    /// `occurred_at < until`.
    pub until: Option<DateTime<Utc>>,
}

/// An event of a list, with its position for the next page's cursor.
#[derive(Debug, Clone, FromRow)]
pub struct Listed {
    /// The event.
    #[sqlx(flatten)]
    pub event: StoredEvent,
    /// Its writing transaction: with `seq`, its position.
    pub tx_id: TxId,
}

impl Listed {
    /// Where a reader that was given this event is.
    pub fn position(&self) -> Position {
        Position { tx_id: self.tx_id, seq: self.event.seq }
    }
}

/// The org's events in position order (writing transaction, then `seq`),
/// below the commit horizon: an event that commits later sorts after every
/// position returned now (see [`xentri_core::store`]). Fetches one more than
/// asked, to tell whether more are available. One round trip: the
/// `list_events` database function scopes itself to the api's role and the
/// org, as [`Db::begin`] does.
pub async fn list(db: &Db, org_id: Uuid, query: &ListQuery) -> Result<Vec<Listed>, sqlx::Error> {
    let (exact, like) = match &query.event_type {
        Some(TypeFilter::Exact(name)) => (Some(name.as_str()), None),
        Some(TypeFilter::Prefix(prefix)) => (None, Some(format!("{}%", escape_like(prefix)))),
        None => (None, None),
    };
    let (pool, role) = db.scoped();
    sqlx::query_as::<_, Listed>(&format!(
        "SELECT {COLUMNS}, tx_id FROM list_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(role)
    .bind(org_id)
    .bind(query.after.map(|p| p.tx_id))
    .bind(query.after.map(|p| p.seq))
    .bind(i32::try_from(query.limit + 1).unwrap_or(i32::MAX))
    .bind(exact)
    .bind(like)
    .bind(query.correlation_id.as_deref())
    .bind(query.since)
    .bind(query.until)
    .fetch_all(pool)
    .await
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
