//! The worker's benchmark driver, run by `scripts/bench worker` in release
//! mode. Each scenario prints one JSON line with its figures.
//!
//! ```text
//! stream_bench raw      [--entries 200000]   XREADGROUP COUNT 100 + XACK loop: the raw limit
//! stream_bench runtime  [--entries 200000]   the worker runtime, a no-op handler, default settings
//! stream_bench relay    [--entries 100000]   the relay draining an outbox backlog
//! stream_bench latency  [--rate 1000] [--seconds 20]
//!                                            api commit → handler start at a steady rate
//! ```
//! `DATABASE_URL` names a migrated database of its own; `REDIS_URL` the Redis
//! server. Every scenario uses a key prefix of its own and deletes its keys.

// A bench driver: a run that cannot go on panics with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;
use xentri_core::{Settings, StoredEvent};
use xentri_e2e::{TestSettings, delete_keys_under, number_flag, redis_connection, unique_key_prefix};
use xentri_test_support::EventFixture;
use xentri_worker::handler::{BoxFuture, HandlerError, RedisDelivery, RedisStoreHandler};
use xentri_worker::testing::Group;

fn sample_event(seq: i64) -> StoredEvent {
    let payload = serde_json::json!({ "name": "Ada Lovelace", "notes": "x".repeat(400) });
    EventFixture::default().seq(seq).payload(payload).actor("user:bench").correlation_id("bench").stored()
}

async fn prefill(conn: &mut redis::aio::MultiplexedConnection, key: &str, entries: u64) {
    for chunk in 0..entries.div_ceil(1000) {
        let mut pipe = redis::pipe();
        for i in 0..1000.min(entries - chunk * 1000) {
            let mut xadd = redis::cmd("XADD");
            xadd.arg(key).arg("*");
            for (name, value) in xentri_core::stream::encode(&sample_event((chunk * 1000 + i) as i64)) {
                xadd.arg(name).arg(value);
            }
            pipe.add_command(xadd).ignore();
        }
        let _: () = pipe.query_async(conn).await.unwrap_or_else(|e| panic!("prefill: {e}"));
    }
}

fn settings(prefix: &str, extra: &[(&str, &str)]) -> Settings {
    let database_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| panic!("DATABASE_URL is required"));
    // The driver seeds and inspects the outbox across orgs as the owner
    // (DATABASE_URL), and runs the api and the worker on that login as the
    // tests do: the test leave, and migrations with that URL too.
    TestSettings::new(&database_url)
        .profile(None)
        .key_prefix(prefix)
        .vars(&[
            ("XENTRI_DATABASE__MIGRATE_URL", ""),
            ("XENTRI_DATABASE__TEST_ALLOW_PRIVILEGED_LOGIN", "true"),
            ("XENTRI_TELEMETRY__LOG_FILTER", "warn"),
        ])
        .without_builtin_groups()
        .vars(extra)
        .load()
}

/// The secret of the dev tokens the latency scenario posts with: its api
/// runs on config/default.toml, which sets none (loopback only, as always).
const DEV_SECRET: &str = "stream-bench-dev-secret";

/// A handler that does nothing, or records how old each event is when it starts.
struct Probe {
    ages: Option<Arc<Mutex<Vec<f64>>>>,
}

impl RedisStoreHandler for Probe {
    fn handle<'a>(&'a self, delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            if let Some(ages) = &self.ages {
                let age = (Utc::now() - delivery.event.occurred_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                if let Ok(mut ages) = ages.lock() {
                    ages.push(age);
                }
            }
            Ok(())
        })
    }
}

