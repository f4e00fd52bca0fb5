//! Group commit for appends.
//!
//! A few writer tasks take appends off one queue. Each takes what is waiting,
//! up to a batch, and writes it with one call of the `append_events` database
//! function: one round trip, one transaction, one commit for the whole batch.
//! An append that finds a writer idle goes alone, at once; under load, appends
//! that arrive while others are being written share the next commit, so the
//! per-transaction work (round trip, wake-ups, commit) is paid once per batch.
//!
//! Every item still runs under its own org: `append_events` sets `app.org_id`
//! to the item's org before writing its rows, and row-level security checks
//! each row against it.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use xentri_core::stream::FlatEvent;

use crate::db::Db;

/// One append: an event with its payload serialised, and its idempotency key.
#[derive(Debug, Clone)]
pub struct AppendItem {
    /// The event; its `seq` is ignored (PostgreSQL assigns it).
    pub event: FlatEvent,
    /// The idempotency key.
    pub key: String,
    /// The request's hash, stored with the key.
    pub request_hash: Vec<u8>,
}

/// What happened to one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored, at this `seq`.
    Created(i64),
    /// Another request with the same key is still in flight.
    KeyInFlight,
    /// The key already has a live answer.
    KeyAnswered,
}

/// Why an append was not written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// PostgreSQL refused or could not be reached; shared by every item of
    /// the batch it failed.
    #[error(transparent)]
    Database(Arc<sqlx::Error>),
    /// The writers have stopped (the api is shutting down).
    #[error("the appender has stopped")]
    Stopped,
}

/// How batches are formed.
#[derive(Debug, Clone)]
pub struct AppenderConfig {
    /// The stream every appended event is relayed to.
    pub stream: String,
    /// How long idempotency keys live.
    pub key_ttl_secs: u64,
    /// Writer tasks, each holding at most one connection at a time.
    pub writers: usize,
    /// Most appends in one batch.
    pub batch_max: usize,
}

struct Pending {
    item: AppendItem,
    reply: oneshot::Sender<Result<Outcome, AppendError>>,
}

/// Queues appends for the writer tasks. Cheap to clone.
#[derive(Clone)]
pub struct Appender {
    queue: mpsc::Sender<Pending>,
}

impl Appender {
    /// Starts the writer tasks. They end once every `Appender` is dropped and
    /// the queue is empty.
    pub fn spawn(db: Db, config: AppenderConfig) -> Self {
        let writers = config.writers.max(1);
        let batch_max = config.batch_max.max(1);
        let (queue, receiver) = mpsc::channel(writers * batch_max * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let config = Arc::new(AppenderConfig { writers, batch_max, ..config });
        for _ in 0..writers {
            tokio::spawn(write_batches(db.clone(), config.clone(), receiver.clone()));
        }
        Self { queue }
    }

    /// Appends waiting for a writer.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Appends `item` with the next batch and waits for its commit.
    pub async fn append(&self, item: AppendItem) -> Result<Outcome, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Pending { item, reply }).await.map_err(|_| AppendError::Stopped)?;
        answer.await.map_err(|_| AppendError::Stopped)?
    }
}

async fn write_batches(db: Db, config: Arc<AppenderConfig>, receiver: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let mut batch = Vec::with_capacity(config.batch_max);
    loop {
        {
            // One writer waits for the queue at a time; it takes the first
            // append and whatever else is already waiting.
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut batch, config.batch_max).await == 0 {
                return;
            }
        }
        let batch = dedupe_keys(std::mem::take(&mut batch));
        write(&db, &config, batch).await;
    }
}

/// Two appends with one key in one batch: the second is told the first is in
/// flight, as it would be by the key's lock in separate transactions.
fn dedupe_keys(batch: Vec<Pending>) -> Vec<Pending> {
    let mut seen = HashSet::with_capacity(batch.len());
    let mut kept = Vec::with_capacity(batch.len());
    for pending in batch {
        if seen.insert((pending.item.event.org_id, pending.item.key.clone())) {
            kept.push(pending);
        } else {
            let _ = pending.reply.send(Ok(Outcome::KeyInFlight));
        }
    }
    kept
}

