//! The retry policy: exponential backoff with jitter (backon), from
//! `[worker.retry]`, and a sleep that gives way to shutdown.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;
use xentri_core::settings::RetrySettings;

/// The delays between attempts: `max_attempts - 1` of them.
pub fn delays(settings: &RetrySettings) -> impl Iterator<Item = Duration> + Send + use<> {
    let mut builder = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(settings.base_ms))
        .with_factor(settings.factor)
        .with_max_delay(Duration::from_millis(settings.max_ms))
        .with_max_times(settings.max_attempts.saturating_sub(1) as usize);
    if settings.jitter {
        builder = builder.with_jitter();
    }
    builder.build()
}

/// The longest wait between two tries while PostgreSQL or Redis is away.
pub const OUTAGE_MAX_DELAY: Duration = Duration::from_secs(5);

/// The waits while PostgreSQL or Redis is away: 100 ms doubling up to
/// [`OUTAGE_MAX_DELAY`], for as long as it takes.
pub fn outage_delays() -> impl Iterator<Item = Duration> + Send + use<> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_factor(2.0)
        .with_max_delay(OUTAGE_MAX_DELAY)
        .without_max_times()
        .with_jitter()
        .build()
}

/// Whether a handler's failure is PostgreSQL or Redis being away (connection
/// refused or lost, no connection or answer in time, the server shutting down,
/// starting or loading its data), anywhere in its chain of causes. Handlers
/// keep the error as a cause (`HandlerError::Transient(error.into())`) for
/// this to see it; a message alone does not count.
pub fn dependency_away(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<sqlx::Error>().is_some_and(xentri_core::db::unavailable)
            || cause.downcast_ref::<redis::RedisError>().is_some_and(redis_away)
            || cause.downcast_ref::<deadpool_redis::PoolError>().is_some_and(|error| match error {
                deadpool_redis::PoolError::Timeout(_) | deadpool_redis::PoolError::Closed => true,
                deadpool_redis::PoolError::Backend(error) => redis_away(error),
                _ => false,
            })
    })
}

fn redis_away(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(error.code(), Some("LOADING" | "MASTERDOWN"))
}

/// Sleeps `delay`; `false` when shutdown came first.
pub async fn sleep(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap() {
        let settings = RetrySettings { base_ms: 100, factor: 3.0, max_ms: 500, max_attempts: 4, jitter: false };
        let got: Vec<u64> = delays(&settings).map(|d| d.as_millis() as u64).collect();
        assert_eq!(got, [100, 300, 500]);
    }

    #[test]
    fn only_an_unreachable_database_or_redis_counts_as_away() {
        assert!(dependency_away(&anyhow::Error::new(sqlx::Error::PoolTimedOut)));
        let lost = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(dependency_away(&anyhow::Error::new(lost).context("handler")), "found under a context");
        assert!(!dependency_away(&anyhow::Error::new(sqlx::Error::RowNotFound)));
        assert!(!dependency_away(&anyhow::anyhow!("connection refused")), "a message is not a cause");
        let refused = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(dependency_away(&anyhow::Error::new(refused)));
        let backend = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(dependency_away(&anyhow::Error::new(deadpool_redis::PoolError::Backend(backend))));
        let wrong_type = redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "not a stream"));
        assert!(!dependency_away(&anyhow::Error::new(wrong_type)));
    }

    #[test]
    fn outage_waits_never_run_out_and_stay_under_the_cap() {
        let waits: Vec<Duration> = outage_delays().take(50).collect();
        assert_eq!(waits.len(), 50);
        assert!(waits.iter().all(|w| *w <= OUTAGE_MAX_DELAY * 2), "{waits:?}");
    }

    #[test]
    fn jitter_stays_within_one_extra_delay() {
        let settings = RetrySettings { base_ms: 100, factor: 2.0, max_ms: 10_000, max_attempts: 3, jitter: true };
        let got: Vec<u64> = delays(&settings).map(|d| d.as_millis() as u64).collect();
        assert_eq!(got.len(), 2);
        assert!((100..=200).contains(&got[0]) && (200..=400).contains(&got[1]), "{got:?}");
    }
}
