//! Clients of the api as the outage drills run them: writers that post events,
//! each under an `Idempotency-Key` of its own and, like a well-behaved client,
//! post the same key again after a 503 (honouring `Retry-After`), a 409 or a
//! dropped connection until it is answered; readers that list events; a probe
//! of `/health`. Every answer is kept with when it was sent and how long it
//! took, for the drill to count and to check against the database.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{binary, workspace};

/// The event types writers cycle through: all three are taken by both
/// `event_counts` and `cache_invalidation` (every payload has a `site_id`).
/// Each payload is valid against its type's contract, with the writer's
/// fields added.
pub const TYPES: [&str; 3] = ["xentri.soul.updated.v1", "xentri.lead.created.v1", "xentri.website.published.v1"];

/// Dev tokens for `orgs`, minted by `api dev-token` with the test profile as
/// an operator would.
pub async fn dev_tokens(orgs: &[Uuid]) -> Vec<String> {
    let mut tokens = Vec::new();
    for org in orgs {
        let output = Command::new(binary("api"))
            .args(["dev-token", "--org", &org.to_string(), "--sub", "user_outage", "--ttl", "2h"])
            .current_dir(workspace())
            .env("XENTRI_ENV", "test")
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("`api dev-token` runs");
        assert!(
            output.status.success(),
            "expected `api dev-token` to mint a token: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        tokens.push(String::from_utf8_lossy(&output.stdout).trim().to_owned());
    }
    tokens
}

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /api/v1/events`.
    Write,
    /// `GET /api/v1/events?limit=50`.
    Read,
    /// `GET /health`.
    Health,
}

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// What it was.
    pub kind: Kind,
    /// A write's `Idempotency-Key`.
    pub key: Option<String>,
    /// When it was sent, since the load started.
    pub sent: Duration,
    /// How long until the answer (or the error).
    pub took: Duration,
    /// The status, `None` when no answer came (connection refused or dropped,
    /// timeout).
    pub status: Option<u16>,
    /// Why no answer came.
    pub error: Option<String>,
    /// The `Retry-After` header.
    pub retry_after: Option<String>,
    /// A problem document's `type`.
    pub problem_type: Option<String>,
    /// A write's event id (201).
    pub id: Option<Uuid>,
    /// `Idempotent-Replayed: true`: the answer of an earlier attempt.
    pub replayed: bool,
}

impl Answer {
    /// When the answer came, since the load started.
    pub fn answered(&self) -> Duration {
        self.sent + self.took
    }

    /// `201`, `503`, …, or `no answer`.
    pub fn label(&self) -> String {
        self.status.map_or_else(|| "no answer".to_owned(), |s| s.to_string())
    }
}

/// How the clients behave.
#[derive(Debug, Clone)]
pub struct Options {
    /// Words in every key, to tell runs apart.
    pub label: String,
    /// The longest a request may take before it counts as unanswered.
    pub request_timeout: Duration,
    /// The longest a writer waits before posting a key again (a `Retry-After`
    /// longer than this is cut to it).
    pub max_retry_wait: Duration,
    /// A writer starts a new key at most this often (`None`: as soon as the
    /// last one is answered); paces writers below what the worker handles.
    pub writer_interval: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            label: "load".to_owned(),
            request_timeout: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(1),
            writer_interval: None,
        }
    }
}

/// State the clients share.
struct Shared {
    base: String,
    tokens: Vec<String>,
    http: reqwest::Client,
    options: Options,
    started: Instant,
    answers: Mutex<Vec<Answer>>,
    /// No new keys, reads or probes once set.
    stopping: AtomicBool,
    /// Writers give up a key still unanswered once this has passed.
    give_up_at: Mutex<Option<Instant>>,
}

/// Clients running against one api.
pub struct Load {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    clients: usize,
}

impl Load {
    /// No clients yet; `base` is the api's base URL, `tokens` the orgs' dev
    /// tokens (keys go round them).
    pub fn new(base: &str, tokens: Vec<String>, options: Options) -> Self {
        assert!(!tokens.is_empty(), "expected at least one token");
        // reqwest is built without a TLS provider of its own (plain HTTP here).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .pool_max_idle_per_host(512)
            .build()
            .expect("an HTTP client is built");
        let shared = Arc::new(Shared {
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            http,
            options,
            started: Instant::now(),
            answers: Mutex::default(),
            stopping: AtomicBool::new(false),
            give_up_at: Mutex::default(),
        });
        Self { shared, tasks: JoinSet::new(), clients: 0 }
    }

    /// Time since the load started (the clock of [`Answer::sent`]).
    pub fn elapsed(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Clients started so far.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// Starts `n` more writers.
    pub fn add_writers(&mut self, n: usize) {
        for _ in 0..n {
            let (shared, client) = (self.shared.clone(), self.clients);
            self.clients += 1;
            self.tasks.spawn(write_loop(shared, client));
        }
    }

    /// Starts `n` more readers.
    pub fn add_readers(&mut self, n: usize) {
        for _ in 0..n {
            let (shared, client) = (self.shared.clone(), self.clients);
            self.clients += 1;
            self.tasks.spawn(read_loop(shared, client));
        }
    }

    /// Starts a probe of `GET /health` every `every`.
    pub fn add_health_probe(&mut self, every: Duration) {
        let shared = self.shared.clone();
        self.tasks.spawn(async move {
            while !shared.stopping.load(Ordering::Relaxed) {
                let sent = shared.started.elapsed();
                let request = shared.http.get(format!("{}/health", shared.base)).timeout(Duration::from_secs(5));
                let answer = send(Kind::Health, None, sent, request).await;
                shared.answers.lock().expect("answers lock").push(answer);
                tokio::time::sleep(every).await;
            }
        });
    }

    /// Every answer so far.
    pub fn answers(&self) -> Vec<Answer> {
        self.shared.answers.lock().expect("answers lock").clone()
    }

    /// The first answer so far that `matches`.
    pub fn first(&self, matches: impl Fn(&Answer) -> bool) -> Option<Answer> {
        let answers = self.shared.answers.lock().expect("answers lock");
        answers.iter().filter(|a| matches(a)).min_by_key(|a| a.sent).cloned()
    }

    /// Stops starting new keys and reads; writers go on posting a key still
    /// unanswered for at most `within`; returns every answer.
    pub async fn finish(mut self, within: Duration) -> Vec<Answer> {
        *self.shared.give_up_at.lock().expect("give-up lock") = Some(Instant::now() + within);
        self.shared.stopping.store(true, Ordering::Relaxed);
        while let Some(ended) = self.tasks.join_next().await {
            ended.expect("a load client does not panic");
        }
        std::mem::take(&mut *self.shared.answers.lock().expect("answers lock"))
    }
}

/// Posts key after key; a key is posted again until it has a final answer.
async fn write_loop(shared: Arc<Shared>, client: usize) {
    let mut n = 0usize;
    let mut next_key_at = tokio::time::Instant::now();
    while !shared.stopping.load(Ordering::Relaxed) {
        if let Some(interval) = shared.options.writer_interval {
            tokio::time::sleep_until(next_key_at).await;
            next_key_at = next_key_at.max(tokio::time::Instant::now() - interval) + interval;
        }
        let key = format!("{}-{client}-{n}", shared.options.label);
        let token = &shared.tokens[(client + n) % shared.tokens.len()];
        let body = serde_json::json!({
            "type": TYPES[n % TYPES.len()],
            "payload": xentri_test_support::valid_payload_with(
                TYPES[n % TYPES.len()],
                serde_json::json!({"key": key, "site_id": xentri_test_support::sample_site_id(n % 7), "n": n}),
            ),
        })
        .to_string();
        n += 1;
        loop {
            let sent = shared.started.elapsed();
            let request = shared
                .http
                .post(format!("{}/api/v1/events", shared.base))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("idempotency-key", &key)
                .body(body.clone());
            let answer = send(Kind::Write, Some(key.clone()), sent, request).await;
            let again = match answer.status {
                None => Some(Duration::from_millis(100)),
                Some(409) => Some(Duration::from_millis(50)),
                Some(503) => {
                    let asked = answer.retry_after.as_deref().and_then(|s| s.parse::<u64>().ok()).unwrap_or(1);
                    Some(Duration::from_secs(asked).min(shared.options.max_retry_wait))
                }
                Some(_) => None,
            };
            shared.answers.lock().expect("answers lock").push(answer);
            let Some(wait) = again else { break };
            let give_up = *shared.give_up_at.lock().expect("give-up lock");
            if give_up.is_some_and(|at| Instant::now() + wait >= at) {
                break;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// Lists the first page of events, again and again.
async fn read_loop(shared: Arc<Shared>, client: usize) {
    let mut n = 0usize;
    while !shared.stopping.load(Ordering::Relaxed) {
        let token = &shared.tokens[(client + n) % shared.tokens.len()];
        n += 1;
        let sent = shared.started.elapsed();
        let request = shared.http.get(format!("{}/api/v1/events?limit=50", shared.base)).bearer_auth(token);
        let answer = send(Kind::Read, None, sent, request).await;
        let wait = match answer.status {
            Some(503) | None => Some(Duration::from_millis(100)),
            _ => None,
        };
        shared.answers.lock().expect("answers lock").push(answer);
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

async fn send(kind: Kind, key: Option<String>, sent: Duration, request: reqwest::RequestBuilder) -> Answer {
    let at = Instant::now();
    let mut answer = Answer {
        kind,
        key,
        sent,
        took: Duration::ZERO,
        status: None,
        error: None,
        retry_after: None,
        problem_type: None,
        id: None,
        replayed: false,
    };
    match request.send().await {
        Ok(response) => {
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            answer.status = Some(response.status().as_u16());
            answer.retry_after = header("retry-after");
            answer.replayed = header("idempotent-replayed").as_deref() == Some("true");
            match response.bytes().await {
                Ok(body) => {
                    if kind == Kind::Write || answer.status != Some(200) {
                        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                        answer.id = json["id"].as_str().and_then(|id| id.parse().ok());
                        answer.problem_type =
                            json["type"].as_str().filter(|_| answer.status >= Some(400)).map(str::to_owned);
                    }
                }
                Err(error) => {
                    answer.status = None;
                    answer.error = Some(format!("body: {error}"));
                }
            }
        }
        Err(error) => answer.error = Some(error.to_string()),
    }
    answer.took = at.elapsed();
    answer
}

/// How many answers of each status (`no answer` for none).
pub fn status_counts<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for answer in answers {
        *counts.entry(answer.label()).or_default() += 1;
    }
    counts
}

/// Nearest-rank percentile `p` (0–100) of `values`, sorted in place.
pub fn percentile(values: &mut [Duration], p: f64) -> Option<Duration> {
    values.sort_unstable();
    let rank = ((p / 100.0 * values.len() as f64).ceil() as usize).max(1);
    values.get(rank - 1).copied()
}

/// Per 1-second window of sending (since the load started): requests sent, their p99
/// latency (ms), and their statuses.
pub fn per_second<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> Vec<serde_json::Value> {
    let mut windows: BTreeMap<u64, Vec<&Answer>> = BTreeMap::new();
    for answer in answers {
        windows.entry(answer.sent.as_secs()).or_default().push(answer);
    }
    windows
        .into_iter()
        .map(|(second, answers)| {
            let mut took: Vec<Duration> = answers.iter().map(|a| a.took).collect();
            let p99 = percentile(&mut took, 99.0).map(|d| d.as_secs_f64() * 1000.0);
            serde_json::json!({
                "second": second,
                "requests": answers.len(),
                "p99_ms": p99.map(|ms| (ms * 10.0).round() / 10.0),
                "statuses": status_counts(answers.iter().copied()),
            })
        })
        .collect()
}

/// How an open-loop sender kept to its schedule (request `i` due at
/// `i / rate` seconds): what the bench drivers report beside the latencies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sending {
    /// Requests sent.
    pub sent: u64,
    /// Sent later than the driver's lateness bound after they were due.
    pub late: u64,
    /// Waited for an in-flight slot.
    pub waited_for_slot: u64,
    /// The largest lag behind the schedule (ms).
    pub max_lag_ms: f64,
    /// Seconds from the first send to the last.
    pub seconds: f64,
}
