//! One group on one stream: create the group, read in batches under the
//! group's concurrency, reclaim abandoned entries, drain on shutdown.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::streams::{StreamClaimReply, StreamPendingCountReply, StreamReadReply};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use xentri_core::stream::StreamEntry;

use super::Shared;
use super::acker::{self, Ack};
use super::batch::{self, Handled};
use super::dedup::{self, Standing};
use super::process;
use super::slots::Slots;
use crate::handler::{Handler, HandlerError, Handling};

/// Everything a lane's tasks need.
pub struct Lane {
    /// Shared runtime state.
    pub shared: Arc<Shared>,
    /// The group's handler.
    pub handler: Arc<dyn Handler>,
    /// The group name.
    pub group: String,
    /// The stream (logical name).
    pub stream: String,
    /// The stream's Redis key.
    pub stream_key: String,
    /// The DLQ (logical name).
    pub dlq: String,
    /// The DLQ's Redis key.
    pub dlq_key: String,
    /// This lane's consumer name.
    pub consumer: String,
    /// Handlers running at once (`worker.groups.<g>.concurrency`), each in a
    /// numbered slot.
    pub slots: Slots,
    /// Entry ids being processed by this lane, so reclaim leaves them alone.
    pub in_flight: Mutex<HashSet<String>>,
    /// What the lane remembers to recognise duplicates: the events it is
    /// handling, and those it handled lately.
    pub dedup: dedup::Memory,
    /// Completions to acknowledge.
    pub acks: mpsc::Sender<Ack>,
    /// Outcome counters and handler latency of this lane.
    pub metrics: super::telemetry::LaneMetrics,
}

/// Runs a lane until `shutdown`, then lets in-flight entries finish within
/// the grace period and flushes their acks.
pub async fn run(
    shared: Arc<Shared>,
    handler: Arc<dyn Handler>,
    stream: String,
    concurrency: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    shared.panic_once(&format!("lane.{}", handler.group()));
    let settings = shared.settings.clone();
    let dlq = shared
        .dlq_of(&stream)
        .ok_or_else(|| anyhow::anyhow!("stream {stream} is not a configured work stream"))?
        .to_owned();
    let group = handler.group().to_owned();
    let stream_key = shared.keys.key(&stream);
    let (tx, rx) = mpsc::channel(4096);
    let acker = tokio::spawn(acker::run(
        shared.redis.clone(),
        stream_key.clone(),
        group.clone(),
        Duration::from_secs(settings.worker.processed_ttl_secs),
        rx,
    ));
    let metrics = super::telemetry::LaneMetrics::new(&stream, &group);
    let lane = Arc::new(Lane {
        metrics,
        dlq_key: shared.keys.key(&dlq),
        dlq,
        consumer: shared.consumer_name(),
        stream_key,
        stream,
        group,
        handler,
        slots: Slots::new(concurrency),
        in_flight: Mutex::new(HashSet::new()),
        dedup: dedup::Memory::default(),
        acks: tx,
        shared,
    });
    tracing::info!(group = %lane.group, stream = %lane.stream, consumer = %lane.consumer, concurrency, "lane started");
    let result = read_loop(&lane, concurrency, &shutdown).await;
    drop(lane);
    // The acker ends once every task holding a sender has finished.
    let _ = acker.await;
    result
}

