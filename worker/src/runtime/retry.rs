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
    fn jitter_stays_within_one_extra_delay() {
        let settings = RetrySettings { base_ms: 100, factor: 2.0, max_ms: 10_000, max_attempts: 3, jitter: true };
        let got: Vec<u64> = delays(&settings).map(|d| d.as_millis() as u64).collect();
        assert_eq!(got.len(), 2);
        assert!((100..=200).contains(&got[0]) && (200..=400).contains(&got[1]), "{got:?}");
    }
}
