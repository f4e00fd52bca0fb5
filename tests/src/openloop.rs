//! Open-loop load for the bench drivers (`tests/examples/openloop.rs`,
//! `tests/examples/domain.rs`): requests go out on a fixed schedule whatever
//! the answers so far, so a slow answer cannot hold back the requests behind
//! it (closed-loop tools such as wrk wait, and so under-report latency).
//!
//! Request `i` is due at `i / rate` seconds. Latency is counted from when a
//! request was *due*, not from when it went out, to when its whole answer was
//! read: time a request waited for the generator itself (a late timer, a full
//! in-flight budget) is in it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::load::Sending;
use crate::percentile_ms;

/// What one phase (a warm-up or a measured run) saw.
#[derive(Debug, Default)]
pub struct Answers {
    /// Latency of every 2xx answer, µs from due to the end of the body.
    pub ok_us: Vec<u64>,
    /// Every other status, by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer.
    pub errors: u64,
    /// The first transport error, as it read.
    pub first_error: Option<String>,
}

/// An open-loop sender: at most `in_flight` requests outstanding, a request
/// sent more than `late_after` after it was due counts as late.
pub struct OpenLoop {
    permits: Arc<Semaphore>,
    in_flight: usize,
    late_after: Duration,
}

impl OpenLoop {
    /// A sender with `in_flight` slots.
    pub fn new(in_flight: usize, late_after: Duration) -> Self {
        Self { permits: Arc::new(Semaphore::new(in_flight)), in_flight, late_after }
    }

    /// Sends `rate * seconds` requests on schedule, request `n` built by
    /// `request(first + n)`; waits for every answer, and returns how the
    /// schedule was kept and what the answers were.
    pub async fn phase(
        &self,
        first: u64,
        rate: u64,
        seconds: u64,
        request: impl Fn(u64) -> reqwest::RequestBuilder,
    ) -> (Sending, Answers) {
        let answers = Arc::new(Mutex::new(Answers::default()));
        let (mut late, mut waited_for_slot, mut max_lag) = (0u64, 0u64, Duration::ZERO);
        let started = Instant::now();
        let count = rate * seconds;
        for n in 0..count {
            let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
            tokio::time::sleep_until(due).await;
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    waited_for_slot += 1;
                    self.permits.clone().acquire_owned().await.expect("the semaphore is never closed")
                }
            };
            let lag = Instant::now().saturating_duration_since(due);
            if lag > self.late_after {
                late += 1;
            }
            max_lag = max_lag.max(lag);
            let request = request(first + n);
            let answers = answers.clone();
            tokio::spawn(async move {
                let outcome = match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(_) => Ok(status),
                            Err(error) => Err(error.to_string()),
                        }
                    }
                    Err(error) => Err(error.to_string()),
                };
                let took = Instant::now().saturating_duration_since(due).as_micros() as u64;
                let mut answers = answers.lock().unwrap_or_else(|e| e.into_inner());
                match outcome {
                    Ok(status) if status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED => {
                        answers.ok_us.push(took)
                    }
                    Ok(status) => *answers.statuses.entry(status.as_u16()).or_default() += 1,
                    Err(error) => {
                        answers.errors += 1;
                        answers.first_error.get_or_insert(error);
                    }
                }
                drop(permit);
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        let all = self.permits.acquire_many(self.in_flight as u32).await.expect("the semaphore is never closed");
        drop(all);
        let answers = std::mem::take(&mut *answers.lock().unwrap_or_else(|e| e.into_inner()));
        (Sending { sent: count, late, waited_for_slot, max_lag_ms: max_lag.as_secs_f64() * 1000.0, seconds }, answers)
    }
}

/// The JSON figures of one phase: counts, how the schedule was kept, and the
/// latency percentiles of the answers that succeeded.
pub fn figures(sending: &Sending, answers: Answers) -> serde_json::Value {
    let mut ok = answers.ok_us;
    ok.sort_unstable();
    serde_json::json!({
        "sent": sending.sent,
        "ok": ok.len(),
        "non_2xx": answers.statuses.values().sum::<u64>(),
        "statuses": answers.statuses,
        "errors": answers.errors,
        "first_error": answers.first_error,
        "late": sending.late,
        "waited_for_slot": sending.waited_for_slot,
        "max_lag_ms": sending.max_lag_ms,
        "sending_seconds": sending.seconds,
        "p50_ms": percentile_ms(&ok, 50.0),
        "p90_ms": percentile_ms(&ok, 90.0),
        "p99_ms": percentile_ms(&ok, 99.0),
        "p999_ms": percentile_ms(&ok, 99.9),
        "max_ms": ok.last().map(|v| *v as f64 / 1000.0),
    })
}