async fn read_loop(lane: &Arc<Lane>, concurrency: usize, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let settings = &lane.shared.settings.worker;
    let block = Duration::from_millis(settings.block_ms);
    // Read ahead at most this many entries beyond those running.
    let capacity = Arc::new(Semaphore::new(concurrency.max(settings.read_count) * 2));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut conn = connect(lane, block, shutdown).await;
    ensure_group(lane, shutdown).await;
    let mut last_reclaim = Instant::now();
    while !shutdown.is_cancelled() {
        while tasks.try_join_next().is_some() {}
        let Some(conn_ref) = conn.as_mut() else {
            conn = connect(lane, block, shutdown).await;
            continue;
        };
        if last_reclaim.elapsed() >= Duration::from_millis(settings.reclaim_interval_ms) {
            last_reclaim = Instant::now();
            if let Err(error) = reclaim(lane, &capacity, &mut tasks, shutdown).await {
                tracing::warn!(group = %lane.group, stream = %lane.stream, error = %error, "reclaim failed");
            }
        }
        // Wait for room, then read no more than there is room for.
        let room = tokio::select! {
            permit = capacity.clone().acquire_owned() => permit?,
            () = shutdown.cancelled() => break,
        };
        let count = (capacity.available_permits() + 1).min(settings.read_count);
        drop(room);
        // Not raced against shutdown: a read Redis has answered must be
        // processed, or its entries would sit pending until reclaimed.
        let reply: redis::RedisResult<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&lane.group)
            .arg(&lane.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(settings.block_ms)
            .arg("STREAMS")
            .arg(&lane.stream_key)
            .arg(">")
            .query_async(conn_ref)
            .await;
        match reply {
            Ok(reply) => {
                let mut batch: Vec<StreamEntry> = Vec::new();
                for id in reply.keys.into_iter().flat_map(|key| key.ids) {
                    match StreamEntry::from_redis(id.id, &id.map) {
                        Ok(entry) => batch.push(entry),
                        Err(undecodable) => process::dead_letter_undecodable(lane, &undecodable).await,
                    }
                }
                let mut permits = Vec::with_capacity(batch.len());
                for _ in &batch {
                    permits.push(capacity.clone().acquire_owned().await?);
                }
                spawn_batch(lane, &mut tasks, batch, permits, shutdown);
            }
            Err(error) if matches!(error.code(), Some("NOGROUP" | "UNBLOCKED")) => {
                // The stream or group was deleted under us (Redis restarted
                // empty, a flush, a failover): create it again. What was on
                // the stream before is gone; `worker audit` finds what no
                // group handled, `worker republish` sends it again.
                tracing::error!(group = %lane.group, stream = %lane.stream, "stream or group vanished; creating it again");
                ensure_group(lane, shutdown).await;
            }
            Err(error) => {
                tracing::warn!(group = %lane.group, stream = %lane.stream, error = %error, "read failed");
                conn = None;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        }
    }
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    let running = tasks.len();
    tracing::info!(group = %lane.group, stream = %lane.stream, running, "lane draining");
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(group = %lane.group, stream = %lane.stream, left = tasks.len(), "grace elapsed; unfinished entries stay pending");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Runs a fresh read batch in a task of its own: its processed records are
/// looked up in one round trip while the reader already waits for the next
/// batch, then its entries run concurrently (bounded by the group's
/// concurrency).
fn spawn_batch(
    lane: &Arc<Lane>,
    tasks: &mut JoinSet<()>,
    batch: Vec<StreamEntry>,
    permits: Vec<tokio::sync::OwnedSemaphorePermit>,
    shutdown: &CancellationToken,
) {
    if let Ok(mut in_flight) = lane.in_flight.lock() {
        in_flight.extend(batch.iter().map(|e| e.id.clone()));
    }
    let lane = lane.clone();
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        crate::pause::reached("lane.batch").await;
        let (prefetched, handled) = match lane.handler.handling() {
            Handling::Redis(_) => (dedup::prefetch(&lane, &batch).await, Vec::new()),
            Handling::Postgres(handler) => (vec![None; batch.len()], batch::handle(&lane, handler, &batch).await),
        };
        let mut handled = handled.into_iter();
        let mut work = Vec::with_capacity(batch.len());
        for ((entry, prefetched), permit) in batch.into_iter().zip(prefetched).zip(permits) {
            let alone = Handled::Individually { earlier: None, standing: Standing::new(prefetched) };
            match handled.next().unwrap_or(alone) {
                Handled::Done => finished(&lane, &entry.id, permit),
                Handled::Individually { earlier, standing } => {
                    work.push(run_entry(&lane, entry, 1, standing, earlier, permit, &shutdown));
                }
            }
        }
        futures_util::future::join_all(work).await;
    });
}

fn spawn(
    lane: &Arc<Lane>,
    tasks: &mut JoinSet<()>,
    entry: StreamEntry,
    deliveries: usize,
    permit: tokio::sync::OwnedSemaphorePermit,
    shutdown: &CancellationToken,
) {
    if let Ok(mut in_flight) = lane.in_flight.lock() {
        in_flight.insert(entry.id.clone());
    }
    let lane = lane.clone();
    let shutdown = shutdown.clone();
    tasks.spawn(async move { run_entry(&lane, entry, deliveries, Standing::new(None), None, permit, &shutdown).await });
}

