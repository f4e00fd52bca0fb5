//! What happens to one entry: decode, skip what is not ours, then attempts
//! with retries — each asks whether the event was handled already
//! ([`dedup::decide`]) and runs the handler when it was not — then ack or
//! dead-letter.

use std::time::Instant;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use xentri_core::StoredEvent;
use xentri_core::dlq::{DeadLetter, dead_letter_fields};
use xentri_core::stream::{StreamEntry, Undecodable, field};

use super::acker::Ack;
use super::dedup::{self, Ask, Decision, Duplicate, Records, Standing};
use super::lane::Lane;
use super::retry;
use crate::handler::{HandlerError, Handling, PgDelivery, PostgresStoreHandler, RedisDelivery};

/// What one attempt came to.
enum Tried {
    /// The handler ran and succeeded (and its transaction committed).
    Handled,
    /// The event was handled before: the handler did not run.
    Duplicate(Duplicate),
    /// Another delivery of the event is being handled by this lane; not an
    /// attempt.
    HolderBusy,
}

/// Processes one delivery of `entry`. Never panics on bad input; never loses
/// the entry: it ends acked, dead-lettered, or still pending. `standing` is
/// the delivery's standing with the de-duplication layers so far (what a read
/// batch's lookup found, the claim its batch took); `earlier` is the failure
/// of an attempt already made (in a batch's transaction), which counts as the
/// first.
pub(super) async fn process<'l>(
    lane: &'l Lane,
    entry: StreamEntry,
    deliveries: usize,
    standing: Standing<'l>,
    earlier: Option<HandlerError>,
    shutdown: &CancellationToken,
) {
    let (stream, group) = (lane.stream.as_str(), lane.group.as_str());
    let event = match entry.decode() {
        Ok(event) => event,
        Err(error) => {
            dead_letter(lane, &entry, 0, &format!("malformed entry: {error}"), None).await;
            return;
        }
    };
    if entry.get(field::TARGET_GROUP).is_some_and(|target| target != group) {
        ack(lane, &entry.id, None).await;
        lane.metrics.skipped(&entry.id, "targeted at another group");
        return;
    }
    if !lane.handler.accepts(event.event_type.as_str()) {
        ack(lane, &entry.id, None).await;
        lane.metrics.skipped(&entry.id, "type not handled");
        return;
    }
    let span = tracing::info_span!(
        "handle", group, stream, entry_id = %entry.id, event_id = %event.id,
        trace_id = %event.trace_id, org_id = %event.org_id, deliveries
    );
    // The span goes onto the future, never entered across an await: a guard
    // held while suspended would make whatever runs next on this thread a
    // child of this entry (wrong fields on its logs, and a chain of spans that
    // grows by one per entry until dropping it overflows the stack).
    handle(lane, &entry, &event, standing, earlier, shutdown).instrument(span).await;
}

