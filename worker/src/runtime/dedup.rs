//! Whether a delivery runs its handler: the four de-duplication layers, asked
//! in one decision ([`decide`]), and what each of them remembers.
//!
//! The relay publishes at least once, and an operator may republish: one
//! event can reach a group several times, even at the same moment. Handlers
//! are idempotent because the runtime records `(group, event_id)` as
//! processed and skips an event it finds recorded; the layers are how it
//! finds out, cheapest first.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use xentri_core::StoredEvent;
use xentri_core::stream::{StreamEntry, field};

use super::lane::Lane;
use super::retry;
use crate::handler::{Handling, redis_processed_key};

/// What a lane remembers for the first two layers.
#[derive(Default)]
pub struct Memory {
    /// Event ids being handled by this lane (layer 1), each by the delivery
    /// holding its [`EventClaim`].
    in_flight: Mutex<HashSet<Uuid>>,
    /// Event ids this lane handled lately (layer 2).
    recently_done: Mutex<RecentIds>,
}

/// A bounded set of the most recently handled event ids.
#[derive(Default)]
struct RecentIds {
    /// The ids, oldest first.
    order: VecDeque<Uuid>,
    /// The same ids, for lookups.
    ids: HashSet<Uuid>,
}

impl RecentIds {
    /// How many ids are remembered.
    const CAPACITY: usize = 8192;

    /// Remembers `id`, forgetting the oldest beyond the capacity.
    fn insert(&mut self, id: Uuid) {
        if self.ids.insert(id) {
            self.order.push_back(id);
            if self.order.len() > Self::CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.ids.remove(&old);
            }
        }
    }

    /// Whether `id` was handled lately.
    fn contains(&self, id: &Uuid) -> bool {
        self.ids.contains(id)
    }
}

/// A delivery's hold on its event in its lane (layer 1): taken by the
/// decision that lets the delivery run, kept until the delivery is settled,
/// let go when dropped.
pub(super) struct EventClaim<'l> {
    lane: &'l Lane,
    event_id: Uuid,
}

impl<'l> EventClaim<'l> {
    /// Claims `event_id` for a delivery; `None` while another one holds it.
    fn take(lane: &'l Lane, event_id: Uuid) -> Option<Self> {
        let mut events = lane.dedup.in_flight.lock().ok()?;
        // `then`, not `then_some`: a claim built and dropped here would unlock
        // the set it is being built under.
        events.insert(event_id).then(|| Self { lane, event_id })
    }
}

impl Drop for EventClaim<'_> {
    fn drop(&mut self) {
        if let Ok(mut events) = self.lane.dedup.in_flight.lock() {
            events.remove(&self.event_id);
        }
    }
}

/// One delivery's standing with the layers, kept across its attempts.
pub(super) struct Standing<'l> {
    /// Its claim on the event, once a decision took it.
    claim: Option<EventClaim<'l>>,
    /// Its Redis record as the read batch's lookup found it ([`prefetch`]);
    /// `None`: not looked up.
    prefetched: Option<bool>,
}

impl<'l> Standing<'l> {
    /// A delivery that has not asked yet; `prefetched` is what [`prefetch`]
    /// found for it, if it was asked.
    pub(super) fn new(prefetched: Option<bool>) -> Self {
        Self { claim: None, prefetched }
    }

    /// Its handler succeeded (and, for a Postgres-store group, the
    /// transaction committed): the lane remembers the event as done (layer 2),
    /// then lets go of it (layer 1). Answers the Redis record its ack must
    /// write first (layer 3), for a Redis-store group.
    pub(super) fn handled(self, lane: &Lane, event: &StoredEvent) -> Option<String> {
        if let Ok(mut recent) = lane.dedup.recently_done.lock() {
            recent.insert(event.id);
        }
        drop(self);
        match lane.handler.handling() {
            Handling::Redis(_) => Some(record_key(lane, &event.id.to_string())),
            Handling::Postgres(_) => None,
        }
    }
}

/// A delivery asking [`decide`].
pub(super) struct Ask<'a, 'l> {
    /// Its event.
    pub(super) event: &'a StoredEvent,
    /// Its standing, which the decision updates.
    pub(super) standing: &'a mut Standing<'l>,
}

