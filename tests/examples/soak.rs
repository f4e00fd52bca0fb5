//! The soak scenario's load generator, run by `scripts/bench worker --soak`
//! (release) against an api and a worker already running as processes of
//! their own. It prints one JSON line with its figures.
//!
//! ```text
//! soak --url http://127.0.0.1:18080 --api-pid P --worker-pid P
//!      [--rate 2000] [--seconds 600] [--orgs 20] [--in-flight 512]
//!      [--drain-seconds 120] [--rss-out FILE]
//!      [--api-metrics URL] [--worker-metrics URL]
//! ```
//!
//! - **Load**: `POST /api/v1/events` on a fixed schedule (open loop: request
//!   `i` is due at `i / rate` seconds, whatever the answers so far), each with
//!   its own `Idempotency-Key`, the orgs' dev tokens in rotation. At most
//!   `--in-flight` requests are outstanding; a request sent more than
//!   [`LATE_AFTER`] after it was due counts as late. Sending stops after
//!   `--seconds` whatever is left: a saturated system gets fewer requests
//!   (counted as unsent), not a longer run.
//! - **Latency**: each payload carries its send time (`sent_at_us`, µs since
//!   the epoch). The worker's `event_counts` group writes `processed_events`
//!   in the handler's transaction, `processed_at` being that transaction's
//!   `now()`: latency is `processed_at − sent_at_us`, per minute of sending.
//!   A late request's wait for its slot is not in it (the lag is reported).
//! - **Memory**: VmRSS of both processes every [`RSS_EVERY`] while sending;
//!   a least-squares slope over the samples after the warm-up (2 minutes, or
//!   20 % of a shorter run), in MiB/hour. Beside it, to tell growth from a
//!   load spike's memory: the slope through each minute's lowest sample (a
//!   leak raises every sample; memory held while a spike lasts raises only
//!   some), and the api's open sockets at each sample (each keep-alive
//!   connection holds its buffers: after a stall the client has opened more).
//!   With `--api-metrics`/`--worker-metrics` (their /metrics URLs), the
//!   allocator's live and resident bytes at each sample and their slopes too:
//!   live bytes that grow are a leak; resident bytes that grow while live
//!   bytes stay flat are memory the allocator keeps for reuse.
//! - **Completeness**: after sending, waits (at most `--drain-seconds`) for an
//!   empty outbox and an `event_counts` record of every event answered 201;
//!   counts the records written while sending, and per minute, to tell the
//!   rate the groups kept up with.
//!
//! `DATABASE_URL` names the database the api and worker use (read directly,
//! as a superuser: RLS does not apply).

// A bench driver: a run that cannot go on panics with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use uuid::Uuid;
use xentri_e2e::load::Sending;
use xentri_e2e::{flag, number_flag, percentile_ms};

/// The dev secret of `config/default.toml`, which the api accepts dev tokens for.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// A request sent this much after it was due is late.
const LATE_AFTER: Duration = Duration::from_millis(10);
/// How often RSS is sampled.
const RSS_EVERY: Duration = Duration::from_secs(10);
/// A request gets this long before it counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn epoch_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Org `n` of the bench orgs, the UUIDs `scripts/bench` uses: `00000000-0000-7000-8000-<n as 12 digits>`.
fn org(n: u64) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-7000-8000-{n:012}")).unwrap_or_else(|e| panic!("{e}"))
}

/// VmRSS of process `pid` in KiB, or `None` once it is gone.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sockets open in process `pid` (client connections, pools), or `None` once it is gone.
fn sockets(pid: u32) -> Option<u64> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        fds.filter_map(Result::ok)
            .filter(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
            })
            .count() as u64,
    )
}

/// One memory sample of a process.
#[derive(Clone, Copy, Default)]
struct Memory {
    /// VmRSS, KiB.
    rss_kib: Option<u64>,
    /// The allocator's live bytes (`heap_allocated_bytes` on its /metrics), KiB.
    allocated_kib: Option<u64>,
    /// The allocator's resident bytes (`heap_resident_bytes`), KiB.
    resident_kib: Option<u64>,
}