/// Runs the group's handler for a decoded event of its type: attempts with
/// retries, each after the de-duplication decision, then ack or dead-letter.
async fn handle<'l>(
    lane: &'l Lane,
    entry: &StreamEntry,
    event: &StoredEvent,
    mut standing: Standing<'l>,
    earlier: Option<HandlerError>,
    shutdown: &CancellationToken,
) {
    let mut delays = retry::delays(&lane.shared.settings.worker.retry);
    let mut outage = retry::outage_delays();
    let mut attempt = u32::from(earlier.is_some());
    let mut earlier = earlier.map(Err);
    loop {
        let result = match earlier.take() {
            Some(result) => result,
            None => {
                let tried = try_once(lane, entry, event, &mut standing, attempt + 1).await;
                if !matches!(tried, Ok(Tried::HolderBusy)) {
                    attempt += 1;
                }
                tried
            }
        };
        match result {
            Ok(Tried::HolderBusy) => {
                // It decides again once the holder lets go: a skip if the
                // holder succeeded, a run if it failed or was not
                // acknowledged. Shutdown first: left pending, reclaimed after
                // a restart.
                if !dedup::holder_gone(lane, event.id, shutdown).await {
                    return;
                }
            }
            Ok(Tried::Handled) => {
                crate::pause::reached("entry.handled").await;
                let record = standing.handled(lane, event);
                ack(lane, &entry.id, record).await;
                lane.metrics.acked(&entry.id, attempt);
                return;
            }
            Ok(Tried::Duplicate(duplicate)) => {
                ack(lane, &entry.id, duplicate.record_again()).await;
                lane.metrics.skipped(&entry.id, "already processed");
                return;
            }
            Err(HandlerError::Transient(error)) if retry::dependency_away(&error) => {
                // PostgreSQL or Redis is away: not this entry's fault, so the attempt
                // does not count. It waits here, in flight, until the server
                // is back (or shutdown leaves it pending), instead of spending
                // its attempts on the outage and landing in the DLQ.
                attempt -= 1;
                let delay = outage.next().unwrap_or(retry::OUTAGE_MAX_DELAY);
                tracing::debug!(entry_id = %entry.id, delay_ms = delay.as_millis() as u64, error = format!("{error:#}"), "dependency unavailable; waiting");
                if !retry::sleep(delay, shutdown).await {
                    return;
                }
            }
            Err(HandlerError::Transient(error)) => match delays.next() {
                Some(delay) => {
                    lane.metrics.retried(&entry.id, attempt, delay, &format!("{error:#}"));
                    if !retry::sleep(delay, shutdown).await {
                        // Left pending: after a restart it is reclaimed, with
                        // its attempts starting over.
                        return;
                    }
                }
                None => {
                    let reason = format!("{error:#}");
                    dead_letter(lane, entry, attempt, &reason, Some(event)).await;
                    return;
                }
            },
            Err(HandlerError::Permanent(error)) => {
                dead_letter(lane, entry, attempt, &format!("permanent: {error:#}"), Some(event)).await;
                return;
            }
        }
    }
}

/// One attempt: the de-duplication decision, then the handler if it says so.
async fn try_once<'l>(
    lane: &'l Lane,
    entry: &StreamEntry,
    event: &StoredEvent,
    standing: &mut Standing<'l>,
    attempt: u32,
) -> Result<Tried, HandlerError> {
    match lane.handler.handling() {
        Handling::Redis(handler) => {
            match decide_alone(lane, event, standing, Records::Redis).await? {
                Decision::Handle => {}
                Decision::AckDuplicate(duplicate) => return Ok(Tried::Duplicate(duplicate)),
                Decision::WaitForHolder => return Ok(Tried::HolderBusy),
            }
            let (redis, keys, db) = (&lane.shared.redis, &lane.shared.keys, &lane.shared.db);
            let delivery = RedisDelivery { event, stream: &lane.stream, entry_id: &entry.id, attempt, redis, keys, db };
            let _slot = lane.slots.acquire().await;
            let started = Instant::now();
            let result = handler.handle(delivery).await;
            lane.metrics.handler_ran(started.elapsed());
            result.map(|()| Tried::Handled)
        }
        Handling::Postgres(handler) => {
            let slot = lane.slots.acquire().await;
            let started = Instant::now();
            let result = in_transaction(lane, handler, entry, event, standing, attempt, slot.number()).await;
            if !matches!(result, Ok(Tried::HolderBusy)) {
                lane.metrics.handler_ran(started.elapsed());
            }
            result
        }
    }
}

/// An attempt of a Postgres-store handler: its own transaction, where the
/// decision writes the event's record and the handler its effect, committed
/// together.
async fn in_transaction<'l>(
    lane: &'l Lane,
    handler: &dyn PostgresStoreHandler,
    entry: &StreamEntry,
    event: &StoredEvent,
    standing: &mut Standing<'l>,
    attempt: u32,
    slot: u16,
) -> Result<Tried, HandlerError> {
    let transient = |e: sqlx::Error| HandlerError::Transient(e.into());
    let mut tx = xentri_core::db::begin_as(&lane.shared.db, xentri_core::roles::WORKER, Some(event.org_id))
        .await
        .map_err(transient)?;
    match decide_alone(lane, event, standing, Records::Postgres(&mut tx)).await? {
        Decision::Handle => {}
        Decision::AckDuplicate(duplicate) => return Ok(Tried::Duplicate(duplicate)),
        Decision::WaitForHolder => return Ok(Tried::HolderBusy),
    }
    handler.handle(PgDelivery { event, stream: &lane.stream, entry_id: &entry.id, attempt, slot, tx: &mut tx }).await?;
    tx.commit().await.map_err(transient)?;
    Ok(Tried::Handled)
}

