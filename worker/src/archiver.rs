//! DLQ archival: dead letters older than `dlq.archive_after_secs` move to
//! `dlq:archive:{dlq}:{date}` (the UTC date they failed), which expires
//! `dlq.archive_ttl_secs` after its newest entry failed. Each entry moves in
//! one server-side step (never in neither place, never in both). One worker
//! archives per interval, however many run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::streams::StreamRangeReply;
use tokio_util::sync::CancellationToken;
use xentri_core::dlq;
use xentri_core::stream::{Family, StreamEntry, archive_key};
use xentri_core::stream_id::StreamId;

use crate::runtime::Shared;

/// Entries archived per round trip.
const BATCH: usize = 500;

/// Archives until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let interval = Duration::from_secs(shared.settings.dlq.archive_interval_secs.max(1));
    let older_than = Duration::from_secs(shared.settings.dlq.archive_after_secs);
    crate::jobs::once_per_interval(&shared, "dlq_archive", interval, &shutdown, || async {
        for family in Family::ALL {
            let dlq = shared.settings.streams.family(family).dlq.clone();
            let moved = archive_older_than(&shared, &dlq, older_than, Utc::now()).await?;
            if moved > 0 {
                tracing::info!(dlq, moved, "dead letters archived");
            }
        }
        Ok(())
    })
    .await;
    Ok(())
}

/// Moves every entry of `dlq` (logical name) that entered it more than
/// `older_than` before `now`; returns how many moved.
pub async fn archive_older_than(
    shared: &Shared,
    dlq: &str,
    older_than: Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let dlq_key = shared.keys.key(dlq);
    let cutoff_ms = now.timestamp_millis() - older_than.as_millis() as i64;
    if cutoff_ms <= 0 {
        return Ok(0);
    }
    let ttl = shared.settings.dlq.archive_ttl_secs;
    let mut conn = shared.redis.get().await?;
    xentri_core::scripts::ARCHIVE.load_async(&mut conn).await?;
    let mut moved = 0;
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&dlq_key)
            .arg("-")
            .arg(cutoff_ms - 1)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(&mut conn)
            .await?;
        if page.ids.is_empty() {
            return Ok(moved);
        }
        let mut pipe = redis::pipe();
        for id in &page.ids {
            let failed = match StreamEntry::from_redis(id.id.clone(), &id.map) {
                Ok(entry) => dlq::failed_at(&entry),
                Err(error) => {
                    // Moved as it is, by the time in its id.
                    tracing::warn!(dlq, entry_id = %id.id, %error, "undecodable dead letter archived");
                    StreamId::parse(&id.id).ok().and_then(StreamId::time)
                }
            }
            .unwrap_or(now);
            let key = shared.keys.key(&archive_key(dlq, failed.date_naive()));
            let mut invocation = xentri_core::scripts::ARCHIVE.prepare_invoke();
            invocation.key(&dlq_key).key(&key).arg(&id.id).arg(dlq::archive_ttl_secs(ttl, failed, now));
            pipe.invoke_script(&invocation);
        }
        let results: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let batch_moved = results.iter().filter(|r| r.is_some()).count();
        moved += batch_moved;
        if batch_moved == 0 {
            // Everything in this page was moved by someone else meanwhile.
            return Ok(moved);
        }
    }
}
