//! Batched acknowledgement: completions queue here and go to Redis together,
//! each processed record (`SET … EX`) before the `XACK` that covers it, in one
//! pipeline per batch.

use std::time::Duration;

use tokio::sync::mpsc;

/// Most entries acknowledged in one round trip.
const MAX_BATCH: usize = 512;

/// One entry to acknowledge.
#[derive(Debug)]
pub struct Ack {
    /// The stream entry id.
    pub entry_id: String,
    /// The Redis processed record to write first, for Redis-store handlers.
    pub processed_key: Option<String>,
}

/// Acknowledges what arrives on `acks` until every sender is gone, then returns.
pub async fn run(
    redis: deadpool_redis::Pool,
    stream_key: String,
    group: String,
    processed_ttl: Duration,
    mut acks: mpsc::Receiver<Ack>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = acks.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match acks.try_recv() {
                Ok(ack) => batch.push(ack),
                Err(_) => break,
            }
        }
        flush(&redis, &stream_key, &group, processed_ttl, &batch).await;
        batch.clear();
    }
}

async fn flush(redis: &deadpool_redis::Pool, stream_key: &str, group: &str, ttl: Duration, batch: &[Ack]) {
    crate::pause::reached("acker.flush").await;
    let mut pipe = redis::pipe();
    for ack in batch {
        if let Some(key) = &ack.processed_key {
            pipe.cmd("SET").arg(key).arg(1).arg("EX").arg(ttl.as_secs().max(1)).ignore();
        }
    }
    let mut xack = redis::cmd("XACK");
    xack.arg(stream_key).arg(group);
    for ack in batch {
        xack.arg(&ack.entry_id);
    }
    pipe.add_command(xack).ignore();
    // Redis may be briefly away: a few tries, then the entries stay pending and
    // are delivered again after the visibility timeout (the processed records
    // make that a skip).
    for attempt in 0..5u32 {
        let result = async {
            let mut conn = redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
            pipe.query_async::<()>(&mut conn).await.map_err(anyhow::Error::from)
        }
        .await;
        match result {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(stream = stream_key, group, attempt, error = %error, "ack failed");
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
    }
    tracing::error!(stream = stream_key, group, entries = batch.len(), "acks given up; entries will be redelivered");
}
