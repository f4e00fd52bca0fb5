//! Bounded purges of the tables that would otherwise grow without end:
//! expired idempotency keys, and the processed records of Postgres-store
//! groups past their retention.
//!
//! A purge deletes at most `chunk_rows` rows per transaction, oldest first,
//! and commits each chunk before it starts the next. One `DELETE` of a whole
//! backlog would be one long write transaction: every tenant's list exposes
//! only rows older than every running transaction (the commit horizon), so
//! lists would stop showing new events until it committed, and an append
//! reusing an expired key would wait on its row lock for as long, holding up
//! the appends batched with it. A chunk is short, and it waits for a row lock
//! at most [`LOCK_TIMEOUT`] before it gives way to the append holding it.
//!
//! Chunks run as the worker role, which may delete only expired keys
//! (row-level security) and processed records (a `DELETE` grant, migration
//! `20261129000011`). No advisory lock is taken: two purges at once delete
//! disjoint rows or wait for each other's chunk, row by row in `ctid` order.

use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

use sqlx::PgPool;

/// How long a chunk waits for a row lock before it rolls back and is tried
/// again: shorter than PostgreSQL's `deadlock_timeout` (1 s), so a purge
/// chunk and an append batch that lock two keys in opposite orders end with
/// the chunk giving way, not with a deadlock error for the append.
pub const LOCK_TIMEOUT: &str = "200ms";
/// Chunks in a row that may give way on a lock before the purge fails.
const LOCK_RETRIES: u32 = 5;
/// The pause before a chunk that gave way is tried again.
const LOCK_BACKOFF: Duration = Duration::from_millis(50);
/// `lock_not_available`: what a chunk meets when its lock wait times out.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// What a purge deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// Idempotency keys of every org past their `expires_at`.
    ExpiredIdempotencyKeys,
    /// Processed records (`processed_events`) older than `retention`.
    ProcessedEvents {
        /// How long a record is kept after its event was handled.
        retention: Duration,
    },
}

impl Purge {
    /// The table it deletes from: the `table` label of the metric and logs.
    pub fn table(&self) -> &'static str {
        match self {
            Purge::ExpiredIdempotencyKeys => "idempotency_keys",
            Purge::ProcessedEvents { .. } => "processed_events",
        }
    }
}

/// How far a purge got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Rows deleted (and committed) so far.
    pub rows: u64,
    /// Chunks committed so far, each its own transaction.
    pub chunks: u64,
    /// Nothing is left to delete: the last chunk was not full.
    pub complete: bool,
}

/// A purge that stopped on an error; the chunks before it stay committed.
#[derive(Debug, thiserror::Error)]
#[error("purge of {table} failed after {} rows in {} chunks: {source}", progress.rows, progress.chunks)]
pub struct PurgeError {
    /// The table.
    pub table: &'static str,
    /// What was deleted before the error.
    pub progress: Progress,
    /// The database error.
    #[source]
    pub source: sqlx::Error,
}

/// Deletes what `purge` names, at most `chunk_rows` rows per transaction, as
/// `role`, until a chunk is not full. After each full chunk (committed, no
/// transaction open) `after_chunk` is awaited with the progress so far;
/// [`ControlFlow::Break`] stops the purge there, incomplete. Each chunk's rows
/// are counted in `worker_purged_rows_total{table}` as it commits.
pub async fn run<F, Fut>(
    db: &PgPool,
    role: &str,
    purge: Purge,
    chunk_rows: u32,
    mut after_chunk: F,
) -> Result<Progress, PurgeError>
where
    F: FnMut(Progress) -> Fut,
    Fut: Future<Output = ControlFlow<()>>,
{
    let deleted_rows = metrics::counter!("worker_purged_rows_total", "table" => purge.table());
    let mut progress = Progress::default();
    let mut gave_way = 0;
    loop {
        let rows = match chunk(db, role, purge, chunk_rows).await {
            Ok(rows) => rows,
            Err(error) if is_lock_timeout(&error) && gave_way < LOCK_RETRIES => {
                gave_way += 1;
                tracing::debug!(table = purge.table(), "purge chunk gave way to a row lock; trying again");
                tokio::time::sleep(LOCK_BACKOFF).await;
                continue;
            }
            Err(source) => return Err(PurgeError { table: purge.table(), progress, source }),
        };
        gave_way = 0;
        deleted_rows.increment(rows);
        progress.rows += rows;
        progress.chunks += 1;
        if rows < u64::from(chunk_rows) {
            progress.complete = true;
            return Ok(progress);
        }
        if after_chunk(progress).await.is_break() {
            return Ok(progress);
        }
    }
}

/// One chunk in its own transaction: the rows it deleted.
async fn chunk(db: &PgPool, role: &str, purge: Purge, chunk_rows: u32) -> Result<u64, sqlx::Error> {
    let mut tx = xentri_core::db::begin_as(db, role, None).await?;
    sqlx::query(xentri_core::sql::SET_LOCK_TIMEOUT).bind(LOCK_TIMEOUT).execute(&mut *tx).await?;
    // One chunk: the oldest rows first (by the index on the column the
    // condition reads), found by `ctid` so the `DELETE` is a TID scan. The
    // condition is repeated on the outer statement: a key an append refreshed
    // while the chunk waited for it is checked again and kept.
    let chunk = i64::from(chunk_rows);
    let query = match purge {
        Purge::ExpiredIdempotencyKeys => sqlx::query(xentri_core::sql::PURGE_EXPIRED_IDEMPOTENCY_KEYS).bind(chunk),
        Purge::ProcessedEvents { retention } => {
            sqlx::query(xentri_core::sql::PURGE_PROCESSED_EVENTS).bind(chunk).bind(retention.as_secs_f64())
        }
    };
    let deleted = query.execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == LOCK_NOT_AVAILABLE)
}

/// Logs how a purge run ended: rows deleted, chunks, whether rows are left.
pub fn log_finished(purge: Purge, progress: &Progress, elapsed: Duration) {
    tracing::info!(
        table = purge.table(),
        purged = progress.rows,
        chunks = progress.chunks,
        complete = progress.complete,
        elapsed_ms = elapsed.as_millis() as u64,
        "purge finished"
    );
}
