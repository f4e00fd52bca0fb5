//! A fresh read batch of a Postgres-store group, handled in one transaction.
//!
//! One transaction per entry costs one commit (one WAL flush) per entry, and
//! that is the ceiling of a Postgres-store group: about as many entries per
//! second as the server commits transactions. Here the entries of a read batch
//! share one transaction: their processed records in one statement, then each
//! handler in turn, then one commit. The guarantee does not change — an
//! entry's effect and its processed record commit together, and it is acked
//! only after the commit.
//!
//! The first failure rolls the whole transaction back and every entry goes the
//! careful way, one transaction each ([`super::process::process`]): the entry
//! that failed continues with its second attempt (or goes to the DLQ), the
//! others start over. A handler may take the entries of one org together
//! ([`crate::handler::PostgresStoreHandler::handle_org_batch`]); a failure
//! there is no one entry's, so every entry starts over. Entries are handled in
//! (org, type, seq) order, and processed records are written in event-id
//! order, so that batches running at once (in this lane or in another worker)
//! take row locks in one order and do not deadlock on the rows handlers share.

use std::collections::HashSet;
use std::time::Instant;

use tracing::Instrument;
use uuid::Uuid;
use xentri_core::stream::{StreamEntry, field};
use xentri_core::{StoredEvent, sql};

use super::lane::Lane;
use super::process::{EventClaim, ack};
use crate::handler::{HandlerError, OrgBatch, PgDelivery, PostgresStoreHandler};

/// What became of one entry of the batch.
pub enum Handled {
    /// Committed (or found already processed) and queued for its ack.
    Done,
    /// Not handled here: it goes through [`super::process::process`], after
    /// `earlier`, the failure of its attempt in the batch, if it had one.
    Individually(Option<HandlerError>),
}

/// Why the batch's transaction did not commit.
struct Failure {
    /// The position (in handling order) of the entry whose handler failed;
    /// `None` when the transaction itself failed.
    at: Option<usize>,
    error: HandlerError,
}

/// Handles `entries` (a fresh read batch of a Postgres-store group) in one
/// transaction where it can; the answer says, entry by entry, what is left to
/// do.
pub async fn handle(lane: &Lane, handler: &dyn PostgresStoreHandler, entries: &[StreamEntry]) -> Vec<Handled> {
    let mut results: Vec<Handled> = entries.iter().map(|_| Handled::Individually(None)).collect();
    // Only entries the handler takes; the rest (malformed, not ours, not its
    // type) are quick to settle one by one.
    let mut taken: Vec<(usize, StoredEvent)> = entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.get(field::TARGET_GROUP).is_none_or(|target| target == lane.group))
        .filter_map(|(i, entry)| entry.decode().ok().map(|event| (i, event)))
        .filter(|(_, event)| lane.handler.accepts(event.event_type.as_str()))
        .collect();
    if taken.len() < 2 {
        return results;
    }
    // An event this lane is already handling (a duplicate entry) is settled
    // one by one, after the delivery that holds it.
    let mut claims = Vec::with_capacity(taken.len());
    taken.retain(|(_, event)| match EventClaim::take(lane, event.id) {
        Some(claim) => {
            claims.push(claim);
            true
        }
        None => false,
    });
    taken.sort_by(|(_, a), (_, b)| {
        (a.org_id, a.event_type.as_str(), a.seq).cmp(&(b.org_id, b.event_type.as_str(), b.seq))
    });

    let outcome = {
        let _active = lane.active.acquire().await;
        transaction(lane, handler, entries, &taken).await
    };
    match outcome {
        Ok(recorded) => {
            crate::pause::reached("entry.handled").await;
            if let Ok(mut recent) = lane.recently_done.lock() {
                for id in &recorded {
                    recent.insert(*id);
                }
            }
            drop(claims);
            for (i, event) in &taken {
                let entry = &entries[*i];
                ack(lane, &entry.id, None).await;
                if recorded.contains(&event.id) {
                    lane.metrics.acked(&entry.id, 1);
                } else {
                    lane.metrics.skipped(&entry.id, "already processed");
                }
                results[*i] = Handled::Done;
            }
        }
        Err(Failure { at, error }) => {
            drop(claims);
            tracing::warn!(
                group = %lane.group, stream = %lane.stream, entries = taken.len(), error = format!("{error:#}"),
                "batch transaction rolled back; its entries are handled one by one"
            );
            // When the transaction itself failed, no entry had an attempt.
            if let Some((i, _)) = at.and_then(|at| taken.get(at)) {
                results[*i] = Handled::Individually(Some(error));
            }
        }
    }
    results
}

/// The batch's transaction: the processed records of `taken` (the ones not
/// yet recorded come back), then their handlers, then the commit.
async fn transaction(
    lane: &Lane,
    handler: &dyn PostgresStoreHandler,
    entries: &[StreamEntry],
    taken: &[(usize, StoredEvent)],
) -> Result<HashSet<Uuid>, Failure> {
    let failed = |e: sqlx::Error| Failure { at: None, error: HandlerError::Transient(e.into()) };
    let mut tx = xentri_core::db::begin_as(&lane.shared.db, xentri_core::roles::WORKER, None).await.map_err(failed)?;
    let mut ids: Vec<Uuid> = taken.iter().map(|(_, event)| event.id).collect();
    ids.sort_unstable();
    // Concurrent deliveries of one event wait here for each other; the second
    // finds the first's record and skips.
    let recorded: HashSet<Uuid> = sqlx::query_scalar(sql::RECORD_PROCESSED_BATCH)
        .bind(&lane.group)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed)?
        .into_iter()
        .collect();
    let handled: Vec<(usize, &(usize, StoredEvent))> =
        taken.iter().enumerate().filter(|(_, (_, event))| recorded.contains(&event.id)).collect();
    // Sorted by org: one run of entries per org, under its `app.org_id`.
    for run in handled.chunk_by(|(_, (_, a)), (_, (_, b))| a.org_id == b.org_id) {
        let org = run[0].1.1.org_id;
        xentri_core::db::switch_org(&mut tx, org).await.map_err(failed)?;
        let events: Vec<&StoredEvent> = run.iter().map(|(_, (_, event))| event).collect();
        let started = Instant::now();
        if let Some(together) = handler.handle_org_batch(OrgBatch { events: &events, tx: &mut tx }) {
            let span = tracing::info_span!(
                "handle_batch", group = %lane.group, stream = %lane.stream, org_id = %org, events = events.len()
            );
            let result = together.instrument(span).await;
            let each = started.elapsed() / events.len().max(1) as u32;
            for _ in &events {
                lane.metrics.handler_ran(each);
            }
            // Not one entry's fault: none of them had an attempt.
            result.map_err(|error| Failure { at: None, error })?;
            continue;
        }
        for (at, (i, event)) in run {
            let entry = &entries[*i];
            let span = tracing::info_span!(
                "handle", group = %lane.group, stream = %lane.stream, entry_id = %entry.id, event_id = %event.id,
                trace_id = %event.trace_id, org_id = %event.org_id, deliveries = 1
            );
            let delivery = PgDelivery { event, stream: &lane.stream, entry_id: &entry.id, attempt: 1, tx: &mut tx };
            let started = Instant::now();
            let result = handler.handle(delivery).instrument(span).await;
            lane.metrics.handler_ran(started.elapsed());
            result.map_err(|error| Failure { at: Some(*at), error })?;
        }
    }
    tx.commit().await.map_err(failed)?;
    Ok(recorded)
}
