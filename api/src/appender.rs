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
use xentri_core::NewEvent;
use xentri_core::store::{AppendOutcome, NewEventRecord};

use crate::db::{AppendSession, Db};

/// One append: an event and its idempotency key.
#[derive(Debug, Clone)]
pub struct AppendItem {
    /// The event.
    pub event: NewEvent,
    /// The idempotency key.
    pub key: String,
    /// The request's hash, stored with the key.
    pub request_hash: Vec<u8>,
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
    reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
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
    pub async fn append(&self, item: AppendItem) -> Result<AppendOutcome, AppendError> {
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
            let _ = pending.reply.send(Ok(AppendOutcome::KeyInFlight));
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
    let mut session = match db.append_session().await {
        Ok(conn) => conn,
        Err(error) => {
            let error = AppendError::Database(Arc::new(error));
            for pending in batch {
                let _ = pending.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    match call(&mut session, config, &batch).await {
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
                let outcome = call(&mut session, config, std::slice::from_ref(&pending)).await;
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
    session: &mut AppendSession,
    config: &AppenderConfig,
    batch: &[Pending],
) -> Result<Vec<AppendOutcome>, AppendError> {
    let records: Vec<NewEventRecord<'_>> = batch
        .iter()
        .map(|pending| {
            let item = &pending.item;
            item.event.record(Some((&item.key, &item.request_hash)))
        })
        .collect();
    session
        .append_events(&config.stream, config.key_ttl_secs as f64, &records)
        .await
        .map_err(|e| AppendError::Database(Arc::new(e)))
}