/// Processes one entry, then forgets it as in flight and frees its room.
async fn run_entry<'l>(
    lane: &'l Lane,
    entry: StreamEntry,
    deliveries: usize,
    standing: Standing<'l>,
    earlier: Option<HandlerError>,
    permit: tokio::sync::OwnedSemaphorePermit,
    shutdown: &CancellationToken,
) {
    let id = entry.id.clone();
    process::process(lane, entry, deliveries, standing, earlier, shutdown).await;
    finished(lane, &id, permit);
}

/// Forgets entry `id` as in flight and frees its room.
fn finished(lane: &Lane, id: &str, permit: tokio::sync::OwnedSemaphorePermit) {
    if let Ok(mut in_flight) = lane.in_flight.lock() {
        in_flight.remove(id);
    }
    drop(permit);
}

async fn connect(
    lane: &Lane,
    block: Duration,
    shutdown: &CancellationToken,
) -> Option<redis::aio::MultiplexedConnection> {
    let mut delay = Duration::from_millis(100);
    loop {
        match lane.shared.blocking_connection(block).await {
            Ok(conn) => return Some(conn),
            Err(error) => tracing::warn!(group = %lane.group, error = %error, "cannot connect to redis"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Creates the lane's group if it is missing (`XGROUP CREATE … 0 MKSTREAM`),
/// and every other group of this worker on the same stream (a stream that
/// vanished took them all, and a group created late would miss what was
/// trimmed meanwhile), retrying with backoff: the lane does not read before
/// its group exists.
async fn ensure_group(lane: &Lane, shutdown: &CancellationToken) {
    let others = lane.shared.readers.get(&lane.stream).into_iter().flatten().filter(|g| **g != lane.group);
    let groups = std::iter::once(lane.group.as_str()).chain(others.map(String::as_str));
    lane.shared.ensure_groups(&lane.stream, groups, shutdown).await;
}

/// Claims entries pending longer than the visibility timeout on other
/// consumers (or on ours, when this process no longer works on them).
/// An entry delivered `max_deliveries` times is poison: dead-lettered, not
/// processed again. A reclaim is not a handler failure: attempts start over.
async fn reclaim(
    lane: &Arc<Lane>,
    capacity: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let settings = &lane.shared.settings.worker;
    let mut conn = lane.shared.redis.get().await?;
    let pending: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(&lane.stream_key)
        .arg(&lane.group)
        .arg("IDLE")
        .arg(settings.visibility_timeout_ms)
        .arg("-")
        .arg("+")
        .arg(settings.read_count)
        .query_async(&mut conn)
        .await?;
    let in_flight = lane.in_flight.lock().map(|set| set.clone()).unwrap_or_default();
    let candidates: Vec<_> = pending.ids.into_iter().filter(|p| !in_flight.contains(&p.id)).collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let mut claim = redis::cmd("XCLAIM");
    claim.arg(&lane.stream_key).arg(&lane.group).arg(&lane.consumer).arg(settings.visibility_timeout_ms);
    for pending in &candidates {
        claim.arg(&pending.id);
    }
    let claimed: StreamClaimReply = claim.query_async(&mut conn).await?;
    drop(conn);
    if !claimed.ids.is_empty() {
        crate::pause::reached("lane.reclaimed").await;
    }
    for id in claimed.ids {
        let previous = candidates.iter().find(|p| p.id == id.id).map_or(0, |p| p.times_delivered);
        let entry = match StreamEntry::from_redis(id.id, &id.map) {
            Ok(entry) => entry,
            Err(undecodable) => {
                process::dead_letter_undecodable(lane, &undecodable).await;
                continue;
            }
        };
        tracing::info!(group = %lane.group, stream = %lane.stream, entry_id = %entry.id, deliveries = previous + 1, "reclaimed");
        if previous >= settings.max_deliveries as usize {
            let reason = format!(
                "poison: delivered {previous} times without being acknowledged (its consumers crashed or stalled)"
            );
            process::dead_letter(lane, &entry, 0, &reason, None).await;
            continue;
        }
        let permit = capacity.clone().acquire_owned().await?;
        spawn(lane, tasks, entry, previous + 1, permit, shutdown);
    }
    Ok(())
}