async fn wait_drained(conn: &mut redis::aio::MultiplexedConnection, key: &str, group: &str, entries: u64) {
    loop {
        let groups: redis::streams::StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(key).query_async(conn).await.unwrap_or_default();
        if groups.groups.iter().any(|g| g.name == group && g.entries_read == Some(entries as usize) && g.pending == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn report(scenario: &str, entries: u64, elapsed: Duration, extra: serde_json::Value) {
    let mut line = serde_json::json!({
        "scenario": scenario,
        "entries": entries,
        "seconds": elapsed.as_secs_f64(),
        "per_second": entries as f64 / elapsed.as_secs_f64(),
    });
    if let (Some(line), Some(extra)) = (line.as_object_mut(), extra.as_object()) {
        line.extend(extra.clone());
    }
    println!("{line}");
}

async fn raw(entries: u64) {
    let prefix = unique_key_prefix();
    let key = format!("{prefix}events:work");
    let mut conn = redis_connection().await;
    prefill(&mut conn, &key, entries).await;
    let _: () =
        redis::cmd("XGROUP").arg("CREATE").arg(&key).arg("raw").arg("0").query_async(&mut conn).await.unwrap_or(());
    let started = Instant::now();
    loop {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("raw")
            .arg("c1")
            .arg("COUNT")
            .arg(100)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let ids: Vec<String> = reply.keys.into_iter().flat_map(|k| k.ids.into_iter().map(|i| i.id)).collect();
        if ids.is_empty() {
            break;
        }
        let _: i64 = redis::cmd("XACK").arg(&key).arg("raw").arg(&ids).query_async(&mut conn).await.unwrap_or(0);
    }
    report("raw", entries, started.elapsed(), serde_json::json!({}));
    let _ = delete_keys_under(&mut conn, &prefix).await;
}

async fn runtime(entries: u64) {
    let prefix = unique_key_prefix();
    let key = format!("{prefix}events:work");
    let mut conn = redis_connection().await;
    prefill(&mut conn, &key, entries).await;
    let settings = settings(&prefix, &[("XENTRI_WORKER__RELAY__ENABLED", "false")]);
    let worker =
        xentri_worker::app::Worker::build(settings, vec![Arc::new(Group::redis("noop", Probe { ages: None }))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let running = worker.spawn();
    wait_drained(&mut conn, &key, "noop", entries).await;
    let elapsed = started.elapsed();
    let _ = running.stop().await;
    report("runtime", entries, elapsed, serde_json::json!({}));
    let _ = delete_keys_under(&mut conn, &prefix).await;
}

async fn relay(entries: u64) {
    let prefix = unique_key_prefix();
    let key = format!("{prefix}events:work");
    let settings = settings(&prefix, &[]);
    let pool = xentri_core::db::connect_lazy(&settings.database, "stream-bench").unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("DELETE FROM outbox").execute(&pool).await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(
        "WITH ev AS (
            INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
            SELECT gen_random_uuid(), gen_random_uuid(), 'xentri.soul.updated.v1',
                   jsonb_build_object('name', 'Ada Lovelace', 'notes', repeat('x', 400), 'i', i),
                   'user:bench', '4bf92f3577b34da6a3ce929d0e0e4736', 'bench', now()
            FROM generate_series(1, $1) AS i
            RETURNING seq, org_id
         )
         INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events:work', org_id FROM ev",
    )
    .bind(entries as i64)
    .execute(&pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let worker = xentri_worker::app::Worker::build(settings, Vec::new()).await.unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let running = worker.spawn();
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.unwrap_or(-1);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let _ = running.stop().await;
    let mut conn = redis_connection().await;
    let published: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut conn).await.unwrap_or(0);
    report("relay", entries, elapsed, serde_json::json!({"published": published}));
    let _ = delete_keys_under(&mut conn, &prefix).await;
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Posts that were not answered 2xx: how many, and the first one's answer.
#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    fn record(&mut self, done: Result<Result<(), String>, tokio::task::JoinError>) {
        let failure = match done {
            Ok(Ok(())) => return,
            Ok(Err(answer)) => answer,
            Err(error) => error.to_string(),
        };
        self.count += 1;
        self.first.get_or_insert(failure);
    }
}

async fn latency(rate: u64, seconds: u64) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let prefix = unique_key_prefix();
    let settings = settings(
        &prefix,
        &[("XENTRI_WORKER__RELAY__POLL_INTERVAL_MS", "1000"), ("XENTRI_AUTH__DEV_SECRET", DEV_SECRET)],
    );
    let ages: Arc<Mutex<Vec<f64>>> = Arc::default();
    let app = xentri_api::startup::Application::build(settings.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let address = app.address();
    let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(app.run_until_stopped(async {
        let _ = api_stopped.await;
    }));
    let probe = Arc::new(Group::redis("latency", Probe { ages: Some(ages.clone()) }));
    let worker = xentri_worker::app::Worker::build(settings, vec![probe]).await.unwrap_or_else(|e| panic!("{e}"));
    let running = worker.spawn();
    let org = Uuid::new_v4();
    let token = xentri_api::auth::token::dev_token(DEV_SECRET, org, "bench", Duration::from_secs(3600))
        .unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::new();
    let url = format!("http://{address}/api/v1/events");
    let notes = serde_json::json!({"notes": "x".repeat(400)});
    let payload = xentri_test_support::valid_payload_with("xentri.soul.updated.v1", notes);
    let body = serde_json::json!({"type": "xentri.soul.updated.v1", "payload": payload});
    let total = rate * seconds;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut posts = tokio::task::JoinSet::new();
    let mut failures = Failures::default();
    let started = Instant::now();
    for n in 0..total {
        ticker.tick().await;
        let (client, url, token, body) = (client.clone(), url.clone(), token.clone(), body.clone());
        posts.spawn(async move {
            let sent =
                client.post(url).bearer_auth(token).header("idempotency-key", format!("lat-{n}")).json(&body).send();
            match sent.await {
                Ok(answer) if answer.status().is_success() => Ok(()),
                Ok(answer) => Err(format!("{}: {}", answer.status(), answer.text().await.unwrap_or_default())),
                Err(error) => Err(error.to_string()),
            }
        });
        // Posts answered meanwhile are counted as they finish.
        while let Some(done) = posts.try_join_next() {
            failures.record(done);
        }
    }
    while let Some(done) = posts.join_next().await {
        failures.record(done);
    }
    let failed = failures.count;
    if let Some(first) = &failures.first {
        eprintln!("latency: {failed} posts failed; the first: {first}");
    }
    let posting = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ages.lock().map(|a| a.len() as u64).unwrap_or(0) < total - failed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sorted = ages.lock().map(|a| a.clone()).unwrap_or_default();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let _ = running.stop().await;
    let _ = api_stop.send(());
    let _ = api.await;
    println!(
        "{}",
        serde_json::json!({
            "scenario": "latency",
            "entries": total,
            "handled": sorted.len(),
            "failed_posts": failed,
            "achieved_rate": total as f64 / posting.as_secs_f64(),
            "p50_ms": percentile(&sorted, 50.0),
            "p95_ms": percentile(&sorted, 95.0),
            "p99_ms": percentile(&sorted, 99.0),
        })
    );
    let mut conn = redis_connection().await;
    let _ = delete_keys_under(&mut conn, &prefix).await;
}

#[tokio::main]
async fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    match scenario.as_str() {
        "raw" => raw(number_flag("--entries", 200_000)).await,
        "runtime" => runtime(number_flag("--entries", 200_000)).await,
        "relay" => relay(number_flag("--entries", 100_000)).await,
        "latency" => latency(number_flag("--rate", 1000), number_flag("--seconds", 20)).await,
        _ => {
            eprintln!("usage: stream_bench <raw|runtime|relay|latency> [--entries N] [--rate R] [--seconds S]");
            std::process::exit(2);
        }
    }
}