/// One sample of both processes, at seconds since the start of sending.
#[derive(Clone, Copy)]
struct Sample {
    at: f64,
    api: Memory,
    worker: Memory,
    /// The api's open sockets.
    api_sockets: Option<u64>,
}

/// A process to sample: its pid and, if given, its /metrics URL.
struct Watched {
    pid: u32,
    metrics: Option<String>,
}

/// The value of the unlabelled gauge `name` in a Prometheus text exposition.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The memory of `process` now: RSS from /proc, the heap gauges from its /metrics.
async fn memory(client: &reqwest::Client, process: &Watched) -> Memory {
    let text = match &process.metrics {
        Some(url) => match client.get(url).send().await {
            Ok(answer) => answer.text().await.ok(),
            Err(_) => None,
        },
        None => None,
    };
    let kib = |name: &str| text.as_deref().and_then(|t| gauge(t, name)).map(|bytes| (bytes / 1024.0) as u64);
    Memory {
        rss_kib: rss_kib(process.pid),
        allocated_kib: kib("heap_allocated_bytes"),
        resident_kib: kib("heap_resident_bytes"),
    }
}

/// Samples both processes every [`RSS_EVERY`] and once more when `stop` fires, writing each
/// sample to `out` (tab-separated) as it goes.
async fn sample_memory(
    watched: (Watched, Watched),
    started: Instant,
    mut out: Option<std::fs::File>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<Sample> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_else(|e| panic!("{e}"));
    let mut samples: Vec<Sample> = Vec::new();
    let mut ticker = tokio::time::interval(RSS_EVERY);
    if let Some(out) = &mut out {
        let _ = writeln!(
            out,
            "seconds\tapi_kib\tworker_kib\tapi_sockets\tapi_heap_allocated_kib\tworker_heap_allocated_kib\tapi_heap_resident_kib\tworker_heap_resident_kib"
        );
    }
    loop {
        // One last sample when sending ends.
        let last = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut stop => true,
        };
        let at = started.elapsed().as_secs_f64();
        // The stop can come just as a tick did.
        if last && samples.last().is_some_and(|s| at - s.at < 1.0) {
            return samples;
        }
        let (api, worker) = tokio::join!(memory(&client, &watched.0), memory(&client, &watched.1));
        let sample = Sample { at, api, worker, api_sockets: sockets(watched.0.pid) };
        if let Some(out) = &mut out {
            let show = |v: Option<u64>| v.map_or_else(|| "gone".to_owned(), |v| v.to_string());
            let _ = writeln!(
                out,
                "{:.1}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                sample.at,
                show(api.rss_kib),
                show(worker.rss_kib),
                show(sample.api_sockets),
                show(api.allocated_kib),
                show(worker.allocated_kib),
                show(api.resident_kib),
                show(worker.resident_kib),
            );
        }
        samples.push(sample);
        if last {
            return samples;
        }
    }
}

/// The least-squares line through `points` (seconds, MiB): its slope in
/// MiB/hour, the slope's standard error, and the points' scatter around the
/// line (MiB); `None` below three points.
fn slope(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let (mean_t, mean_m) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let covariance: f64 = points.iter().map(|(t, m)| (t - mean_t) * (m - mean_m)).sum();
    let variance: f64 = points.iter().map(|(t, _)| (t - mean_t) * (t - mean_t)).sum();
    let per_second = covariance / variance;
    let residuals: f64 = points.iter().map(|(t, m)| (m - (mean_m + per_second * (t - mean_t))).powi(2)).sum();
    let sd = (residuals / (n - 2.0)).sqrt();
    Some((per_second * 3600.0, sd / variance.sqrt() * 3600.0, sd))
}

/// Each whole minute's lowest point of `points` (at the time it was taken).
fn minute_floors(points: &[(f64, f64)], from: f64) -> Vec<(f64, f64)> {
    let mut floors: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for &(t, m) in points.iter().filter(|(t, _)| *t >= from) {
        let floor = floors.entry(((t - from) / 60.0) as u64).or_insert((t, m));
        if m < floor.1 {
            *floor = (t, m);
        }
    }
    floors.into_values().collect()
}

