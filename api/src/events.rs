//! The event store: append (event, outbox row and idempotency key, one
//! statement) and the reads.
//!
//! A fetch by id takes an [`OrgTx`], so row-level security scopes it to one
//! org; the list and the appends call database functions that scope
//! themselves the same way (the appends through the [`Appender`]).

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;
use xentri_core::store::{Position, TxId};
use xentri_core::{NewEvent, StoredEvent};

use crate::appender::{AppendItem, Appender};
use crate::db::{Db, OrgTx};
use crate::idempotency::IdempotencyKey;
use crate::problem::ApiError;
use xentri_core::store::AppendOutcome;

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

/// Appends `event`, its outbox row and its idempotency key, with the next
/// batch of the [`Appender`]: the `append_events` database function sets the
/// api's role and the event's org transaction-locally, takes the key's lock,
/// and writes all three rows only if the key is new or expired.
pub async fn append(
    appender: &Appender,
    event: &NewEvent,
    key: &IdempotencyKey,
    request_hash: &[u8],
) -> Result<Appended, ApiError> {
    let item = AppendItem { event: event.clone(), key: key.as_str().to_owned(), request_hash: request_hash.to_vec() };
    Ok(match appender.append(item).await? {
        AppendOutcome::KeyInFlight => Appended::KeyInFlight,
        AppendOutcome::KeyAnswered => Appended::KeyAnswered,
        AppendOutcome::Appended(seq) => Appended::Created(event.clone().stored(seq)),
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