/// Where the group's processed records are, for [`decide`].
pub(super) enum Records<'t> {
    /// A Redis-store group: layers 2 and 3.
    Redis,
    /// A Postgres-store group: layer 4, in the attempt's transaction, where
    /// the records of the deliveries allowed to run are written.
    Postgres(&'t mut PgConnection),
}

/// What a delivery does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Run the handler: the event is not recorded as processed. The delivery
    /// holds the event's claim; for a Postgres-store group the record is in
    /// the transaction, which the handler's writes join.
    Handle,
    /// Acknowledge without running the handler: the event was handled.
    AckDuplicate(Duplicate),
    /// Another delivery of the event is being handled by this lane: wait
    /// until it lets go ([`holder_gone`]), then ask again.
    WaitForHolder,
}

/// Which layer knew that the event was handled.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Duplicate {
    /// Redis holds the event's processed record (layer 3).
    InRedis,
    /// This lane handled it lately (layer 2), yet Redis has no record: lost
    /// (Redis restarted empty, a flush) or not written yet. The ack writes
    /// `record_again`, so that `worker audit` and later deliveries see it.
    DoneHere {
        /// The record's key.
        record_again: String,
    },
    /// PostgreSQL holds the event's processed record, committed (layer 4).
    InPostgres,
}

impl Duplicate {
    /// The Redis record the ack writes first, if any.
    pub(super) fn record_again(self) -> Option<String> {
        match self {
            Self::DoneHere { record_again } => Some(record_again),
            Self::InRedis | Self::InPostgres => None,
        }
    }
}

/// How a delivery fared at layer 1.
#[derive(Clone, Copy)]
enum Claimed {
    /// Another delivery holds the event.
    Elsewhere,
    /// Just now: the layers after it are asked for the first time.
    Now,
    /// At an earlier attempt, which passed layers 2 and 3 already.
    Before,
}

/// Decides, for each delivery asking (one, or a read batch of a
/// Postgres-store group sharing a transaction), whether its handler runs; the
/// decisions come in the order of `asks`. The layers, in the order asked:
///
/// 1. **In flight in this lane** ([`EventClaim`], [`Memory`]). Another
///    delivery of the same event is being handled by this lane right now: this
///    one waits for it ([`Decision::WaitForHolder`]) and asks again, so that
///    it decides on the holder's outcome — a skip if it succeeded, a run if it
///    failed or was left unacknowledged. Guarantees that a lane handles an
///    event once at a time; the claim taken here is kept across the
///    delivery's attempts until it is settled.
/// 2. **Recently done by this lane** (Redis store; the last 8192 events). A
///    Redis record is written with the ack, after the claim is let go: for a
///    moment a later delivery would find none, and a read batch's [`prefetch`]
///    may have gone stale while the delivery waited at layer 1. This memory
///    bridges both; when Redis has no record, the ack writes it again.
///    Guarantees no second run in this lane while the event is remembered.
/// 3. **Redis processed record** (Redis store), `processed:{group}:{event_id}`,
///    written with the ack and kept `worker.processed_ttl_secs`; prefetched
///    for a read batch in one round trip, looked up here otherwise. Shared by
///    every lane and worker of the group. A record that cannot be read counts
///    as absent: at-least-once, never at-most-once.
/// 4. **PostgreSQL processed record** (Postgres store), written here in the
///    attempt's transaction (`INSERT … ON CONFLICT DO NOTHING`), which the
///    handler's writes then join: effect and record commit together, or
///    neither does. A concurrent delivery anywhere waits on the row until the
///    first commits, then skips. Guarantees that the effect happens exactly
///    once.
///
/// A Postgres-store group skips layers 2 and 3: its record is committed
/// before its claim is let go, so there is no moment for them to bridge.
/// Layers 2 and 3 are asked once per delivery (a later attempt holds its
/// claim); layer 4 at every attempt, because a failed attempt rolls its
/// record back. An error comes only from layer 4 (PostgreSQL): it counts as
/// the attempt's failure, and the claims stay with their deliveries.
pub(super) async fn decide<'l>(
    lane: &'l Lane,
    asks: &mut [Ask<'_, 'l>],
    records: Records<'_>,
) -> Result<Vec<Decision>, sqlx::Error> {
    let claimed: Vec<Claimed> = asks
        .iter_mut()
        .map(|ask| {
            if ask.standing.claim.is_some() {
                return Claimed::Before;
            }
            ask.standing.claim = EventClaim::take(lane, ask.event.id);
            if ask.standing.claim.is_some() { Claimed::Now } else { Claimed::Elsewhere }
        })
        .collect();
    match records {
        Records::Redis => {
            let mut decisions = Vec::with_capacity(asks.len());
            for (ask, claimed) in asks.iter().zip(claimed) {
                decisions.push(match claimed {
                    Claimed::Elsewhere => Decision::WaitForHolder,
                    Claimed::Before => Decision::Handle,
                    Claimed::Now => in_redis(lane, ask).await,
                });
            }
            Ok(decisions)
        }
        Records::Postgres(tx) => {
            let mut ids: Vec<Uuid> = asks
                .iter()
                .zip(&claimed)
                .filter(|(_, claimed)| !matches!(claimed, Claimed::Elsewhere))
                .map(|(ask, _)| ask.event.id)
                .collect();
            // In id order: transactions recording at once lock rows in one
            // order and do not deadlock.
            ids.sort_unstable();
            let recorded: HashSet<Uuid> = if ids.is_empty() {
                HashSet::new()
            } else {
                sqlx::query_scalar(xentri_core::sql::RECORD_PROCESSED_BATCH)
                    .bind(&lane.group)
                    .bind(&ids)
                    .fetch_all(tx)
                    .await?
                    .into_iter()
                    .collect()
            };
            Ok(asks
                .iter()
                .zip(claimed)
                .map(|(ask, claimed)| match claimed {
                    Claimed::Elsewhere => Decision::WaitForHolder,
                    _ if recorded.contains(&ask.event.id) => Decision::Handle,
                    _ => Decision::AckDuplicate(Duplicate::InPostgres),
                })
                .collect())
        }
    }
}

