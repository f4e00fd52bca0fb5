//! Awaiting a condition with a deadline: tests poll what they wait for
//! instead of sleeping a fixed time, so they are as fast as the system and
//! say what was missing when it is not.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen soon.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Ok`, and returns its value. Panics once
/// `within` has passed, saying what was awaited and what the last check still
/// found missing (its `Err`).
pub async fn eventually<T, F, Fut>(within: Duration, awaited: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    match poll_until(within, check).await {
        Ok(value) => value,
        Err(missing) => panic!("expected {awaited} within {within:?}, but at the deadline: {missing}"),
    }
}

/// Polls `check` until it returns `true`. Panics once `within` has passed,
/// saying what was awaited.
pub async fn wait_until<F, Fut>(within: Duration, awaited: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let check = || {
        let holds = check();
        async move { if holds.await { Ok(()) } else { Err("it does not hold yet".to_owned()) } }
    };
    eventually(within, awaited, check).await;
}

/// Polls `check` until it returns `Ok`, or until `within` has passed; then
/// returns the last check's `Err`.
pub async fn poll_until<T, F, Fut>(within: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(missing) if Instant::now() >= deadline => return Err(missing),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_condition_that_comes_to_hold_yields_its_value() {
        let checks = AtomicUsize::new(0);
        let value = eventually(DEADLINE, "the third check", || async {
            let n = checks.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 3 { Ok(n) } else { Err(format!("check {n}")) }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn a_condition_that_never_holds_reports_what_was_missing() {
        let result = poll_until(Duration::from_millis(50), || async { Err::<(), _>("still empty".to_owned()) }).await;
        assert_eq!(result, Err("still empty".to_owned()));
    }

    #[tokio::test]
    async fn a_condition_that_comes_to_be_true_ends_the_wait() {
        let checks = AtomicUsize::new(0);
        wait_until(DEADLINE, "the second check", || async { checks.fetch_add(1, Ordering::SeqCst) == 1 }).await;
        assert_eq!(checks.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    #[should_panic(expected = "expected the impossible within")]
    async fn eventually_panics_at_the_deadline() {
        wait_until(Duration::from_millis(30), "the impossible", || async { false }).await;
    }
}
