//! What happens to one entry: decode, skip what is not ours, skip what was
//! processed, run the handler with retries, then ack or dead-letter.

use std::time::Instant;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use xentri_core::StoredEvent;
use xentri_core::dlq::{DeadLetter, dead_letter_fields};
use xentri_core::stream::{StreamEntry, Undecodable, field};

use super::acker::Ack;
use super::lane::Lane;
use super::retry;
use crate::handler::{HandlerError, Handling, PgDelivery, RedisDelivery, Store};

fn processed_key(lane: &Lane, event: &StoredEvent) -> String {
    processed_key_of(lane, &event.id.to_string())
}

/// The Redis processed record of event `event_id` for the lane's group.
pub fn processed_key_of(lane: &Lane, event_id: &str) -> String {
    lane.shared.keys.key(&format!("processed:{}:{event_id}", lane.group))
}

/// Looks up the processed records of a read batch in one round trip; `None`
/// for entries it cannot tell (they look themselves up).
pub async fn processed_batch(lane: &Lane, entries: &[StreamEntry]) -> Vec<Option<bool>> {
    if lane.handler.handling().store() != Store::Redis {
        return vec![Some(false); entries.len()];
    }
    let keys: Vec<Option<String>> =
        entries.iter().map(|e| e.get(field::ID).map(|id| processed_key_of(lane, id))).collect();
    let mut pipe = redis::pipe();
    for key in keys.iter().flatten() {
        pipe.cmd("EXISTS").arg(key);
    }
    let found: Option<Vec<bool>> = async {
        let mut conn = lane.shared.redis.get().await.ok()?;
        pipe.query_async(&mut conn).await.ok()
    }
    .await;
    let Some(found) = found else { return vec![None; entries.len()] };
    let mut found = found.into_iter();
    keys.iter().map(|key| key.as_ref().and_then(|_| found.next())).collect()
}

/// Marks an event as being handled by a lane until dropped.
pub(super) struct EventClaim<'a> {
    lane: &'a Lane,
    event_id: uuid::Uuid,
}

impl<'a> EventClaim<'a> {
    /// Claims `event_id` for this lane; `None` while it is claimed already.
    pub(super) fn take(lane: &'a Lane, event_id: uuid::Uuid) -> Option<Self> {
        let mut events = lane.events_in_flight.lock().ok()?;
        // `then`, not `then_some`: a claim built and dropped here would unlock
        // the set it is being built under.
        events.insert(event_id).then(|| Self { lane, event_id })
    }

    /// Claims `event_id` once its holder lets go; `None` if `shutdown` comes
    /// first.
    async fn wait(lane: &'a Lane, event_id: uuid::Uuid, shutdown: &CancellationToken) -> Option<Self> {
        loop {
            if let Some(claim) = Self::take(lane, event_id) {
                return Some(claim);
            }
            // Rare (a duplicate arriving while the first copy runs): a short
            // poll rather than a wake-up list per event.
            if !retry::sleep(std::time::Duration::from_millis(20), shutdown).await {
                return None;
            }
        }
    }
}

impl Drop for EventClaim<'_> {
    fn drop(&mut self) {
        if let Ok(mut events) = self.lane.events_in_flight.lock() {
            events.remove(&self.event_id);
        }
    }
}

/// How a delivery was settled: its handler ran, or its event had a processed
/// record already (a duplicate delivery).
enum Settled {
    Done,
    Duplicate,
}

/// Processes one delivery of `entry`. Never panics on bad input; never loses
/// the entry: it ends acked, dead-lettered, or still pending. `processed` is
/// the Redis processed record's state when the caller already looked it up
/// (for a whole read batch in one round trip); `earlier` is the failure of
/// an attempt already made (in a batch's transaction), which counts as the
/// first.
pub async fn process(
    lane: &Lane,
    entry: StreamEntry,
    deliveries: usize,
    processed: Option<bool>,
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
    handle(lane, &entry, &event, processed, earlier, shutdown).instrument(span).await;
}