/// Layers 2 and 3, for a delivery of a Redis-store group that has just
/// claimed its event.
async fn in_redis(lane: &Lane, ask: &Ask<'_, '_>) -> Decision {
    let recently = lane.dedup.recently_done.lock().is_ok_and(|recent| recent.contains(&ask.event.id));
    let key = record_key(lane, &ask.event.id.to_string());
    let recorded = match ask.standing.prefetched {
        Some(found) => found,
        None => record_exists(lane, &key).await,
    };
    match (recently, recorded) {
        (_, true) => Decision::AckDuplicate(Duplicate::InRedis),
        (true, false) => Decision::AckDuplicate(Duplicate::DoneHere { record_again: key }),
        (false, false) => Decision::Handle,
    }
}

/// Waits until no delivery of `event_id` is being handled by this lane
/// (after [`Decision::WaitForHolder`]); `false` if `shutdown` comes first.
pub(super) async fn holder_gone(lane: &Lane, event_id: Uuid, shutdown: &CancellationToken) -> bool {
    loop {
        if lane.dedup.in_flight.lock().is_ok_and(|events| !events.contains(&event_id)) {
            return true;
        }
        // Rare (a duplicate arriving while the first copy runs): a short poll
        // rather than a wake-up list per event.
        if !retry::sleep(Duration::from_millis(20), shutdown).await {
            return false;
        }
    }
}

/// Layer 3 for a fresh read batch of a Redis-store group, in one round trip
/// (before any of it waits at layer 1): whether each entry's event has a Redis
/// record; `None` where it cannot tell (no id, or Redis did not answer), and
/// [`decide`] looks it up itself.
pub(super) async fn prefetch(lane: &Lane, entries: &[StreamEntry]) -> Vec<Option<bool>> {
    let keys: Vec<Option<String>> = entries.iter().map(|e| e.get(field::ID).map(|id| record_key(lane, id))).collect();
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

/// The Redis processed record of event `event_id` for the lane's group.
fn record_key(lane: &Lane, event_id: &str) -> String {
    redis_processed_key(&lane.shared.keys, &lane.group, event_id)
}

/// Whether Redis holds the record `key`; unknown counts as no.
async fn record_exists(lane: &Lane, key: &str) -> bool {
    let result = async {
        let mut conn = lane.shared.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        redis::cmd("EXISTS").arg(key).query_async::<bool>(&mut conn).await.map_err(anyhow::Error::from)
    }
    .await;
    // Unknown counts as not processed: at-least-once, never at-most-once.
    result.unwrap_or_else(|error| {
        tracing::warn!(error = %error, "cannot read processed record");
        false
    })
}

#[cfg(test)]
mod tests;
