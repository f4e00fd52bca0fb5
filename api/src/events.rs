//! The event store: append (event, outbox row and idempotency key, one
//! statement) and the reads.
//!
//! The reads take an [`OrgTx`], so row-level security scopes them to one org;
//! appends go through the [`Appender`], whose database function scopes each
//! one the same way.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, QueryBuilder};
use utoipa::ToSchema;
use uuid::Uuid;
use xentri_core::EventEnvelope;

use crate::appender::{AppendItem, Appender, Outcome};
use crate::db::OrgTx;
use crate::idempotency::IdempotencyKey;
use crate::problem::ApiError;

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
    let payload = serde_json::to_string(&event.payload).map_err(|e| ApiError::Internal(e.into()))?;
    let item = AppendItem {
        org_id: event.org_id,
        key: key.as_str().to_owned(),
        request_hash: request_hash.to_vec(),
        id: event.id,
        event_type: event.event_type.as_str().to_owned(),
        payload,
        actor: event.actor.as_str().to_owned(),
        trace_id: event.trace_id.clone(),
        correlation_id: event.correlation_id.clone(),
        causation_id: event.causation_id.clone(),
        occurred_at: event.occurred_at,
    };
    Ok(match appender.append(item.clone()).await? {
        Outcome::KeyInFlight => Appended::KeyInFlight,
        Outcome::KeyAnswered => Appended::KeyAnswered,
        Outcome::Created(seq) => Appended::Created(StoredEvent {
            id: item.id,
            seq,
            org_id: item.org_id,
            event_type: item.event_type,
            payload: Json(RawValue::from_string(item.payload).map_err(|e| ApiError::Internal(e.into()))?),
            actor: item.actor,
            trace_id: item.trace_id,
            correlation_id: item.correlation_id,
            causation_id: item.causation_id,
            occurred_at: item.occurred_at,
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
    /// Only events after this `seq`.
    pub after: Option<i64>,
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

/// The org's events in `seq` order, below the commit horizon: rows whose
/// writing transaction is older than every transaction still running, so a
/// row that commits later can never have a lower `seq` than one returned now.
/// Fetches one more than asked, to tell whether more are available.
pub async fn list(tx: &mut OrgTx, org_id: Uuid, query: &ListQuery) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM system_events WHERE org_id = "));
    sql.push_bind(org_id);
    sql.push(" AND tx_id < pg_snapshot_xmin(pg_current_snapshot())");
    if let Some(after) = query.after {
        sql.push(" AND seq > ").push_bind(after);
    }
    match &query.event_type {
        Some(TypeFilter::Exact(name)) => {
            sql.push(" AND type = ").push_bind(name.clone());
        }
        Some(TypeFilter::Prefix(prefix)) => {
            sql.push(" AND type LIKE ").push_bind(format!("{}%", escape_like(prefix))).push(" ESCAPE '\\'");
        }
        None => {}
    }
    if let Some(correlation_id) = &query.correlation_id {
        sql.push(" AND correlation_id = ").push_bind(correlation_id.clone());
    }
    if let Some(since) = query.since {
        sql.push(" AND occurred_at >= ").push_bind(since);
    }
    if let Some(until) = query.until {
        sql.push(" AND occurred_at < ").push_bind(until);
    }
    sql.push(" ORDER BY seq LIMIT ").push_bind(query.limit + 1);
    sql.build_query_as::<StoredEvent>().fetch_all(&mut **tx).await
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