/// [`dedup::decide`] for one delivery asking alone. Its error (PostgreSQL
/// failed) is the attempt's.
async fn decide_alone<'l>(
    lane: &'l Lane,
    event: &StoredEvent,
    standing: &mut Standing<'l>,
    records: Records<'_>,
) -> Result<Decision, HandlerError> {
    let decisions = dedup::decide(lane, &mut [Ask { event, standing }], records)
        .await
        .map_err(|e| HandlerError::Transient(e.into()))?;
    // One ask, one decision.
    Ok(decisions.into_iter().next().unwrap_or(Decision::WaitForHolder))
}

/// Queues `entry_id`'s ack (after its Redis processed record, if any).
pub(super) async fn ack(lane: &Lane, entry_id: &str, processed_key: Option<String>) {
    // Only fails when the acker is gone, i.e. the lane is being torn down; the
    // entry then stays pending and is delivered again.
    let _ = lane.acks.send(Ack { entry_id: entry_id.to_owned(), processed_key }).await;
}

/// Dead-letters an entry whose fields are not all text (see
/// [`StreamEntry::from_redis`]): what can be kept of it, and which field is not.
/// No handler sees it.
pub async fn dead_letter_undecodable(lane: &Lane, undecodable: &Undecodable) {
    dead_letter(lane, &undecodable.lossy, 0, &format!("malformed entry: {}", undecodable.error), None).await;
}

/// Moves the entry to the DLQ and acks it, in one script; then calls the
/// handler's dead-letter hook once. If Redis refuses, the entry stays pending.
pub async fn dead_letter(lane: &Lane, entry: &StreamEntry, attempts: u32, reason: &str, event: Option<&StoredEvent>) {
    let letter = DeadLetter {
        stream: lane.stream.clone(),
        id: entry.id.clone(),
        group: lane.group.clone(),
        consumer: lane.consumer.clone(),
        attempts,
        error: reason.to_owned(),
        failed_at: Utc::now(),
    };
    let fields = dead_letter_fields(entry, &letter);
    let mut invocation = xentri_core::scripts::DEAD_LETTER.prepare_invoke();
    invocation.key(&lane.stream_key).key(&lane.dlq_key).arg(&lane.group).arg(&lane.consumer).arg(&entry.id);
    for (name, value) in &fields {
        invocation.arg(name).arg(value);
    }
    let mut moved = None;
    for attempt in 0..5u32 {
        let result = async {
            let mut conn = lane.shared.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
            invocation.invoke_async::<Option<String>>(&mut conn).await.map_err(anyhow::Error::from)
        }
        .await;
        match result {
            Ok(id) => {
                moved = Some(id);
                break;
            }
            Err(error) => {
                tracing::warn!(entry_id = %entry.id, attempt, error = %error, "dead-lettering failed");
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    match moved {
        Some(Some(_dlq_id)) => {
            lane.metrics.dead_lettered(&entry.id, &lane.dlq, reason);
            if let Err(error) = lane.handler.on_dead_letter(event, &letter, &lane.shared.db).await {
                tracing::error!(group = %lane.group, entry_id = %entry.id, error = %error, "dead-letter hook failed");
            }
        }
        Some(None) => {
            tracing::info!(entry_id = %entry.id, "not dead-lettered: another consumer holds it now");
        }
        None => tracing::error!(entry_id = %entry.id, "could not dead-letter; the entry stays pending"),
    }
}