/// One memory series of one process (RSS, or one of the allocator's counts):
/// first sample, first sample at or after the warm-up,
/// last sample (MiB), and the least-squares slope after the warm-up (MiB/hour)
/// with its standard error and the samples' scatter around the fitted line
/// (MiB): how finely the run can tell growth from the scatter; and the slope
/// through each minute's lowest sample after the warm-up.
fn memory_figures(samples: &[Sample], warmup: f64, pick: impl Fn(&Sample) -> Option<u64>) -> serde_json::Value {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let points: Vec<(f64, f64)> = samples.iter().filter_map(|s| pick(s).map(|kib| (s.at, mib(kib)))).collect();
    let after: Vec<(f64, f64)> = points.iter().copied().filter(|(t, _)| *t >= warmup).collect();
    let fitted = slope(&after);
    let floors = minute_floors(&points, warmup);
    serde_json::json!({
        "start_mib": points.first().map(|p| p.1),
        "warm_mib": after.first().map(|p| p.1),
        "end_mib": points.last().map(|p| p.1),
        "growth_mib_h": fitted.map(|f| f.0),
        "growth_standard_error_mib_h": fitted.map(|f| f.1),
        "scatter_mib": fitted.map(|f| f.2),
        "floor_growth_mib_h": slope(&floors).map(|f| f.0),
        "floors_mib": floors.iter().map(|f| f.1).collect::<Vec<_>>(),
        "samples": points.len(),
        "samples_after_warmup": after.len(),
        "gone": points.len() < samples.len(),
    })
}

/// What the answers were.
#[derive(Default)]
struct Answers {
    /// Ids of the events answered 201.
    created: Vec<Uuid>,
    /// Count per status other than 201.
    other: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection error, timeout).
    errors: u64,
    /// First transport error seen, for the report.
    first_error: Option<String>,
    /// Microseconds from send to a 201 answer.
    response_us: Vec<u64>,
}

/// How one request ended.
enum Reply {
    /// 201, with the event's id and the microseconds until the answer.
    Created(Uuid, u64),
    /// Any other status.
    Status(u16),
    /// No (usable) answer.
    Failed(String),
}

/// Posts on schedule, at most `in_flight` at a time, for `seconds`; waits for
/// every answer.
async fn send_all(
    url: &str,
    rate: u64,
    seconds: u64,
    tokens: &[String],
    in_flight: usize,
    run: &str,
    answers: &Arc<Mutex<Answers>>,
) -> Sending {
    // Idle connections are closed by this side first, 15 s before the api's
    // keep-alive timeout (75 s), as a well-configured client does: the other
    // way round a request can go out on a connection the api is just closing
    // and get no answer (reqwest's default is 90 s).
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(in_flight)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let notes = "x".repeat(400);
    let permits = Arc::new(Semaphore::new(in_flight));
    let (mut late, mut waited_for_slot, mut max_lag) = (0u64, 0u64, Duration::ZERO);
    let started = tokio::time::Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut sent = 0;
    for i in 0..rate * seconds {
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        // The run lasts its duration: what a saturated system left unsent by
        // then stays unsent.
        if tokio::time::Instant::now() >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                waited_for_slot += 1;
                match tokio::time::timeout_at(end, permits.clone().acquire_owned()).await {
                    Ok(permit) => permit.unwrap_or_else(|e| panic!("{e}")),
                    Err(_) => break,
                }
            }
        };
        sent += 1;
        let lag = tokio::time::Instant::now().saturating_duration_since(due);
        if lag > LATE_AFTER {
            late += 1;
        }
        max_lag = max_lag.max(lag);
        let sent_at_us = epoch_us();
        let extra = serde_json::json!({"soak_run": run, "n": i, "sent_at_us": sent_at_us, "notes": notes});
        let body = serde_json::json!({
            "type": "xentri.soul.updated.v1",
            "payload": xentri_test_support::valid_payload_with("xentri.soul.updated.v1", extra),
        })
        .to_string();
        let request = client
            .post(url)
            .bearer_auth(&tokens[(i % tokens.len() as u64) as usize])
            .header("content-type", "application/json")
            .header("idempotency-key", format!("soak-{run}-{i}"))
            .body(body);
        let answers = answers.clone();
        tokio::spawn(async move {
            let posted_at = Instant::now();
            let outcome = match request.send().await {
                Ok(response) if response.status() == reqwest::StatusCode::CREATED => {
                    let took = posted_at.elapsed().as_micros() as u64;
                    let body: Option<serde_json::Value> = response.json().await.ok();
                    match body.as_ref().and_then(|b| b["id"].as_str()).and_then(|id| id.parse::<Uuid>().ok()) {
                        Some(id) => Reply::Created(id, took),
                        None => Reply::Failed("a 201 without an event id".to_owned()),
                    }
                }
                Ok(response) => Reply::Status(response.status().as_u16()),
                Err(error) => Reply::Failed(error.to_string()),
            };
            if let Ok(mut answers) = answers.lock() {
                match outcome {
                    Reply::Created(id, took) => {
                        answers.created.push(id);
                        answers.response_us.push(took);
                    }
                    Reply::Status(status) => *answers.other.entry(status).or_default() += 1,
                    Reply::Failed(error) => {
                        answers.errors += 1;
                        answers.first_error.get_or_insert(error);
                    }
                }
            }
            drop(permit);
        });
    }
    let sending = started.elapsed().as_secs_f64();
    // Every answer in.
    let _all = permits.acquire_many(in_flight as u32).await.unwrap_or_else(|e| panic!("{e}"));
    Sending { sent, late, waited_for_slot, max_lag_ms: max_lag.as_secs_f64() * 1000.0, seconds: sending }
}

