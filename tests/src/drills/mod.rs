//! The recovery drills of issue 14, one function each, run by the tests
//! (`tests/e2e/outage.rs`, short form) and by `scripts/bench outage` (full form,
//! `examples/outage.rs`): the built api and worker as processes on a private
//! PostgreSQL cluster and a private Redis server, writers and readers posting
//! through the api, then the failure, the recovery and the reckoning against
//! the database. Each drill returns a [`Report`]: its figures (times to
//! recovery, status-code counts, events lost and duplicated) and its checks,
//! each held or not, with what was found.

mod api;
mod postgres;
mod redis;
mod scene;

use std::time::Duration;

use serde_json::{Value, json};

pub use api::{api_killed, spike};
pub use postgres::postgres_stopped;
pub use redis::{redis_restarted_empty, redis_unavailable};
pub use scene::Scene;

use crate::load::{self, Answer};
use crate::processes::Process;

/// How long and how hard: [`Params::short`] for the tests, [`Params::full`]
/// for the bench.
#[derive(Debug, Clone)]
pub struct Params {
    /// How long PostgreSQL or Redis stays away.
    pub outage: Duration,
    /// How long the api stays dead after its SIGKILL.
    pub api_down: Duration,
    /// Writers posting through drills 1–4.
    pub writers: usize,
    /// Events per second the writers post, all together, in drills 1 and 2
    /// (below what the worker handles, so that recovery is catching up with
    /// the outage, not with the load). Drills 3 and 4 post as fast as they
    /// can: 3 so that a group falls behind, 4 so that requests are in flight
    /// at the kill.
    pub write_rate: u32,
    /// Events handled before a failure is caused.
    pub warm_events: i64,
    /// Load kept on after recovery.
    pub after: Duration,
    /// The api's `database.acquire_timeout_ms`.
    pub acquire_timeout: Duration,
    /// An answer later than the acquire timeout by more than this hung.
    pub hang_slack: Duration,
    /// The most the api and the worker may take to recover.
    pub recover_within: Duration,
    /// The most the pipeline may take to catch up once everything is back.
    pub settle_within: Duration,
    /// The worker's `worker.visibility_timeout_ms` (`None`: the configured
    /// 30 s): entries whose acks were given up while Redis was away are
    /// delivered again after it.
    pub visibility_timeout: Option<Duration>,
    /// Spike: connections before and after.
    pub spike_from: usize,
    /// Spike: connections at the top.
    pub spike_to: usize,
    /// Spike: load at `spike_from` before the ramp.
    pub spike_base: Duration,
    /// Spike: time from `spike_from` to `spike_to`.
    pub spike_ramp: Duration,
    /// Spike: time held at `spike_to`.
    pub spike_hold: Duration,
    /// The api's `api.max_concurrent_requests` in the spike.
    pub max_concurrent_requests: usize,
}

impl Params {
    /// The tests' form: outages of 3 s, a spike of 4 s to the top.
    pub fn short() -> Self {
        Self {
            outage: Duration::from_secs(3),
            api_down: Duration::from_secs(1),
            writers: 8,
            write_rate: 300,
            warm_events: 100,
            after: Duration::from_secs(2),
            acquire_timeout: Duration::from_millis(500),
            hang_slack: Duration::from_millis(1500),
            recover_within: Duration::from_secs(5),
            settle_within: Duration::from_secs(60),
            visibility_timeout: Some(Duration::from_secs(2)),
            spike_from: 10,
            spike_to: 200,
            spike_base: Duration::from_secs(1),
            spike_ramp: Duration::from_secs(4),
            spike_hold: Duration::from_secs(2),
            max_concurrent_requests: 64,
        }
    }

    /// The bench's form: outages of 10 s, 10 → 200 connections in 10 s.
    pub fn full() -> Self {
        Self {
            outage: Duration::from_secs(10),
            api_down: Duration::from_secs(5),
            writers: 10,
            write_rate: 1000,
            warm_events: 1000,
            after: Duration::from_secs(10),
            acquire_timeout: Duration::from_millis(500),
            hang_slack: Duration::from_millis(1500),
            recover_within: Duration::from_secs(5),
            settle_within: Duration::from_secs(180),
            visibility_timeout: None,
            spike_from: 10,
            spike_to: 200,
            spike_base: Duration::from_secs(5),
            spike_ramp: Duration::from_secs(10),
            spike_hold: Duration::from_secs(10),
            max_concurrent_requests: 64,
        }
    }
}

