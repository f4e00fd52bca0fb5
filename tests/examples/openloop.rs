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
//! - **Schedule** and **latency**: as [`xentri_e2e::openloop`]. A warm-up at
//!   the same rate comes first (connections opened, caches warm) and is
//!   reported apart; the measured run follows at once.
//! - **Requests**: `write` posts `POST /api/v1/events` with a ~500-byte body
//!   and a fresh `Idempotency-Key` (as `scripts/bench.d/write.lua`); `read`
//!   is `GET /api/v1/events?limit=50` (as `read.lua`). The tokens in `FILE`
//!   (one per line, one per org) are used in rotation.

// A bench driver: a run that cannot go on panics with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use xentri_e2e::openloop::{OpenLoop, figures};
use xentri_e2e::{flag, number_flag};

/// A request sent this much after it was due counts as late.
const LATE_AFTER: Duration = Duration::from_millis(2);
/// A request gets this long before it counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
}

/// What the requests are.
struct Requests {
    client: reqwest::Client,
    url: String,
    kind: Kind,
    tokens: Vec<String>,
    run: String,
    /// ~330 bytes of filler (as write.lua): with the other fields the body is
    /// ~500 bytes. Built once, not per request.
    bio: String,
}

impl Requests {
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
    let requests = Requests {
        client,
        url: format!("{}{path}", base.trim_end_matches('/')),
        kind,
        tokens,
        run: uuid::Uuid::new_v4().simple().to_string(),
        bio: "Soul profile text for the benchmark. ".repeat(9),
    };
    let sender = OpenLoop::new(in_flight, LATE_AFTER);
    let (warm_sending, warm) = sender.phase(0, rate, warmup.max(1), |i| requests.request(i)).await;
    let (sending, measured) = sender.phase(rate * warmup.max(1), rate, seconds, |i| requests.request(i)).await;

    let line = serde_json::json!({
        "scenario": "openloop",
        "kind": if kind == Kind::Write { "write" } else { "read" },
        "path": path,
        "rate": rate,
        "seconds": seconds,
        "in_flight": in_flight,
        "late_after_ms": LATE_AFTER.as_millis() as u64,
        "warmup": figures(&warm_sending, warm),
        "measured": figures(&sending, measured),
    });
    println!("{line}");
}
