//! The domain resources under load, run by `scripts/bench domain` (release):
//! starts the release `worker` and two release `api`s on a database of their
//! own (one with `cache.enabled`, one without, both on the same data), and
//! prints a markdown report (figures and verdicts) on stdout and one JSON line
//! with every figure to `--json FILE`.
//!
//! ```text
//! domain [--updates 1000] [--connections 100] [--closed-seconds 10]
//!        [--rate 2000] [--open-seconds 20] [--imports 20] [--json FILE]
//! ```
//!
//! - **Staleness**: a Soul goes round `approved → editing → (PUT) →
//!   review_pending → approved`, every step a change with a new version
//!   (`ETag`); after each change's `200` the cached api is read until it
//!   answers that version. Staleness is the time from the `200` to that read
//!   (its answer included), p50/p95/p99 over `--updates` changes; the worker
//!   runs throughout, deleting `soul:{org}` on each `xentri.soul.updated.v1`.
//! - **Cached reads**: `GET /api/v1/soul` closed loop on `--connections`
//!   connections for `--closed-seconds` (requests/s, p99), then open loop at
//!   `--rate` requests/s for `--open-seconds` (latency from when each request
//!   was due, [`xentri_e2e::openloop`]); on the cached api and on the one
//!   with the cache off.
//! - **Lead import**: `--imports` imports of 1,000 leads each, one after
//!   another: time per import and events stored per second.

// A bench driver: a run that cannot go on panics with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;
use xentri_e2e::openloop::{OpenLoop, figures};
use xentri_e2e::processes::{Database, start_api, start_worker};
use xentri_e2e::{flag, number_flag, percentile_ms, redis_url, unique_key_prefix};

/// The targets the report gives verdicts against.
const STALENESS_P99_MS: f64 = 25.0;
const CACHED_OPEN_LOOP_P99_MS: f64 = 5.0;
/// A request sent this much after it was due counts as late (open loop).
const LATE_AFTER: Duration = Duration::from_millis(2);
/// The dev secret of `config/test.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// The drafting agent's service name and secret, given to both apis.
const AGENT: &str = "drafter";
const AGENT_SECRET: &str = "domain-bench-agent-secret-0123456789";
/// The most reads of one change before staleness counts as unbounded.
const MAX_READS: u32 = 10_000;

/// One api as a client sees it.
struct Api {
    client: reqwest::Client,
    url: String,
}

/// An answer: status, the version in its `ETag`, its body.
struct Answer {
    status: StatusCode,
    version: Option<i64>,
    body: Value,
}

impl Api {
    fn new(url: String) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        Self { client, url }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.url)).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let version =
            response.headers().get("etag").and_then(|v| v.to_str().ok()).and_then(|v| v.trim_matches('"').parse().ok());
        let bytes = response.bytes().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, version, body }
    }

    /// A change of the Soul made from version `from`: its new version.
    async fn change(&self, token: &str, method: Method, path: &str, from: i64, body: &Value) -> i64 {
        let headers = [("if-match", format!("\"{from}\"")), ("idempotency-key", Uuid::new_v4().to_string())];
        let answer = self.send(method.clone(), path, token, &headers, Some(body)).await;
        assert!(
            answer.status.is_success(),
            "{method} {path} {body} from version {from}: {} {}",
            answer.status,
            answer.body
        );
        answer.version.unwrap_or_else(|| panic!("{method} {path}: no ETag"))
    }
}

/// p50/p95/p99/max of `us` (sorted here), in ms.
fn percentiles(us: &mut [u64]) -> Value {
    us.sort_unstable();
    json!({
        "count": us.len(),
        "p50_ms": percentile_ms(us, 50.0),
        "p95_ms": percentile_ms(us, 95.0),
        "p99_ms": percentile_ms(us, 99.0),
        "max_ms": us.last().map(|v| *v as f64 / 1000.0),
    })
}

