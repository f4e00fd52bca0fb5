//! The event store: append (event, outbox row and idempotency key, one
//! statement) and the reads.
//!
//! A fetch by id takes an [`OrgTx`], so row-level security scopes it to one
//! org; the list and the appends call database functions that scope
//! themselves the same way (the appends through the [`Appender`]).

use uuid::Uuid;
use xentri_core::sql;
use xentri_core::{NewEvent, StoredEvent};

use crate::appender::{AppendItem, Appender};
use crate::db::{Db, OrgTx};
use crate::idempotency::IdempotencyKey;
use crate::problem::ApiError;
use crate::routes::events::request::ListQuery;
use xentri_core::store::AppendOutcome;

/// Appends `event`, its outbox row and its idempotency key, with the next
/// batch of the [`Appender`]: the `append_events` database function sets the
/// api's role and the event's org transaction-locally, takes the key's lock,
/// and writes all three rows only if the key is new or expired.
pub async fn append(
    appender: &Appender,
    event: &NewEvent,
    key: &IdempotencyKey,
    request_hash: &[u8],
) -> Result<AppendOutcome, ApiError> {
    let item = AppendItem { event: event.clone(), key: key.as_str().to_owned(), request_hash: request_hash.to_vec() };
    Ok(appender.append(item).await?)
}

/// One event by id, if this org has it.
pub async fn get(tx: &mut OrgTx, id: Uuid) -> Result<Option<StoredEvent>, sqlx::Error> {
    sqlx::query_as::<_, StoredEvent>(sql::EVENT_BY_ID).bind(id).fetch_optional(&mut **tx).await
}

/// One page of the org's events in position order (writing transaction,
/// then `seq`), below the commit horizon: an event that commits later sorts
/// after every position returned now (see [`xentri_core::store`]). Rendered
/// as the answer's JSON ([`crate::listing`]); fetches one more than the page,
/// to tell whether more are available.
pub async fn list(db: &Db, org_id: Uuid, query: &ListQuery) -> Result<Vec<u8>, ApiError> {
    let rows = db.list_events(org_id, query).await?;
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    Ok(crate::listing::render(&rows, limit, query.after)?)
}
