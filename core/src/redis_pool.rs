//! The Redis pool constructor, with every wait bounded by `redis.timeout_ms`.

use deadpool_redis::{Config, Pool, PoolConfig, QueueMode, Runtime, Timeouts};
use secrecy::ExposeSecret;

use crate::settings::RedisSettings;

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedisPoolError {
    /// The URL does not parse (not shown: it may hold a password).
    #[error("configuration error: invalid value for `redis.url`: not a Redis URL")]
    InvalidUrl(#[source] deadpool_redis::CreatePoolError),
}

/// A pool that connects on first use; waiting for, creating and recycling a
/// connection are each bounded.
///
/// The most recently returned connection is handed out first (LIFO): the few
/// connections the load needs stay in use and the rest idle. Handed out in
/// turn (FIFO), every connection would sooner or later carry the largest
/// command or reply, and each keeps buffers as large as the largest it has
/// carried.
pub fn connect_lazy(settings: &RedisSettings) -> Result<Pool, RedisPoolError> {
    let mut config = Config::from_url(settings.url.expose_secret());
    let mut pool = PoolConfig::new(settings.pool_size);
    let timeout = Some(settings.timeout());
    pool.timeouts = Timeouts { wait: timeout, create: timeout, recycle: timeout };
    pool.queue_mode = QueueMode::Lifo;
    config.pool = Some(pool);
    config.create_pool(Some(Runtime::Tokio1)).map_err(RedisPoolError::InvalidUrl)
}