/// Brings the org's Soul to `approved` (through the whole flow, the draft
/// delivered by the agent's service token); returns its version.
async fn approved_soul(api: &Api, user: &str, agent: &str) -> i64 {
    let key = || vec![("idempotency-key", Uuid::new_v4().to_string())];
    let created = api.send(Method::POST, "/api/v1/soul", user, &key(), Some(&json!({}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "POST /api/v1/soul: {}", created.body);
    let mut version = created.version.expect("the Soul's ETag");
    let path = "/api/v1/soul/transitions";
    version = api.change(user, Method::POST, path, version, &json!({"to": "conversing"})).await;
    version = api.change(user, Method::POST, path, version, &json!({"to": "drafting"})).await;
    let draft = json!({"to": "review_pending", "sections": {"mission": "Small teams ship with us.", "voice": "warm"}});
    version = api.change(agent, Method::POST, path, version, &draft).await;
    api.change(user, Method::POST, path, version, &json!({"to": "approved"})).await
}

/// `updates` changes round the approved Soul, each followed by reads of the
/// cached api until it answers the change's version.
async fn staleness(api: &Api, user: &str, mut version: i64, updates: u64) -> Value {
    let path = "/api/v1/soul/transitions";
    let (mut stale_us, mut reads_after) = (Vec::new(), Vec::new());
    for i in 0..updates {
        let (method, route, body) = match i % 4 {
            0 => (Method::POST, path, json!({"to": "editing"})),
            1 => (
                Method::PUT,
                "/api/v1/soul",
                json!({"content": {"mission": format!("Revision {i}."), "voice": "warm"}}),
            ),
            2 => (Method::POST, path, json!({"to": "review_pending"})),
            _ => (Method::POST, path, json!({"to": "approved"})),
        };
        version = api.change(user, method, route, version, &body).await;
        let answered = Instant::now();
        let mut reads = 0;
        loop {
            reads += 1;
            let read = api.send(Method::GET, "/api/v1/soul", user, &[], None).await;
            if read.status == StatusCode::OK && read.version.is_some_and(|v| v >= version) {
                break;
            }
            assert!(reads < MAX_READS, "the cached api never answered version {version}");
        }
        stale_us.push(answered.elapsed().as_micros() as u64);
        reads_after.push(u64::from(reads));
    }
    let fresh_at_first = reads_after.iter().filter(|&&r| r == 1).count();
    let mut figures = percentiles(&mut stale_us);
    figures["fresh_at_first_read"] = json!(fresh_at_first);
    figures["most_reads"] = json!(reads_after.iter().max());
    figures
}

/// `connections` clients, each on a connection of its own, reading the Soul
/// back to back for `seconds`.
async fn closed_loop(url: &str, user: &str, connections: u64, seconds: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let (url, user) = (format!("{url}/api/v1/soul"), user.to_owned());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let (mut ok_us, mut other) = (Vec::new(), 0u64);
                while Instant::now() < until {
                    let sent = Instant::now();
                    let answer = client.get(&url).bearer_auth(&user).send().await;
                    let ok = match answer {
                        Ok(response) => response.status() == StatusCode::OK && response.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        ok_us.push(sent.elapsed().as_micros() as u64);
                    } else {
                        other += 1;
                    }
                }
                (ok_us, other)
            })
        })
        .collect();
    let (mut ok_us, mut failed) = (Vec::new(), 0);
    for client in clients {
        let (ok, other) = client.await.unwrap();
        ok_us.extend(ok);
        failed += other;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut figures = percentiles(&mut ok_us);
    figures["requests_per_second"] = json!(ok_us.len() as f64 / elapsed);
    figures["failed"] = json!(failed);
    figures["connections"] = json!(connections);
    figures["seconds"] = json!(elapsed);
    figures
}