/// Runs the group's handler for a decoded event of its type: claim, skip what
/// was processed, attempts with retries, then ack or dead-letter.
async fn handle(
    lane: &Lane,
    entry: &StreamEntry,
    event: &StoredEvent,
    processed: Option<bool>,
    earlier: Option<HandlerError>,
    shutdown: &CancellationToken,
) {
    // The same event may be being handled right now (the relay publishes at
    // least once; an operator republished it): this delivery waits for that
    // one, then decides like any other — a skip if it succeeded, a run if it
    // failed or could not be acknowledged.
    let Some(_claim) = EventClaim::wait(lane, event.id, shutdown).await else {
        // Shutdown came first: left pending, reclaimed after a restart.
        return;
    };
    let store = lane.handler.handling().store();
    let recently = lane.recently_done.lock().is_ok_and(|recent| recent.contains(&event.id));
    let recorded = match processed {
        Some(done) => done,
        None => store == Store::Redis && already_processed(lane, event).await,
    };
    if store == Store::Redis && (recently || recorded) {
        // Handled lately by this lane, yet its record is gone (Redis restarted
        // empty, a flush): written again with the ack, so that `worker audit`
        // and later deliveries see it.
        let lost = (!recorded).then(|| processed_key(lane, event));
        ack(lane, &entry.id, lost).await;
        lane.metrics.skipped(&entry.id, "already processed");
        return;
    }
    let mut delays = retry::delays(&lane.shared.settings.worker.retry);
    let mut outage = retry::outage_delays();
    let mut attempt = u32::from(earlier.is_some());
    let mut earlier = earlier.map(Err);
    loop {
        let result = match earlier.take() {
            Some(result) => result,
            None => {
                attempt += 1;
                let started = Instant::now();
                let result = {
                    let _active = lane.active.acquire().await;
                    run_handler(lane, entry, event, attempt).await
                };
                lane.metrics.handler_ran(started.elapsed());
                result
            }
        };
        match result {
            Ok(Settled::Done) => {
                crate::pause::reached("entry.handled").await;
                if let Ok(mut recent) = lane.recently_done.lock() {
                    recent.insert(event.id);
                }
                let processed = (store == Store::Redis).then(|| processed_key(lane, event));
                ack(lane, &entry.id, processed).await;
                lane.metrics.acked(&entry.id, attempt);
                return;
            }
            Ok(Settled::Duplicate) => {
                ack(lane, &entry.id, None).await;
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

async fn run_handler(
    lane: &Lane,
    entry: &StreamEntry,
    event: &StoredEvent,
    attempt: u32,
) -> Result<Settled, HandlerError> {
    let (stream, entry_id) = (lane.stream.as_str(), entry.id.as_str());
    match lane.handler.handling() {
        Handling::Redis(handler) => {
            let (redis, keys, db) = (&lane.shared.redis, &lane.shared.keys, &lane.shared.db);
            let delivery = RedisDelivery { event, stream, entry_id, attempt, redis, keys, db };
            handler.handle(delivery).await.map(|()| Settled::Done)
        }
        Handling::Postgres(handler) => {
            let transient = |e: sqlx::Error| HandlerError::Transient(e.into());
            let mut tx = xentri_core::db::begin_as(&lane.shared.db, xentri_core::roles::WORKER, Some(event.org_id))
                .await
                .map_err(transient)?;
            // Concurrent deliveries of one event wait here for each other; the
            // second finds the first's record and skips.
            let recorded = sqlx::query(xentri_core::sql::RECORD_PROCESSED)
                .bind(&lane.group)
                .bind(event.id)
                .execute(&mut *tx)
                .await
                .map_err(transient)?;
            if recorded.rows_affected() == 0 {
                return Ok(Settled::Duplicate);
            }
            handler.handle(PgDelivery { event, stream, entry_id, attempt, tx: &mut tx }).await?;
            tx.commit().await.map_err(transient)?;
            Ok(Settled::Done)
        }
    }
}

async fn already_processed(lane: &Lane, event: &StoredEvent) -> bool {
    let key = processed_key(lane, event);
    let result = async {
        let mut conn = lane.shared.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        redis::cmd("EXISTS").arg(&key).query_async::<bool>(&mut conn).await.map_err(anyhow::Error::from)
    }
    .await;
    // Unknown counts as not processed: at-least-once, never at-most-once.
    result.unwrap_or_else(|error| {
        tracing::warn!(error = %error, "cannot read processed record");
        false
    })
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
            if let Err(error) = lane.handler.on_dead_letter(event, &letter).await {
                tracing::error!(group = %lane.group, entry_id = %entry.id, error = %error, "dead-letter hook failed");
            }
        }
        Some(None) => {
            tracing::info!(entry_id = %entry.id, "not dead-lettered: another consumer holds it now");
        }
        None => tracing::error!(entry_id = %entry.id, "could not dead-letter; the entry stays pending"),
    }
}