async fn write(db: &Db, config: &AppenderConfig, batch: Vec<Pending>) {
    metrics::histogram!("api_append_batch_size").record(batch.len() as f64);
    // One session for the batch and any retry of its items: PostgreSQL sends a
    // statement's error before it has aborted the transaction and released its
    // key locks, so a retry on another session could find its own key still
    // locked (and answer 409); on the same session it runs after the abort.
    let (pool, _) = db.scoped();
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(error) => {
            let error = AppendError::Database(Arc::new(error));
            for pending in batch {
                let _ = pending.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    match call(&mut conn, db, config, &batch).await {
        Ok(outcomes) => {
            for (pending, outcome) in batch.into_iter().zip(outcomes) {
                let _ = pending.reply.send(Ok(outcome));
            }
        }
        // A statement error aborts the whole transaction, so nothing of the
        // batch was committed: each item is tried on its own, and one bad
        // append cannot fail the others.
        Err(AppendError::Database(error)) if matches!(*error, sqlx::Error::Database(_)) && batch.len() > 1 => {
            for pending in batch {
                let outcome = call(&mut conn, db, config, std::slice::from_ref(&pending)).await;
                let _ = pending.reply.send(outcome.map(|mut outcomes| outcomes.remove(0)));
            }
        }
        Err(error) => {
            // The database unreachable, or a lone append's own error: every
            // item gets that answer.
            for pending in batch {
                let _ = pending.reply.send(Err(error.clone()));
            }
        }
    }
}

/// One call of `append_events`: an outcome per item, in order.
async fn call(
    conn: &mut sqlx::PgConnection,
    db: &Db,
    config: &AppenderConfig,
    batch: &[Pending],
) -> Result<Vec<Outcome>, AppendError> {
    let items = batch.iter().map(|p| &p.item);
    let events = items.clone().map(|i| &i.event);
    let (_, role) = db.scoped();
    let rows: Vec<(i32, bool, Option<i64>)> = sqlx::query_as(
        "SELECT item, claimed, seq
           FROM append_events($1, $2, $3, $4, $5, $6, $7, $8::json[], $9, $10, $11, $12, $13, $14)",
    )
    .bind(role)
    .bind(events.clone().map(|e| e.org_id).collect::<Vec<_>>())
    .bind(items.clone().map(|i| i.key.as_str()).collect::<Vec<_>>())
    .bind(items.clone().map(|i| i.request_hash.as_slice()).collect::<Vec<_>>())
    .bind(config.key_ttl_secs as f64)
    .bind(events.clone().map(|e| e.id).collect::<Vec<_>>())
    .bind(events.clone().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(events.clone().map(|e| e.payload.as_str()).collect::<Vec<_>>())
    .bind(events.clone().map(|e| e.actor.as_str()).collect::<Vec<_>>())
    .bind(events.clone().map(|e| e.trace_id.as_str()).collect::<Vec<_>>())
    .bind(events.clone().map(|e| e.correlation_id.as_str()).collect::<Vec<_>>())
    .bind(events.clone().map(|e| e.causation_id.as_deref()).collect::<Vec<_>>())
    .bind(events.clone().map(|e| e.occurred_at).collect::<Vec<_>>())
    .bind(config.stream.as_str())
    .fetch_all(conn)
    .await
    .map_err(|e| AppendError::Database(Arc::new(e)))?;
    let mut outcomes = vec![None; batch.len()];
    for (item, claimed, seq) in rows {
        let slot = usize::try_from(item).ok().and_then(|i| i.checked_sub(1)).and_then(|i| outcomes.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(match (claimed, seq) {
                (false, _) => Outcome::KeyInFlight,
                (true, None) => Outcome::KeyAnswered,
                (true, Some(seq)) => Outcome::Created(seq),
            });
        }
    }
    outcomes.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| {
        AppendError::Database(Arc::new(sqlx::Error::Protocol("append_events left an item unanswered".into())))
    })
}
