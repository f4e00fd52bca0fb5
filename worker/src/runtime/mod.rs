//! The consumer-group runtime.
//!
//! Each handler is a consumer group; for each stream it reads, a [`lane`] runs:
//! it creates the group (`MKSTREAM`), reads in batches (`XREADGROUP`) under a
//! per-group concurrency limit, hands each entry to [`process`], reclaims
//! entries abandoned by crashed consumers, and acknowledges through a batching
//! [`acker`]. **Invariant:** an entry is acked only after its handler succeeded
//! and its processed record is written, or after it is in the DLQ.

pub mod acker;
pub mod lane;
pub mod process;
pub mod retry;
pub mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::PgPool;
use xentri_core::Settings;
use xentri_core::stream::Keys;

/// What every part of the runtime shares.
pub struct Shared {
    /// Pooled Redis connections for short commands.
    pub redis: deadpool_redis::Pool,
    /// For dedicated connections that block (`XREADGROUP … BLOCK`).
    pub redis_client: redis::Client,
    /// PostgreSQL.
    pub db: PgPool,
    /// Key prefixing.
    pub keys: Keys,
    /// Settings, read once.
    pub settings: Arc<Settings>,
    /// This host's name, for consumer names.
    pub host: String,
    /// Consumers named so far by this process.
    next_consumer: AtomicUsize,
}

impl Shared {
    /// Builds the shared state.
    pub fn new(redis: deadpool_redis::Pool, redis_client: redis::Client, db: PgPool, settings: Arc<Settings>) -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let keys = Keys::new(settings.redis.key_prefix.clone());
        Self { redis, redis_client, db, keys, settings, host, next_consumer: AtomicUsize::new(0) }
    }

    /// A new consumer name, `{host}-{pid}-{n}`.
    pub fn consumer_name(&self) -> String {
        let n = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}-{n}", self.host, std::process::id())
    }

    /// A dedicated connection whose replies may take `block` plus a margin.
    pub async fn blocking_connection(
        &self,
        block: std::time::Duration,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.redis.timeout()))
            .set_response_timeout(Some(block + std::time::Duration::from_secs(5)));
        self.redis_client.get_multiplexed_async_connection_with_config(&config).await
    }

    /// The DLQ of work stream `stream` (logical names).
    pub fn dlq_of(&self, stream: &str) -> Option<&str> {
        let streams = &self.settings.streams;
        streams.family_of_work(stream).map(|family| streams.family(family).dlq.as_str())
    }
}