/// One check of a drill.
#[derive(Debug, Clone)]
pub struct Check {
    /// What must hold.
    pub what: String,
    /// Whether it held.
    pub held: bool,
    /// What was found.
    pub found: String,
}

/// What a drill found.
#[derive(Debug)]
pub struct Report {
    /// The drill.
    pub drill: &'static str,
    /// Its figures, by name.
    pub figures: serde_json::Map<String, Value>,
    /// Its checks, in order.
    pub checks: Vec<Check>,
    /// The last lines the api and the worker logged, for a failed check.
    pub logs: String,
}

impl Report {
    fn new(drill: &'static str) -> Self {
        Self { drill, figures: serde_json::Map::new(), checks: Vec::new(), logs: String::new() }
    }

    fn figure(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.insert(name.to_owned(), value.into());
    }

    fn check(&mut self, what: impl Into<String>, held: bool, found: impl Into<String>) {
        self.checks.push(Check { what: what.into(), held, found: found.into() });
    }

    /// The checks that did not hold.
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.held).collect()
    }

    /// The figures and every check, one line each.
    pub fn summary(&self) -> String {
        let mut text = format!("drill: {}\nfigures: {}\n", self.drill, Value::Object(self.figures.clone()));
        for check in &self.checks {
            let mark = if check.held { "held" } else { "FAILED" };
            text.push_str(&format!("  [{mark}] {}: {}\n", check.what, check.found));
        }
        text
    }

    /// The report as one JSON document.
    pub fn json(&self) -> Value {
        json!({
            "drill": self.drill,
            "figures": self.figures,
            "checks": self.checks.iter().map(|c| json!({"what": c.what, "held": c.held, "found": c.found})).collect::<Vec<_>>(),
        })
    }

    /// Panics naming every check that did not hold, with the processes' logs.
    pub fn assert_held(&self) {
        let failed = self.failed();
        assert!(
            failed.is_empty(),
            "expected every check of drill {:?} to hold; these did not:\n{}\n{}\n{}",
            self.drill,
            failed.iter().map(|c| format!("  {}: {}", c.what, c.found)).collect::<Vec<_>>().join("\n"),
            self.summary(),
            self.logs
        );
    }
}

/// Seconds with millisecond precision, for figures.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The end of a drill: the worker's `/health` as a figure, both processes
/// checked to have run through and stopped with SIGTERM, and what they logged.
async fn wrap_up(mut report: Report, scene: &Scene, api: &mut Process, worker: &mut Process) -> Report {
    report.figure("worker_health", worker.health().await);
    still_running_then_stop(&mut report, api).await;
    still_running_then_stop(&mut report, worker).await;
    report.figure("logged", scene.log_summary());
    report.logs = scene.logs();
    report
}

/// Checks that `process` still runs (it was never restarted) and then stops
/// it with SIGTERM, checking it exits 0.
async fn still_running_then_stop(report: &mut Report, process: &mut Process) {
    let name = process.name;
    let exited = process.exited();
    report.check(format!("the {name} ran through without a restart"), exited.is_none(), format!("{exited:?}"));
    if exited.is_none() {
        let status = process.signal("-TERM").await;
        report.check(format!("the {name} exits 0 on SIGTERM"), status.success(), status.to_string());
    }
}

/// Statuses and the slowest answer of `answers`, as one figure.
fn answers_figure(answers: &[&Answer]) -> Value {
    let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
    json!({"statuses": load::status_counts(answers.iter().copied()), "slowest_s": secs(slowest)})
}

/// Settles, recording how long it took, or a failed check with what was behind.
async fn settle_checked(scene: &Scene, report: &mut Report, within: Duration) {
    match scene.settle(within, true).await {
        Ok(took) => {
            report.figure("settled_s", secs(took));
            report.check("everything relayed and handled afterwards", true, format!("in {took:?}"));
        }
        Err(behind) => report.check("everything relayed and handled afterwards", false, behind),
    }
}
