//! Safe trimming of work streams, and the stream gauges.
//!
//! A work stream is trimmed with `MINID` at the oldest entry some group still
//! needs — its oldest pending entry, or the first entry after its last
//! delivered one — so an entry no group has acknowledged is never dropped;
//! `streams.work_cap` bounds only what every group has acknowledged. A stream
//! without any group is not trimmed at all, nor one on which a group of this
//! worker has no consumer group yet.
//! **Invariant:** DLQs are never trimmed.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::streams::{StreamInfoGroupsReply, StreamPendingReply};
use tokio_util::sync::CancellationToken;
use xentri_core::stream::Family;
use xentri_core::stream_id::StreamId;

use crate::runtime::Shared;

/// Trims and samples until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let interval = Duration::from_millis(shared.settings.worker.trim_interval_ms);
    while !shutdown.is_cancelled() {
        for family in Family::ALL {
            let names = shared.settings.streams.family(family);
            if let Err(error) = trim(&shared, &names.work).await {
                tracing::warn!(stream = %names.work, error = %error, "trim failed");
            }
            if let Err(error) = sample_dlq(&shared, &names.dlq).await {
                tracing::warn!(stream = %names.dlq, error = %error, "dlq depth unavailable");
            }
        }
        match crate::relay::backlog(&shared).await {
            Ok(backlog) => metrics::gauge!("outbox_backlog").set(backlog as f64),
            Err(error) => tracing::debug!(error = %error, "outbox backlog unavailable"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => {}
        }
    }
    Ok(())
}

/// Trims work stream `stream` (logical name) as far as is safe; returns
/// entries removed. Anything but a configured work stream is refused.
pub async fn trim(shared: &Shared, stream: &str) -> anyhow::Result<u64> {
    if shared.settings.streams.family_of_work(stream).is_none() {
        anyhow::bail!("{stream} is not a work stream; only work streams are trimmed");
    }
    let key = shared.keys.key(stream);
    let mut conn = shared.redis.get().await?;
    let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await?;
    if !exists {
        return Ok(0);
    }
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO").arg("GROUPS").arg(&key).query_async(&mut conn).await?;
    if groups.groups.is_empty() {
        // No group has acknowledged anything, and one may be about to be
        // created (it starts at the oldest entry): keep everything.
        return Ok(0);
    }
    // A group of this worker that has no consumer group yet (its lane is still
    // creating it, or the stream vanished and is being recreated) has read
    // nothing: trimming now would drop entries it will never see.
    if let Some(missing) = shared
        .readers
        .get(stream)
        .and_then(|readers| readers.iter().find(|r| !groups.groups.iter().any(|g| &g.name == *r)))
    {
        tracing::warn!(stream, group = %missing, "not trimming: a group of this worker has no consumer group yet");
        return Ok(0);
    }
    // The oldest id some group still needs.
    let mut needed: Option<StreamId> = None;
    for group in &groups.groups {
        metrics::gauge!("worker_pending_entries", "stream" => stream.to_owned(), "group" => group.name.clone())
            .set(group.pending as f64);
        let oldest = if group.pending > 0 {
            let summary: StreamPendingReply =
                redis::cmd("XPENDING").arg(&key).arg(&group.name).query_async(&mut conn).await?;
            match summary {
                StreamPendingReply::Data(data) => StreamId::parse(&data.start_id).ok(),
                _ => StreamId::parse(&group.last_delivered_id).ok().map(StreamId::next),
            }
        } else {
            StreamId::parse(&group.last_delivered_id).ok().map(StreamId::next)
        };
        if let Some(oldest) = oldest {
            needed = Some(needed.map_or(oldest, |n| n.min(oldest)));
        }
    }
    let Some(needed) = needed else { return Ok(0) };
    crate::pause::reached("trimmer.trim").await;
    let removed: u64 =
        TRIM.key(&key).arg(needed.to_string()).arg(shared.settings.streams.work_cap).invoke_async(&mut conn).await?;
    if removed > 0 {
        tracing::debug!(stream, removed, needed = %needed, "trimmed");
    }
    Ok(removed)
}

/// Trims stream `KEYS[1]` with `MINID` at `ARGV[1]` (the oldest entry some
/// group still needs), but never into its newest `ARGV[2]` entries; returns
/// the entries removed. It runs in Redis so that finding where the newest
/// entries begin does not send them over the network every interval.
static TRIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local cap = tonumber(ARGV[2])
if redis.call('XLEN', KEYS[1]) <= cap then
  return 0
end
local threshold = ARGV[1]
if cap > 0 then
  local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', cap)
  local floor = newest[#newest][1]
  local fms, fseq = string.match(floor, '^(%d+)-(%d+)$')
  local tms, tseq = string.match(threshold, '^(%d+)-(%d+)$')
  fms, fseq, tms, tseq = tonumber(fms), tonumber(fseq), tonumber(tms), tonumber(tseq)
  if fms < tms or (fms == tms and fseq < tseq) then
    threshold = floor
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', threshold)
"#,
    )
});

async fn sample_dlq(shared: &Shared, dlq: &str) -> anyhow::Result<()> {
    let mut conn = shared.redis.get().await?;
    let depth: u64 = redis::cmd("XLEN").arg(shared.keys.key(dlq)).query_async(&mut conn).await?;
    metrics::gauge!("worker_dlq_depth", "stream" => dlq.to_owned()).set(depth as f64);
    Ok(())
}
