//! A fresh read batch of a Postgres-store group, handled in one transaction.
//!
//! One transaction per entry costs one commit (one WAL flush) per entry, and
//! that is the ceiling of a Postgres-store group: about as many entries per
//! second as the server commits transactions. Here the entries of a read batch
//! share one transaction: their processed records in one statement (the
//! de-duplication decision for all of them, [`super::dedup::decide`]), then
//! each handler in turn, then one commit. The guarantee does not change — an
//! entry's effect and its processed record commit together, and it is acked
//! only after the commit.
//!
//! The first failure rolls the whole transaction back and every entry goes the
//! careful way, one transaction each ([`super::process::process`]): the entry
//! that failed continues with its second attempt (or goes to the DLQ), the
//! others start over. A handler may take the whole batch in one statement
//! ([`crate::handler::PostgresStoreHandler::handle_batch`]), which keeps the
//! transaction, and so the time it holds back the commit horizon the relay
//! publishes below, short; a failure there is no one entry's, so every entry
//! starts over. Otherwise each entry is handled under its org's `app.org_id`,
//! one org after the other. Entries are handled in
//! (org, type, seq) order, and processed records are written in event-id
//! order, so that batches running at once (in this lane or in another worker)
//! take row locks in one order and do not deadlock on the rows handlers share.

use std::time::Instant;

use tracing::Instrument;
use xentri_core::StoredEvent;
use xentri_core::stream::{StreamEntry, field};

use super::dedup::{self, Ask, Decision, Records, Standing};
use super::lane::Lane;
use super::process::ack;
use crate::handler::{Batch, HandlerError, PgDelivery, PostgresStoreHandler};

/// What became of one entry of the batch.
pub(super) enum Handled<'l> {
    /// Committed (or found already processed) and queued for its ack.
    Done,
    /// Not handled here: it goes through [`super::process::process`] with its
    /// `standing` (the claim the batch took on its event, if it did), after
    /// `earlier`, the failure of its attempt in the batch, if it had one.
    Individually {
        /// The failure of its attempt in the batch.
        earlier: Option<HandlerError>,
        /// Its standing with the de-duplication layers.
        standing: Standing<'l>,
    },
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
pub(super) async fn handle<'l>(
    lane: &'l Lane,
    handler: &dyn PostgresStoreHandler,
    entries: &[StreamEntry],
) -> Vec<Handled<'l>> {
    let alone = || Handled::Individually { earlier: None, standing: Standing::new(None) };
    let mut results: Vec<Handled<'l>> = entries.iter().map(|_| alone()).collect();
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
    taken.sort_by(|(_, a), (_, b)| {
        (a.org_id, a.event_type.as_str(), a.seq).cmp(&(b.org_id, b.event_type.as_str(), b.seq))
    });
    let mut standings: Vec<Standing<'l>> = taken.iter().map(|_| Standing::new(None)).collect();

    let outcome = {
        let slot = lane.slots.acquire().await;
        transaction(lane, handler, entries, &taken, &mut standings, slot.number()).await
    };
    match outcome {
        Ok(decisions) => {
            crate::pause::reached("entry.handled").await;
            for (((i, event), standing), decision) in taken.iter().zip(standings).zip(decisions) {
                let entry = &entries[*i];
                match decision {
                    Decision::Handle => {
                        let record = standing.handled(lane, event);
                        ack(lane, &entry.id, record).await;
                        lane.metrics.acked(&entry.id, 1);
                    }
                    Decision::AckDuplicate(duplicate) => {
                        ack(lane, &entry.id, duplicate.record_again()).await;
                        lane.metrics.skipped(&entry.id, "already processed");
                    }
                    // Another delivery of its event is being handled by this
                    // lane: settled one by one, after that one.
                    Decision::WaitForHolder => continue,
                }
                results[*i] = Handled::Done;
            }
        }
        Err(Failure { at, error }) => {
            tracing::warn!(
                group = %lane.group, stream = %lane.stream, entries = taken.len(), error = format!("{error:#}"),
                "batch transaction rolled back; its entries are handled one by one"
            );
            // When the transaction itself failed, no entry had an attempt.
            let mut error = Some(error);
            for (position, ((i, _), standing)) in taken.iter().zip(standings).enumerate() {
                let earlier = if at == Some(position) { error.take() } else { None };
                results[*i] = Handled::Individually { earlier, standing };
            }
        }
    }
    results
}

/// The batch's transaction: the de-duplication decision of `taken` (their
/// processed records written), then the handlers of those to handle, then
/// the commit. Answers the decisions, in the order of `taken`.
async fn transaction<'l>(
    lane: &'l Lane,
    handler: &dyn PostgresStoreHandler,
    entries: &[StreamEntry],
    taken: &[(usize, StoredEvent)],
    standings: &mut [Standing<'l>],
    slot: u16,
) -> Result<Vec<Decision>, Failure> {
    let failed = |e: sqlx::Error| Failure { at: None, error: HandlerError::Transient(e.into()) };
    let mut tx = xentri_core::db::begin_as(&lane.shared.db, xentri_core::roles::WORKER, None).await.map_err(failed)?;
    let mut asks: Vec<Ask<'_, 'l>> =
        taken.iter().zip(standings.iter_mut()).map(|((_, event), standing)| Ask { event, standing }).collect();
    let decisions = dedup::decide(lane, &mut asks, Records::Postgres(&mut tx)).await.map_err(failed)?;
    let handled: Vec<(usize, &(usize, StoredEvent))> = taken
        .iter()
        .enumerate()
        .zip(&decisions)
        .filter(|(_, decision)| **decision == Decision::Handle)
        .map(|(taken, _)| taken)
        .collect();
    let events: Vec<&StoredEvent> = handled.iter().map(|(_, (_, event))| event).collect();
    let started = Instant::now();
    if let Some(together) = handler.handle_batch(Batch { events: &events, slot, tx: &mut tx }) {
        let span =
            tracing::info_span!("handle_batch", group = %lane.group, stream = %lane.stream, events = events.len());
        let result = together.instrument(span).await;
        let each = started.elapsed() / events.len().max(1) as u32;
        for _ in &events {
            lane.metrics.handler_ran(each);
        }
        // Not one entry's fault: none of them had an attempt.
        result.map_err(|error| Failure { at: None, error })?;
    } else {
        // Sorted by org: one run of entries per org, under its `app.org_id`.
        for run in handled.chunk_by(|(_, (_, a)), (_, (_, b))| a.org_id == b.org_id) {
            xentri_core::db::switch_org(&mut tx, run[0].1.1.org_id).await.map_err(failed)?;
            for (at, (i, event)) in run {
                let entry = &entries[*i];
                let span = tracing::info_span!(
                    "handle", group = %lane.group, stream = %lane.stream, entry_id = %entry.id, event_id = %event.id,
                    trace_id = %event.trace_id, org_id = %event.org_id, deliveries = 1
                );
                let delivery =
                    PgDelivery { event, stream: &lane.stream, entry_id: &entry.id, attempt: 1, slot, tx: &mut tx };
                let started = Instant::now();
                let result = handler.handle(delivery).instrument(span).await;
                lane.metrics.handler_ran(started.elapsed());
                result.map_err(|error| Failure { at: Some(*at), error })?;
            }
        }
    }
    tx.commit().await.map_err(failed)?;
    Ok(decisions)
}