/// Waits, at most `within`, for an empty outbox and an `event_counts` record
/// of every event in `created`; returns the outbox rows left, how many of
/// `created` have their record, and the seconds waited.
async fn drain(db: &sqlx::PgPool, created: &[Uuid], within: Duration) -> (i64, u64, f64) {
    let started = Instant::now();
    loop {
        let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(db).await.unwrap_or(-1);
        let recorded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE group_name = 'event_counts'")
                .fetch_one(db)
                .await
                .unwrap_or(0);
        let out_of_time = started.elapsed() >= within;
        // The cheap count first; the exact check once it says done.
        if (outbox == 0 && recorded >= created.len() as i64) || out_of_time {
            let handled = handled(db, created).await;
            if (outbox == 0 && handled == created.len() as u64) || out_of_time {
                return (outbox, handled, started.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How many of `created` have an `event_counts` record.
async fn handled(db: &sqlx::PgPool, created: &[Uuid]) -> u64 {
    let recorded: HashSet<Uuid> =
        sqlx::query_scalar::<_, Uuid>("SELECT event_id FROM processed_events WHERE group_name = 'event_counts'")
            .fetch_all(db)
            .await
            .unwrap_or_else(|e| panic!("reading processed_events: {e}"))
            .into_iter()
            .collect();
    created.iter().filter(|id| recorded.contains(id)).count() as u64
}

/// Latency (ms, send → `processed_at`) of the run's events per minute of
/// sending (minute 0 starts at `start_us`), and over the whole run (`None`).
async fn latency_by_minute(db: &sqlx::PgPool, run: &str, start_us: i64) -> Vec<serde_json::Value> {
    let rows: Vec<(Option<i64>, i64, f64, f64, f64, f64)> = sqlx::query_as(
        "SELECT minute, count(*),
                percentile_disc(0.50) WITHIN GROUP (ORDER BY ms),
                percentile_disc(0.95) WITHIN GROUP (ORDER BY ms),
                percentile_disc(0.99) WITHIN GROUP (ORDER BY ms),
                max(ms)
         FROM (SELECT ((s.payload->>'sent_at_us')::bigint - $2) / 60000000 AS minute,
                      ((extract(epoch FROM p.processed_at) * 1000000)::bigint
                        - (s.payload->>'sent_at_us')::bigint) / 1000.0::float8 AS ms
               FROM processed_events p JOIN system_events s ON s.id = p.event_id
               WHERE p.group_name = 'event_counts' AND s.payload->>'soak_run' = $1) AS latencies
         GROUP BY GROUPING SETS ((minute), ())
         ORDER BY minute NULLS LAST",
    )
    .bind(run)
    .bind(start_us)
    .fetch_all(db)
    .await
    .unwrap_or_else(|e| panic!("latency query: {e}"));
    rows.into_iter()
        .map(|(minute, events, p50, p95, p99, max)| {
            serde_json::json!({"minute": minute, "events": events, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max})
        })
        .collect()
}

/// The run's events handled (`processed_at`) per minute since `start_us`, and
/// how many were handled before `end_us` (while sending).
async fn handled_by_minute(db: &sqlx::PgPool, run: &str, start_us: i64, end_us: i64) -> (Vec<(i64, i64)>, i64) {
    let by_minute: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT ((extract(epoch FROM p.processed_at) * 1000000)::bigint - $2) / 60000000 AS minute, count(*)
         FROM processed_events p JOIN system_events s ON s.id = p.event_id
         WHERE p.group_name = 'event_counts' AND s.payload->>'soak_run' = $1
         GROUP BY minute ORDER BY minute",
    )
    .bind(run)
    .bind(start_us)
    .fetch_all(db)
    .await
    .unwrap_or_else(|e| panic!("handled per minute: {e}"));
    let while_sending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM processed_events p JOIN system_events s ON s.id = p.event_id
         WHERE p.group_name = 'event_counts' AND s.payload->>'soak_run' = $1
           AND p.processed_at < to_timestamp($2::float8 / 1000000)",
    )
    .bind(run)
    .bind(end_us)
    .fetch_one(db)
    .await
    .unwrap_or_else(|e| panic!("handled while sending: {e}"));
    (by_minute, while_sending)
}

/// Events of the run stored, and those of them without an `event_counts`
/// record (answered 201 or not: a timed-out request may still have committed).
async fn stored(db: &sqlx::PgPool, run: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE p.event_id IS NULL)
         FROM system_events s
         LEFT JOIN processed_events p ON p.event_id = s.id AND p.group_name = 'event_counts'
         WHERE s.payload->>'soak_run' = $1",
    )
    .bind(run)
    .fetch_one(db)
    .await
    .unwrap_or_else(|e| panic!("counting the run's events: {e}"))
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(base) = flag("--url") else {
        eprintln!(
            "usage: soak --url URL --api-pid P --worker-pid P [--rate 2000] [--seconds 600] [--orgs 20] \
             [--in-flight 512] [--drain-seconds 120] [--rss-out FILE] [--api-metrics URL] [--worker-metrics URL]"
        );
        std::process::exit(2);
    };
    let url = format!("{}/api/v1/events", base.trim_end_matches('/'));
    let (rate, seconds, orgs) = (number_flag("--rate", 2000), number_flag("--seconds", 600), number_flag("--orgs", 20));
    let (in_flight, drain_seconds) = (number_flag("--in-flight", 512) as usize, number_flag("--drain-seconds", 120));
    let watched = (
        Watched { pid: number_flag("--api-pid", 0) as u32, metrics: flag("--api-metrics") },
        Watched { pid: number_flag("--worker-pid", 0) as u32, metrics: flag("--worker-metrics") },
    );
    assert!(rate > 0 && seconds > 0 && orgs > 0 && in_flight > 0, "rate, seconds, orgs and in-flight must be ≥ 1");
    assert!(watched.0.pid > 0 && watched.1.pid > 0, "--api-pid and --worker-pid are required");
    let database_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| panic!("DATABASE_URL is required"));
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the database: {e}"));

    let run = Uuid::new_v4().simple().to_string();
    let ttl = Duration::from_secs(seconds * 3 + 3600);
    let tokens: Vec<String> = (1..=orgs)
        .map(|n| {
            xentri_api::auth::token::dev_token(DEV_SECRET, org(n), &format!("soak_user_{n}"), ttl)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let rss_out = flag("--rss-out").map(|path| std::fs::File::create(&path).unwrap_or_else(|e| panic!("{path}: {e}")));
    let warmup = (seconds as f64 * 0.2).min(120.0);
    let answers = Arc::new(Mutex::new(Answers::default()));

    let (stop_rss, rss_stopped) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    let start_us = epoch_us();
    let rss = tokio::spawn(sample_memory(watched, started, rss_out, rss_stopped));
    let sending = send_all(&url, rate, seconds, &tokens, in_flight, &run, &answers).await;
    let end_us = start_us + (sending.seconds * 1e6) as i64;
    let _ = stop_rss.send(());
    let samples = rss.await.unwrap_or_default();
    let answers = std::mem::take(&mut *answers.lock().unwrap_or_else(|e| e.into_inner()));

    let (outbox_left, handled, waited) = drain(&db, &answers.created, Duration::from_secs(drain_seconds)).await;
    let (stored, stored_unhandled) = stored(&db, &run).await;
    let mut minutes = latency_by_minute(&db, &run, start_us).await;
    let (handled_per_minute, handled_while_sending) = handled_by_minute(&db, &run, start_us, end_us).await;
    let overall = minutes.pop().filter(|m| m["minute"].is_null()).unwrap_or_default();
    // The last complete minute of sending.
    let last_minute = (((sending.seconds + 0.5) / 60.0).floor() as i64 - 1).max(0);
    let minute = |n: i64| minutes.iter().find(|m| m["minute"] == n).cloned().unwrap_or_default();
    let mut response_us = answers.response_us;
    response_us.sort_unstable();

    let scheduled = rate * seconds;
    let mut line = serde_json::json!({
        "scenario": "soak",
        "run": run,
        "rate": rate,
        "seconds": seconds,
        "orgs": orgs,
        "in_flight": in_flight,
        "scheduled": scheduled,
        "sent": sending.sent,
        "unsent": scheduled - sending.sent,
        "created": answers.created.len(),
        "non_201": answers.other.values().sum::<u64>(),
        "statuses": answers.other,
        "errors": answers.errors,
        "first_error": answers.first_error,
        "late": sending.late,
        "late_after_ms": LATE_AFTER.as_millis() as u64,
        "waited_for_slot": sending.waited_for_slot,
        "max_lag_ms": sending.max_lag_ms,
        "sending_seconds": sending.seconds,
        "achieved_rate": sending.sent as f64 / sending.seconds.max(1.0 / rate as f64),
        "response_p50_ms": percentile_ms(&response_us, 50.0),
        "response_p99_ms": percentile_ms(&response_us, 99.0),
        "handled": handled,
        "lost": answers.created.len() as u64 - handled,
        "handled_while_sending": handled_while_sending,
        "handled_rate_while_sending": handled_while_sending as f64 / sending.seconds.max(1.0 / rate as f64),
        "handled_per_minute": handled_per_minute,
        "stored": stored,
        "stored_unhandled": stored_unhandled,
        "outbox_left": outbox_left,
        "drain_waited_seconds": waited,
        "warmup_seconds": warmup,
        "rss_every_seconds": RSS_EVERY.as_secs(),
        "api": memory_figures(&samples, warmup, |s| s.api.rss_kib),
        "worker": memory_figures(&samples, warmup, |s| s.worker.rss_kib),
        "api_sockets": {
            "min": samples.iter().filter(|s| s.at >= warmup).filter_map(|s| s.api_sockets).min(),
            "max": samples.iter().filter(|s| s.at >= warmup).filter_map(|s| s.api_sockets).max(),
        },
        "first_minute": minute(0),
        "last_minute": minute(last_minute),
        "overall": overall,
        "minutes": minutes,
    });
    for (name, figures) in [
        ("api_heap_allocated", memory_figures(&samples, warmup, |s| s.api.allocated_kib)),
        ("worker_heap_allocated", memory_figures(&samples, warmup, |s| s.worker.allocated_kib)),
        ("api_heap_resident", memory_figures(&samples, warmup, |s| s.api.resident_kib)),
        ("worker_heap_resident", memory_figures(&samples, warmup, |s| s.worker.resident_kib)),
    ] {
        line[name] = figures;
    }
    println!("{line}");
}
