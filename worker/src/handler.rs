//! What a handler is: the group it belongs to, the streams and event types it
//! takes, and how it handles an event: a Redis-store handler with a
//! [`RedisDelivery`], a Postgres-store handler inside the transaction that
//! records the event, with a [`PgDelivery`]. Either succeeds, fails
//! transiently (retry) or fails permanently (dead-letter). Only the runtime
//! decides ack, retry and DLQ.

use std::future::Future;
use std::pin::Pin;

use sqlx::PgConnection;
use xentri_core::StoredEvent;
use xentri_core::dlq::DeadLetter;
use xentri_core::stream::Keys;

/// A boxed, sendable future (handlers are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the runtime records that a group processed an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// In Redis, with a TTL (`worker.processed_ttl_secs`): for handlers whose
    /// effect is outside PostgreSQL.
    Redis,
    /// In PostgreSQL, in the handler's own transaction: the handler's writes
    /// and the record commit together, so the effect happens exactly once.
    Postgres,
}

/// The Redis processed record of `event_id` for `group` (a [`Store::Redis`]
/// group): `processed:{group}:{event_id}` under the key prefix.
pub fn redis_processed_key(keys: &Keys, group: &str, event_id: &str) -> String {
    keys.key(&format!("processed:{group}:{event_id}"))
}

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying (a timeout, a dependency briefly down).
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Retrying cannot help (invalid content, a rule broken): dead-letter now.
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
}

impl HandlerError {
    /// A transient failure with this message.
    pub fn transient(message: impl std::fmt::Display) -> Self {
        Self::Transient(anyhow::anyhow!("{message}"))
    }

    /// A permanent failure with this message.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::Permanent(anyhow::anyhow!("{message}"))
    }
}

/// One delivery of an event to a Redis-store handler.
pub struct RedisDelivery<'a> {
    /// The event.
    pub event: &'a StoredEvent,
    /// The stream it came from (without the key prefix).
    pub stream: &'a str,
    /// The stream entry id.
    pub entry_id: &'a str,
    /// 1 for the first attempt in this process, then 2, 3, …
    pub attempt: u32,
    /// The Redis pool.
    pub redis: &'a deadpool_redis::Pool,
    /// Key naming (the configured prefix).
    pub keys: &'a Keys,
    /// The PostgreSQL pool, for a handler whose work is many short
    /// transactions of its own (the purge jobs), never one long one.
    pub db: &'a sqlx::PgPool,
}

/// One delivery of an event to a Postgres-store handler, inside the
/// transaction that records the event as processed.
pub struct PgDelivery<'a> {
    /// The event.
    pub event: &'a StoredEvent,
    /// The stream it came from (without the key prefix).
    pub stream: &'a str,
    /// The stream entry id.
    pub entry_id: &'a str,
    /// 1 for the first attempt in this process, then 2, 3, …
    pub attempt: u32,
    /// The lane slot the transaction runs in: no other transaction of this
    /// group in this process holds it meanwhile. Rows every event updates
    /// (counters) keyed by it are never waited for by a concurrent
    /// transaction of the group (see [`crate::runtime::slots`]).
    pub slot: u16,
    /// The transaction to write in, running as the worker role with
    /// `app.org_id` set to the event's org. The event's processed record is
    /// already in it: what the handler writes commits with the record, or
    /// neither does.
    pub tx: &'a mut PgConnection,
}

/// The events of a read batch, of any number of orgs, for a Postgres-store
/// handler to write in one go.
pub struct Batch<'a> {
    /// The events, in (org, type, seq) order; none of them processed before.
    pub events: &'a [&'a StoredEvent],
    /// The lane slot the transaction runs in (as [`PgDelivery::slot`]).
    pub slot: u16,
    /// The transaction, running as the worker role with their processed
    /// records already in it. **No org is set**: the handler writes each
    /// org's rows under that org's `app.org_id`, in a statement that sets it
    /// per org as `append_events` does, so that row-level security checks
    /// every row (see `count_events` in the migrations).
    pub tx: &'a mut PgConnection,
}

/// How a group handles its events, and so where the runtime records them as
/// processed: each store has its own delivery, so a Postgres-store handler
/// always gets its transaction.
pub enum Handling<'h> {
    /// Recorded in Redis ([`Store::Redis`]): the handler gets a [`RedisDelivery`].
    Redis(&'h dyn RedisStoreHandler),
    /// Recorded in PostgreSQL ([`Store::Postgres`]): the handler gets a
    /// [`PgDelivery`], whose transaction holds the record.
    Postgres(&'h dyn PostgresStoreHandler),
}

impl Handling<'_> {
    /// Where "processed" is recorded.
    pub fn store(&self) -> Store {
        match self {
            Self::Redis(_) => Store::Redis,
            Self::Postgres(_) => Store::Postgres,
        }
    }
}

/// A consumer-group handler.
pub trait Handler: Send + Sync + 'static {
    /// The consumer group (one per handler).
    fn group(&self) -> &str;

    /// The streams it reads (logical names, without the key prefix).
    fn streams(&self) -> Vec<String>;

    /// Whether it takes events of this type; others are acked and skipped.
    fn accepts(&self, event_type: &str) -> bool;

    /// How it handles an event (usually `Handling::Redis(self)` or
    /// `Handling::Postgres(self)`), which says where "processed" is recorded.
    fn handling(&self) -> Handling<'_>;

    /// Called once when one of its entries is dead-lettered (for example to
    /// mark a domain object failed, in a transaction of its own on `db`). A
    /// failure is logged; it never loops.
    fn on_dead_letter<'a>(
        &'a self,
        _event: Option<&'a StoredEvent>,
        _letter: &'a DeadLetter,
        _db: &'a sqlx::PgPool,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// The handling of a [`Store::Redis`] group: its effect is outside
/// PostgreSQL, so it is recorded as processed in Redis, after it succeeded.
pub trait RedisStoreHandler: Send + Sync {
    /// Handles one delivery.
    fn handle<'a>(&'a self, delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// The handling of a [`Store::Postgres`] group: its effect is written in the
/// transaction that records the event as processed.
pub trait PostgresStoreHandler: Send + Sync {
    /// Handles one delivery, writing in `delivery.tx`.
    fn handle<'a>(&'a self, delivery: PgDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>>;

    /// For a handler whose effect of a whole read batch can be written in one
    /// round trip: handles `batch` all or nothing (an error rolls back the
    /// whole read batch, and each of its entries is then handled on its own
    /// with [`PostgresStoreHandler::handle`]). The batch's transaction holds
    /// its transaction id — and so the commit horizon the relay publishes
    /// below — from its first write to its commit: one statement for the
    /// batch instead of an org switch and a statement per org keeps that
    /// short. `None`, the default: the runtime calls `handle` for each event,
    /// under its org.
    fn handle_batch<'a>(&'a self, _batch: Batch<'a>) -> Option<BoxFuture<'a, Result<(), HandlerError>>> {
        None
    }
}