/// The Soul read on schedule at `rate` for `seconds` (after a 2 s warm-up).
async fn open_loop(url: &str, user: &str, rate: u64, seconds: u64) -> Value {
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_max_idle_per_host(1024).build().unwrap();
    let soul = format!("{url}/api/v1/soul");
    let request = |_| client.get(&soul).bearer_auth(user);
    let sender = OpenLoop::new(1024, LATE_AFTER);
    let _warm = sender.phase(0, rate, 2, request).await;
    let (sending, answers) = sender.phase(rate * 2, rate, seconds, request).await;
    figures(&sending, answers)
}

/// `imports` imports of 1,000 new leads each, one after another.
async fn lead_imports(api: &Api, user: &str, imports: u64) -> Value {
    let mut took_us = Vec::new();
    let started = Instant::now();
    for i in 0..imports {
        let leads: Vec<Value> = (0..1000)
            .map(|n| {
                json!({"name": format!("Lead {i}-{n}"), "email": format!("lead-{i}-{n}@example.com"),
                       "company": "Bench Ltd", "source": "import"})
            })
            .collect();
        let headers = [("idempotency-key", Uuid::new_v4().to_string())];
        let sent = Instant::now();
        let answer =
            api.send(Method::POST, "/api/v1/sales/leads:import", user, &headers, Some(&json!({"leads": leads}))).await;
        assert!(answer.status.is_success(), "import {i}: {} {}", answer.status, answer.body);
        took_us.push(sent.elapsed().as_micros() as u64);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut figures = percentiles(&mut took_us);
    figures["leads"] = json!(imports * 1000);
    figures["events_per_second"] = json!((imports * 1000) as f64 / elapsed);
    figures
}

fn ms(figures: &Value, field: &str) -> String {
    figures[field].as_f64().map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}

fn verdict(held: bool) -> &'static str {
    if held { "PASS" } else { "FAIL" }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let updates = number_flag("--updates", 1000);
    let (connections, closed_seconds) = (number_flag("--connections", 100), number_flag("--closed-seconds", 10));
    let (rate, open_seconds) = (number_flag("--rate", 2000), number_flag("--open-seconds", 20));
    let imports = number_flag("--imports", 20);
    assert!(updates > 0 && connections > 0 && rate > 0 && imports > 0, "every count must be ≥ 1");

    let db = Database::create("domain").await;
    let prefix = unique_key_prefix();
    let log = Arc::new(Mutex::new(Vec::new()));
    let agent_env = format!("XENTRI_AUTH__SERVICES__{}", AGENT.to_uppercase());
    let env = [(agent_env.as_str(), AGENT_SECRET)];
    // The test profile logs warnings only; the worker's start line is awaited.
    let worker =
        start_worker(&db.url, &prefix, &[("XENTRI_TELEMETRY__LOG_FILTER", "warn,worker=info")], log.clone()).await;
    let (cached_api, cached_url) = start_api(&db.url, &redis_url(), &prefix, &env, log.clone()).await;
    let uncached_env = [(agent_env.as_str(), AGENT_SECRET), ("XENTRI_CACHE__ENABLED", "false")];
    let (uncached_api, uncached_url) = start_api(&db.url, &redis_url(), &prefix, &uncached_env, log.clone()).await;

    let org = Uuid::now_v7();
    let ttl = Duration::from_secs(3600);
    let user = xentri_api::auth::token::dev_token(DEV_SECRET, org, "domain_bench", ttl).unwrap();
    let agent = xentri_api::auth::token::service_token(AGENT_SECRET, AGENT, org, Duration::from_secs(600)).unwrap();

    let cached = Api::new(cached_url.clone());
    eprintln!("domain: the Soul through its flow to approved");
    let version = approved_soul(&cached, &user, &agent).await;
    eprintln!("domain: staleness over {updates} changes");
    let stale = staleness(&cached, &user, version, updates).await;
    eprintln!("domain: closed loop, {connections} connections, {closed_seconds} s per api");
    let closed_cached = closed_loop(&cached_url, &user, connections, closed_seconds).await;
    let closed_uncached = closed_loop(&uncached_url, &user, connections, closed_seconds).await;
    eprintln!("domain: open loop at {rate}/s, {open_seconds} s per api");
    let open_cached = open_loop(&cached_url, &user, rate, open_seconds).await;
    let open_uncached = open_loop(&uncached_url, &user, rate, open_seconds).await;
    eprintln!("domain: {imports} lead imports of 1,000");
    let import = lead_imports(&cached, &user, imports).await;

    drop((cached_api, uncached_api, worker));
    db.remove().await;

    let stale_p99 = stale["p99_ms"].as_f64().unwrap_or(f64::INFINITY);
    let open_p99 = open_cached["p99_ms"].as_f64().unwrap_or(f64::INFINITY);
    let open_clean = open_cached["non_2xx"] == 0 && open_cached["errors"] == 0;
    let report = json!({
        "scenario": "domain",
        "staleness": stale,
        "closed_loop": {"cached": closed_cached, "uncached": closed_uncached},
        "open_loop": {"rate": rate, "seconds": open_seconds, "cached": open_cached, "uncached": open_uncached},
        "lead_import": import,
    });
    if let Some(path) = flag("--json") {
        std::fs::write(&path, format!("{report}\n")).unwrap_or_else(|e| panic!("{path}: {e}"));
    }

    let row = |what: &str, figures: &Value| {
        format!(
            "{what}: {:.0} requests/s, p50 {} ms, p99 {} ms, max {} ms ({} failed)",
            figures["requests_per_second"].as_f64().unwrap_or(0.0),
            ms(figures, "p50_ms"),
            ms(figures, "p99_ms"),
            ms(figures, "max_ms"),
            figures["failed"]
        )
    };
    let open_row = |what: &str, figures: &Value| {
        format!(
            "{what}: p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms; {} ok, {} not 2xx, {} errors, {} sent late (> {} ms)",
            ms(figures, "p50_ms"),
            ms(figures, "p99_ms"),
            ms(figures, "p999_ms"),
            ms(figures, "max_ms"),
            figures["ok"],
            figures["non_2xx"],
            figures["errors"],
            figures["late"],
            LATE_AFTER.as_millis()
        )
    };
    println!("| scenario | figure | target | verdict |");
    println!("|---|---|---|---|");
    println!(
        "| Soul staleness ({updates} changes) | p50 {} ms, p95 {} ms, **p99 {} ms**, max {} ms; fresh at the first read {} of {updates} (most reads {}) | p99 ≤ {STALENESS_P99_MS} ms | {} |",
        ms(&report["staleness"], "p50_ms"),
        ms(&report["staleness"], "p95_ms"),
        ms(&report["staleness"], "p99_ms"),
        ms(&report["staleness"], "max_ms"),
        report["staleness"]["fresh_at_first_read"],
        report["staleness"]["most_reads"],
        verdict(stale_p99 <= STALENESS_P99_MS)
    );
    println!(
        "| `GET /api/v1/soul`, {connections} connections, closed loop, {closed_seconds} s | {}; {} | – | – |",
        row("cached", &report["closed_loop"]["cached"]),
        row("cache off", &report["closed_loop"]["uncached"])
    );
    println!(
        "| `GET /api/v1/soul`, open loop at {rate}/s, {open_seconds} s | {}; {} | cached p99 ≤ {CACHED_OPEN_LOOP_P99_MS} ms, every answer 200 | {} |",
        open_row("**cached**", &report["open_loop"]["cached"]),
        open_row("cache off", &report["open_loop"]["uncached"]),
        verdict(open_p99 <= CACHED_OPEN_LOOP_P99_MS && open_clean)
    );
    println!(
        "| lead import, {imports} × 1,000 leads | per import p50 {} ms, p99 {} ms, max {} ms; {:.0} leads (= `xentri.lead.created.v1` events) per second | – | – |",
        ms(&report["lead_import"], "p50_ms"),
        ms(&report["lead_import"], "p99_ms"),
        ms(&report["lead_import"], "max_ms"),
        report["lead_import"]["events_per_second"].as_f64().unwrap_or(0.0)
    );
}
