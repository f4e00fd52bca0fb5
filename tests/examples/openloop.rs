//! An open-loop load generator for `scripts/bench api`: requests go out on a
//! fixed schedule whatever the answers so far, so a slow answer cannot hold
//! back the requests behind it (closed-loop tools such as wrk wait, and so
//! under-report latency). It prints one JSON line with its figures.
//!
//! ```text
//! openloop --url http://127.0.0.1:18080 --kind write|read --tokens FILE
//!          [--rate 1000] [--seconds 30] [--warmup-seconds 2] [--in-flight 4096]
//! ```
//!
//! - **Schedule**: request `i` is due at `i / rate` seconds. A warm-up at the
//!   same rate comes first (connections opened, caches warm) and is reported
//!   apart; the measured run follows at once.
//! - **Latency** is counted from when a request was *due*, not from when it
//!   went out, to when its whole answer was read: time a request waited for
//!   the generator itself (a late timer, a full in-flight budget) is in it.
//! - **Requests**: `write` posts `POST /api/v1/events` with a ~500-byte body
//!   and a fresh `Idempotency-Key` (as `scripts/bench.d/write.lua`); `read`
//!   is `GET /api/v1/events?limit=50` (as `read.lua`). The tokens in `FILE`
//!   (one per line, one per org) are used in rotation.

// A bench driver: a run that cannot go on panics with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use xentri_e2e::load::Sending;
use xentri_e2e::{flag, number_flag, percentile_ms};

/// A request sent this much after it was due counts as late.
const LATE_AFTER: Duration = Duration::from_millis(2);
/// A request gets this long before it counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
}

/// What one phase (warm-up or the measured run) saw.
#[derive(Default)]
struct Answers {
    /// Latency of every 2xx answer, µs from due to the end of the body.
    ok_us: Vec<u64>,
    /// Every other status, by status.
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer.
    errors: u64,
    first_error: Option<String>,
}

struct Load {
    client: reqwest::Client,
    url: String,
    kind: Kind,
    tokens: Vec<String>,
    run: String,
    /// ~330 bytes of filler (as write.lua): with the other fields the body is
    /// ~500 bytes. Built once, not per request.
    bio: String,
    permits: Arc<Semaphore>,
    in_flight: usize,
}

impl Load {
    fn request(&self, i: u64) -> reqwest::RequestBuilder {
        let token = &self.tokens[(i % self.tokens.len() as u64) as usize];
        match self.kind {
            Kind::Read => self.client.get(&self.url).bearer_auth(token),
            Kind::Write => {
                let body = format!(
                    r#"{{"type":"xentri.bench.sample.v1","payload":{{"soul_id":"soul-ol-{i}","display_name":"Bench Soul {}","revision":{i},"locale":"en-GB","tags":["bench","load","soul"],"bio":"{}"}}}}"#,
                    i % 1000,
                    self.bio
                );
                self.client
                    .post(&self.url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("openloop-{}-{i}", self.run))
                    .body(body)
            }
        }
    }

    /// Sends `rate * seconds` requests on schedule, numbering them from
    /// `first`; waits for every answer.
    async fn phase(&self, first: u64, rate: u64, seconds: u64, answers: &Arc<Mutex<Answers>>) -> Sending {
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
                    self.permits.clone().acquire_owned().await.unwrap_or_else(|e| panic!("{e}"))
                }
            };
            let lag = Instant::now().saturating_duration_since(due);
            if lag > LATE_AFTER {
                late += 1;
            }
            max_lag = max_lag.max(lag);
            let request = self.request(first + n);
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
                    Ok(status) if status.is_success() => answers.ok_us.push(took),
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
        let _all = self.permits.acquire_many(self.in_flight as u32).await.unwrap_or_else(|e| panic!("{e}"));
        Sending { sent: count, late, waited_for_slot, max_lag_ms: max_lag.as_secs_f64() * 1000.0, seconds }
    }
}

fn figures(sending: &Sending, answers: Answers) -> serde_json::Value {
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

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (Some(base), Some(kind), Some(tokens_file)) = (flag("--url"), flag("--kind"), flag("--tokens")) else {
        eprintln!(
            "usage: openloop --url URL --kind write|read --tokens FILE [--rate 1000] [--seconds 30] \
             [--warmup-seconds 2] [--in-flight 4096]"
        );
        std::process::exit(2);
    };
    let kind = match kind.as_str() {
        "write" => Kind::Write,
        "read" => Kind::Read,
        other => panic!("--kind is write or read, not {other}"),
    };
    let (rate, seconds, warmup) =
        (number_flag("--rate", 1000), number_flag("--seconds", 30), number_flag("--warmup-seconds", 2));
    let in_flight = number_flag("--in-flight", 4096) as usize;
    assert!(rate > 0 && seconds > 0 && in_flight > 0, "rate, seconds and in-flight must be ≥ 1");
    let tokens: Vec<String> = std::fs::read_to_string(&tokens_file)
        .unwrap_or_else(|e| panic!("{tokens_file}: {e}"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!tokens.is_empty(), "{tokens_file} holds no token");
    let path = match kind {
        Kind::Write => "/api/v1/events",
        Kind::Read => "/api/v1/events?limit=50",
    };
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(in_flight)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let load = Load {
        client,
        url: format!("{}{path}", base.trim_end_matches('/')),
        kind,
        tokens,
        run: uuid::Uuid::new_v4().simple().to_string(),
        bio: "Soul profile text for the benchmark. ".repeat(9),
        permits: Arc::new(Semaphore::new(in_flight)),
        in_flight,
    };

    let warm = Arc::new(Mutex::new(Answers::default()));
    let warm_sending = load.phase(0, rate, warmup.max(1), &warm).await;
    let measured = Arc::new(Mutex::new(Answers::default()));
    let sending = load.phase(rate * warmup.max(1), rate, seconds, &measured).await;
    let take = |a: &Arc<Mutex<Answers>>| std::mem::take(&mut *a.lock().unwrap_or_else(|e| e.into_inner()));

    let line = serde_json::json!({
        "scenario": "openloop",
        "kind": if kind == Kind::Write { "write" } else { "read" },
        "path": path,
        "rate": rate,
        "seconds": seconds,
        "in_flight": in_flight,
        "late_after_ms": LATE_AFTER.as_millis() as u64,
        "warmup": figures(&warm_sending, take(&warm)),
        "measured": figures(&sending, take(&measured)),
    });
    println!("{line}");
}
