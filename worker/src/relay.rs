//! The outbox relay: committed outbox rows → `XADD` to their streams, in `seq`
//! order, a batch per round trip, woken by `LISTEN xentri_outbox` and polling.
//!
//! **Invariant:** a row leaves the outbox only in the transaction that follows
//! its `XADD`s; a relay killed mid-batch publishes that batch again
//! (at-least-once; consumers skip duplicates). One relay publishes at a time
//! (a transaction-scoped advisory lock in [`LockClass::Relay`]), so several
//! workers never publish the same row at once and the stream keeps `seq` order.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use xentri_core::locks::LockClass;
use xentri_core::stream::FlatEvent;

use crate::runtime::Shared;

/// The second key of the advisory lock only the publishing relay holds
/// (its class is [`LockClass::Relay`]).
const RELAY_LOCK_KEY: i32 = 0;
/// The notification channel the outbox trigger signals.
pub const CHANNEL: &str = "xentri_outbox";

#[derive(sqlx::FromRow)]
struct Row {
    stream: String,
    id: Uuid,
    seq: i64,
    org_id: Uuid,
    #[sqlx(rename = "type")]
    event_type: String,
    payload: String,
    actor: String,
    trace_id: String,
    correlation_id: String,
    causation_id: Option<String>,
    occurred_at: DateTime<Utc>,
}

/// Publishes until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> anyhow::Result<()> {
    shared.panic_once("relay");
    let settings = &shared.settings.worker.relay;
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let mut listener = None;
    let mut failures = 0u32;
    // Published rows are deleted, and until vacuum runs their dead index
    // entries sit at the low end of the outbox's key. Batches therefore start
    // after the last published seq; a full scan from the start, at least once
    // per poll interval, picks up rows that committed late with a lower seq.
    let mut cursor: Option<i64> = None;
    let mut last_full_scan = std::time::Instant::now();
    tracing::info!("relay started");
    while !shutdown.is_cancelled() {
        if listener.is_none() {
            listener = listen(&shared).await;
        }
        let full_scan = cursor.is_none() || last_full_scan.elapsed() >= poll;
        if full_scan {
            last_full_scan = std::time::Instant::now();
        }
        match publish_batch_after(&shared, if full_scan { None } else { cursor }).await {
            Ok((published, highest)) => {
                failures = 0;
                if highest.is_some() {
                    cursor = cursor.max(highest);
                }
                if published as i64 >= settings.batch_size {
                    continue;
                }
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(error = format!("{error:#}"), failures, "relay batch failed");
            }
        }
        let wait = if failures > 0 { poll.min(Duration::from_millis(100 << failures.min(5))) } else { poll };
        // After a failure only the backoff decides when to try again: every
        // append's notification would otherwise retry (and log) at once.
        let listening = if failures > 0 { None } else { listener.as_mut() };
        tokio::select! {
            notified = async {
                match listening {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => {
                if notified.is_err() {
                    listener = None;
                }
            }
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => {}
        }
    }
    tracing::info!("relay stopped");
    Ok(())
}

async fn listen(shared: &Shared) -> Option<PgListener> {
    let result = async {
        let mut listener = PgListener::connect_with(&shared.db).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    }
    .await;
    result.map_err(|error| tracing::warn!(error = %error, "cannot listen for outbox notifications; polling")).ok()
}

/// Publishes one batch from the start of the outbox; returns how many rows it
/// published.
pub async fn publish_batch(shared: &Shared) -> anyhow::Result<usize> {
    publish_batch_after(shared, None).await.map(|(published, _)| published)
}

/// Publishes one batch of rows with a seq above `after` (all rows when
/// `None`); returns how many rows it published and the highest seq among them.
pub async fn publish_batch_after(shared: &Shared, after: Option<i64>) -> anyhow::Result<(usize, Option<i64>)> {
    let settings = &shared.settings;
    let mut tx = shared.db.begin().await?;
    let locked: bool =
        sqlx::query_scalar("SELECT set_config('role', $1, true) IS NOT NULL AND pg_try_advisory_xact_lock($2, $3)")
            .bind(xentri_core::roles::RELAY)
            .bind(LockClass::Relay.id())
            .bind(RELAY_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
    if !locked {
        return Ok((0, None));
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT o.stream, e.id, e.seq, e.org_id, e.type, e.payload::text AS payload, e.actor, e.trace_id,
                e.correlation_id, e.causation_id, e.occurred_at
         FROM outbox o JOIN system_events e ON e.seq = o.event_seq
         WHERE o.event_seq > $2
         ORDER BY o.event_seq, o.stream
         LIMIT $1
         FOR UPDATE OF o SKIP LOCKED",
    )
    .bind(settings.worker.relay.batch_size)
    .bind(after.unwrap_or(0))
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok((0, None));
    }
    let mut pipe = redis::pipe();
    for row in &rows {
        let event = FlatEvent {
            id: row.id,
            seq: row.seq,
            org_id: row.org_id,
            event_type: row.event_type.clone(),
            payload: row.payload.clone(),
            actor: row.actor.clone(),
            trace_id: row.trace_id.clone(),
            correlation_id: row.correlation_id.clone(),
            causation_id: row.causation_id.clone(),
            occurred_at: row.occurred_at,
        };
        // No MAXLEN: trimming is the trimmer's, which never drops unread entries.
        let mut xadd = redis::cmd("XADD");
        xadd.arg(shared.keys.key(&row.stream)).arg("*");
        for (name, value) in event.fields() {
            xadd.arg(name).arg(value);
        }
        pipe.add_command(xadd).ignore();
    }
    let mut conn = shared.redis.get().await?;
    pipe.query_async::<()>(&mut conn).await?;
    drop(conn);
    crate::pause::reached("relay.published").await;
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let streams: Vec<String> = rows.iter().map(|r| r.stream.clone()).collect();
    sqlx::query("DELETE FROM outbox WHERE (event_seq, stream) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))")
        .bind(&seqs)
        .bind(&streams)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    metrics::counter!("relay_events_total").increment(rows.len() as u64);
    let now = Utc::now();
    for row in &rows {
        let lag = (now - row.occurred_at).to_std().unwrap_or_default();
        metrics::histogram!("relay_lag_seconds").record(lag.as_secs_f64());
    }
    Ok((rows.len(), rows.iter().map(|r| r.seq).max()))
}

/// Outbox rows not yet published (for the backlog gauge).
pub async fn backlog(shared: &Shared) -> anyhow::Result<i64> {
    let mut tx = shared.db.begin().await?;
    sqlx::query("SELECT set_config('role', $1, true)").bind(xentri_core::roles::RELAY).execute(&mut *tx).await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(count)
}
