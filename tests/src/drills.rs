//! The recovery drills of issue 14, one function each, run by the tests
//! (`tests/outage.rs`, short form) and by `scripts/bench outage` (full form,
//! `examples/outage.rs`): the built api and worker as processes on a private
//! PostgreSQL cluster and a private Redis server, writers and readers posting
//! through the api, then the failure, the recovery and the reckoning against
//! the database. Each drill returns a [`Report`]: its figures (times to
//! recovery, status-code counts, events lost and duplicated) and its checks,
//! each held or not, with what was found.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::load::{self, Answer, Kind, Load, Options, TYPES};
use crate::processes::{Database, Process, start_api, start_worker};
use crate::services::{Persistence, PrivatePostgres, PrivateRedis, free_port};
use crate::{binary, group_progress, poll_until, workspace};

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

/// The Redis key prefix of every drill (each has a Redis of its own).
const PREFIX: &str = "drill:";

/// A drill's private servers, database, processes' logs and orgs.
pub struct Scene {
    /// The private PostgreSQL cluster.
    pub postgres: PrivatePostgres,
    /// The private Redis server.
    pub redis: PrivateRedis,
    /// The migrated database on the cluster.
    pub database_url: String,
    /// A pool on it as the superuser, for the checks.
    pub db: PgPool,
    /// The orgs events are posted for.
    pub orgs: Vec<Uuid>,
    api_log: Arc<Mutex<Vec<String>>>,
    worker_log: Arc<Mutex<Vec<String>>>,
}

impl Scene {
    /// Starts the servers and migrates a database with `api migrate`.
    pub async fn new(redis: Persistence) -> Self {
        let (postgres, redis) = tokio::join!(PrivatePostgres::start(), PrivateRedis::start(redis));
        let database = Database::create_on(&postgres.url("postgres"), "drill").await;
        let db = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&database.url)
            .await
            .expect("the drill's database accepts");
        Self {
            postgres,
            redis,
            database_url: database.url,
            db,
            orgs: (0..4).map(|_| Uuid::now_v7()).collect(),
            api_log: Arc::default(),
            worker_log: Arc::default(),
        }
    }

    /// Starts the api with `env` on top of the drill's settings.
    pub async fn api(&self, env: &[(&str, &str)]) -> (Process, String) {
        start_api(&self.database_url, &self.redis.url(), PREFIX, env, self.api_log.clone()).await
    }

    /// Starts a worker with `env` on top of the drill's settings.
    pub async fn worker(&self, env: &[(&str, &str)]) -> Process {
        let redis_url = self.redis.url();
        let mut all = vec![("REDIS_URL", redis_url.as_str()), ("XENTRI_TELEMETRY__LOG_FILTER", "warn,worker=info")];
        all.extend_from_slice(env);
        start_worker(&self.database_url, PREFIX, &all, self.worker_log.clone()).await
    }

    /// Load clients on the api at `base` for the scene's orgs; `writers`
    /// paced to `rate` events/s together, if given.
    pub async fn load(&self, base: &str, label: &str, pace: Option<(usize, u32)>) -> Load {
        let tokens = load::dev_tokens(&self.orgs).await;
        let writer_interval =
            pace.map(|(writers, rate)| Duration::from_secs_f64(writers as f64 / f64::from(rate.max(1))));
        Load::new(base, tokens, Options { label: label.to_owned(), writer_interval, ..Options::default() })
    }

    /// The last lines both processes logged.
    pub fn logs(&self) -> String {
        let tail = |name: &str, log: &Arc<Mutex<Vec<String>>>| {
            let log = log.lock().expect("log lock is not poisoned");
            format!("--- the last lines the {name} logged ---\n{}", log[log.len().saturating_sub(30)..].join("\n"))
        };
        format!("{}\n{}", tail("api", &self.api_log), tail("worker", &self.worker_log))
    }

    /// One number; `$1` in `sql` is the drills' event types.
    async fn scalar(&self, sql: &str) -> i64 {
        let query = sqlx::query_scalar(sql);
        let query = if sql.contains("$1") { query.bind(TYPES.as_slice()) } else { query };
        query.fetch_one(&self.db).await.unwrap_or_else(|e| panic!("expected {sql:?} to run: {e}"))
    }

    /// Events of the drills' types stored.
    pub async fn stored(&self) -> i64 {
        self.scalar("SELECT count(*) FROM system_events WHERE type = ANY($1)").await
    }

    /// Of them, with a processed record of `event_counts`.
    pub async fn counted(&self) -> i64 {
        self.scalar(
            "SELECT count(*) FROM processed_events p JOIN system_events s ON s.id = p.event_id
             WHERE p.group_name = 'event_counts' AND s.type = ANY($1)",
        )
        .await
    }

    /// Rows in the outbox.
    pub async fn outbox(&self) -> i64 {
        self.scalar("SELECT count(*) FROM outbox").await
    }

    /// Events stored, relayed (no outbox row) and not yet handled by `event_counts`.
    pub async fn relayed_unhandled(&self) -> i64 {
        self.scalar(
            "SELECT count(*) FROM system_events s WHERE s.type = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_seq = s.seq)
               AND NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.group_name = 'event_counts' AND p.event_id = s.id)",
        )
        .await
    }

    /// The highest `seq` stored so far.
    pub async fn last_seq(&self) -> i64 {
        self.scalar("SELECT COALESCE(max(seq), 0) FROM system_events WHERE type = ANY($1)").await
    }

    /// Events with `seq` ≤ `seq` not yet handled by `event_counts`.
    pub async fn unhandled_through(&self, seq: i64) -> Result<i64, String> {
        sqlx::query_scalar(
            "SELECT count(*) FROM system_events s WHERE s.type = ANY($1) AND s.seq <= $2
               AND NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.group_name = 'event_counts' AND p.event_id = s.id)",
        )
        .bind(TYPES.as_slice())
        .bind(seq)
        .fetch_one(&self.db)
        .await
        .map_err(|e| e.to_string())
    }

    /// Waits until `event_counts` has handled at least `n` events.
    pub async fn wait_counted(&self, n: i64, within: Duration) {
        let reached = poll_until(within, || async {
            match self.counted().await {
                c if c >= n => Ok(()),
                c => Err(format!("{c} handled")),
            }
        })
        .await;
        if let Err(missing) = reached {
            panic!("expected event_counts to handle {n} events within {within:?}, but {missing}\n{}", self.logs());
        }
    }

    /// Entries on `events:work` not yet delivered to `group` (`XINFO GROUPS`
    /// `lag`); 0 when it cannot be told.
    pub async fn lag(&self, group: &str) -> i64 {
        let mut redis = self.redis.connection().await;
        let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(format!("{PREFIX}events:work"))
            .query_async(&mut redis)
            .await
            .unwrap_or_default();
        groups
            .iter()
            .find(|g| {
                g.get("name").is_some_and(|n| redis::from_redis_value_ref::<String>(n).ok().as_deref() == Some(group))
            })
            .and_then(|g| g.get("lag"))
            .and_then(|lag| redis::from_redis_value_ref::<i64>(lag).ok())
            .unwrap_or(0)
    }

    /// The consumer groups on `events:work` now.
    pub async fn groups(&self) -> Vec<crate::GroupProgress> {
        let mut redis = self.redis.connection().await;
        group_progress(&mut redis, &format!("{PREFIX}events:work")).await.unwrap_or_default()
    }

    /// Waits until the outbox is empty and both groups on `events:work` have
    /// been handed every entry and acknowledged it; with `all_counted`, also
    /// until `event_counts` has handled every stored event. Returns how long
    /// it took, or what was still behind at the deadline.
    pub async fn settle(&self, within: Duration, all_counted: bool) -> Result<Duration, String> {
        let started = Instant::now();
        let stream = format!("{PREFIX}events:work");
        let redis = self.redis.connection().await;
        poll_until(within, || async {
            let outbox = self.outbox().await;
            let progress = group_progress(&mut redis.clone(), &stream).await.map_err(|e| e.to_string())?;
            let behind: Vec<_> = progress.iter().filter(|p| !p.read_all || p.pending > 0).collect();
            let (stored, counted) = (self.stored().await, self.counted().await);
            // A dead letter is never counted: waiting for it would be in vain.
            let dead = self.dead_letters().await.len() as i64;
            if outbox == 0 && behind.is_empty() && progress.len() == 2 && (!all_counted || counted + dead >= stored) {
                Ok(started.elapsed())
            } else {
                Err(format!(
                    "{outbox} rows in the outbox, {counted} of {stored} events counted, {} groups, behind: {behind:?}",
                    progress.len()
                ))
            }
        })
        .await
    }

    /// The entries of `events:dlq`: group, attempts and error of each.
    pub async fn dead_letters(&self) -> Vec<Value> {
        let mut redis = self.redis.connection().await;
        let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{PREFIX}events:dlq"))
            .arg("-")
            .arg("+")
            .query_async(&mut redis)
            .await
            .unwrap_or_default();
        dead.ids
            .iter()
            .map(|entry| {
                let field = |name: &str| entry.get::<String>(name).unwrap_or_default();
                json!({
                    "event": field("id"),
                    "group": field("dlq_group"),
                    "attempts": field("dlq_attempts"),
                    "error": field("dlq_error"),
                })
            })
            .collect()
    }

    /// `worker <command> --group <group> <args> --json` as on-call runs it:
    /// its exit code and its JSON document.
    pub async fn on_call(&self, command: &str, group: &str, args: &[&str]) -> (Option<i32>, Value) {
        let output = tokio::process::Command::new(binary("worker"))
            .args([command, "--group", group])
            .args(args)
            .arg("--json")
            .current_dir(workspace())
            .env("XENTRI_ENV", "test")
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", self.redis.url())
            .env("XENTRI_REDIS__KEY_PREFIX", PREFIX)
            .env_remove("RUST_LOG")
            .output()
            .await
            .unwrap_or_else(|e| panic!("expected `worker {command}` to run: {e}"));
        let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            json!({
                "stdout": String::from_utf8_lossy(&output.stdout),
                "stderr": String::from_utf8_lossy(&output.stderr),
            })
        });
        (output.status.code(), report)
    }

    /// Checks that every write answered 201 has its event, that every key
    /// ended with a 201 and has exactly one event, that `event_counts` handled
    /// every event exactly once (processed records and the projection), that
    /// nothing is dead-lettered and that `worker audit` finds nothing missing
    /// for either group; figures: events, lost, duplicates.
    pub async fn check_exactly_once(&self, report: &mut Report, answers: &[Answer], with_worker: bool) {
        let writes: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Write).collect();
        let mut ids_by_key: HashMap<&str, HashSet<Uuid>> = HashMap::new();
        for answer in &writes {
            let key = answer.key.as_deref().unwrap_or_default();
            let ids = ids_by_key.entry(key).or_default();
            if answer.status == Some(201)
                && let Some(id) = answer.id
            {
                ids.insert(id);
            }
        }
        let created: Vec<Uuid> = ids_by_key.values().flatten().copied().collect();
        let unanswered: Vec<&&str> = ids_by_key.iter().filter(|(_, ids)| ids.is_empty()).map(|(k, _)| k).collect();
        let two_ids = ids_by_key.values().filter(|ids| ids.len() > 1).count();
        let stored_of_created: i64 = sqlx::query_scalar("SELECT count(*) FROM system_events WHERE id = ANY($1)")
            .bind(&created)
            .fetch_one(&self.db)
            .await
            .expect("system_events is readable");
        let per_key: Vec<(String, i64)> = sqlx::query_as(
            "SELECT payload->>'key', count(*) FROM system_events WHERE type = ANY($1) GROUP BY 1 HAVING count(*) > 1",
        )
        .bind(TYPES.as_slice())
        .fetch_all(&self.db)
        .await
        .expect("system_events is readable");
        let stored = self.stored().await;
        let lost = created.len() as i64 - stored_of_created;
        let duplicates: i64 = per_key.iter().map(|(_, n)| n - 1).sum();
        report.figure("keys", ids_by_key.len());
        report.figure("events_stored", stored);
        report.figure("events_lost", lost);
        report.figure("duplicates", duplicates);
        report.check(
            "every 201 has its event",
            lost == 0,
            format!("{} events answered 201, {stored_of_created} of them stored", created.len()),
        );
        report.check(
            "every key was answered 201 in the end",
            unanswered.is_empty(),
            format!(
                "{} keys, {} never answered 201 (e.g. {:?})",
                ids_by_key.len(),
                unanswered.len(),
                unanswered.first()
            ),
        );
        report.check(
            "a key retried is answered with its one event",
            two_ids == 0,
            format!("{two_ids} keys answered 201 with two different events"),
        );
        report.check(
            "one event per Idempotency-Key",
            duplicates == 0 && stored == ids_by_key.len() as i64,
            format!(
                "{stored} events for {} keys; keys with more than one event: {}",
                ids_by_key.len(),
                per_key.iter().take(5).map(|(k, n)| format!("{k} × {n}")).collect::<Vec<_>>().join(", ")
            ),
        );
        if !with_worker {
            return;
        }
        let counted = self.counted().await;
        report.check(
            "event_counts handled every event once (processed records)",
            counted == stored,
            format!("{counted} processed records of event_counts for {stored} events"),
        );
        let projection: Vec<(Uuid, String, i64, i64)> = sqlx::query_as(
            "SELECT s.org_id, s.type, count(*), COALESCE(max(c.count), 0)
             FROM system_events s LEFT JOIN event_counts c ON c.org_id = s.org_id AND c.type = s.type
             WHERE s.type = ANY($1) GROUP BY 1, 2",
        )
        .bind(TYPES.as_slice())
        .fetch_all(&self.db)
        .await
        .expect("event_counts is readable");
        let off: Vec<String> = projection
            .iter()
            .filter(|(_, _, events, counted)| events != counted)
            .map(|(org, t, events, counted)| format!("{org} {t}: {events} events, counted {counted}"))
            .collect();
        report.check("the event_counts projection counts each event once", off.is_empty(), format!("{off:?}"));
        let dead = self.dead_letters().await;
        report.figure("dead_letters", dead.len());
        report.check(
            "nothing dead-lettered",
            dead.is_empty(),
            format!(
                "{} entries in events:dlq: {}",
                dead.len(),
                Value::from(dead.iter().take(3).cloned().collect::<Vec<_>>())
            ),
        );
        for group in ["event_counts", "cache_invalidation"] {
            let (code, audit) = self.on_call("audit", group, &["--since-seq", "1"]).await;
            report.check(
                format!("`worker audit --group {group}` exits 0"),
                code == Some(0),
                format!("exit {code:?}, summary {}", audit.get("summary").unwrap_or(&audit)),
            );
        }
    }
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

/// Statuses and the slowest answer of `writes`, as figures under `name`.
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

/// Drill 1: PostgreSQL stopped (`pg_ctl stop -m fast`) under write load with
/// the worker running, started again after `params.outage`.
pub async fn postgres_stopped(params: &Params) -> Report {
    let mut report = Report::new("postgres stopped");
    let scene = Scene::new(Persistence::None).await;
    let acquire = params.acquire_timeout.as_millis().to_string();
    let (mut api, base) = scene.api(&[("XENTRI_DATABASE__ACQUIRE_TIMEOUT_MS", &acquire)]).await;
    let mut worker = scene.worker(&[]).await;
    let mut load = scene.load(&base, "pg", Some((params.writers, params.write_rate))).await;
    load.add_writers(params.writers);
    scene.wait_counted(params.warm_events, Duration::from_secs(60)).await;

    let down_at = load.elapsed();
    scene.postgres.stop().await;
    let stopped_at = load.elapsed();
    tokio::time::sleep(params.outage).await;
    scene.postgres.start_again().await;
    let up_at = load.elapsed();
    report.figure("outage_s", secs(up_at - down_at));
    report.figure("stop_took_s", secs(stopped_at - down_at));

    // The api: its first 201 to a request sent once PostgreSQL was back.
    let api_back = poll_until(params.recover_within * 4, || async {
        load.first(|a| a.kind == Kind::Write && a.sent >= up_at && a.status == Some(201))
            .ok_or_else(|| "no 201 yet".to_owned())
    })
    .await;
    let api_recovery = api_back.as_ref().map(|a| a.answered().saturating_sub(up_at)).map_err(Clone::clone);
    // The worker: that event handled by event_counts.
    let worker_recovery = match &api_back {
        Ok(first) => {
            let id = first.id.unwrap_or_default();
            poll_until(params.recover_within * 4, || async {
                let handled: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM processed_events WHERE group_name = 'event_counts' AND event_id = $1)",
                )
                .bind(id)
                .fetch_one(&scene.db)
                .await
                .map_err(|e| e.to_string())?;
                if handled { Ok(load.elapsed() - up_at) } else { Err(format!("event {id} not handled yet")) }
            })
            .await
        }
        Err(missing) => Err(missing.clone()),
    };
    for (who, recovery) in [("api", &api_recovery), ("worker", &worker_recovery)] {
        match recovery {
            Ok(took) => {
                report.figure(&format!("{who}_recovery_s"), secs(*took));
                report.check(
                    format!("the {who} recovers within {:?} without a restart", params.recover_within),
                    *took <= params.recover_within,
                    format!("{took:?} after PostgreSQL accepted connections again"),
                );
            }
            Err(missing) => report.check(format!("the {who} recovers"), false, missing.clone()),
        }
    }
    tokio::time::sleep(params.after).await;
    let answers = load.finish(Duration::from_secs(30)).await;

    let writes: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Write).collect();
    let during: Vec<&Answer> = writes.iter().copied().filter(|a| a.answered() > down_at && a.sent < up_at).collect();
    report.figure("answers", answers_figure(&writes));
    report.figure("answers_during_outage", answers_figure(&during));
    let bad: Vec<&&Answer> = writes.iter().filter(|a| !matches!(a.status, Some(201) | Some(503))).collect();
    report.check(
        "every write is answered 201 or 503",
        bad.is_empty(),
        format!("{} others, e.g. {:?}", bad.len(), bad.first().map(|a| (a.label(), &a.error, &a.problem_type))),
    );
    let unavailable: Vec<&&Answer> = writes.iter().filter(|a| a.status == Some(503)).collect();
    let off_503 = unavailable
        .iter()
        .filter(|a| {
            a.retry_after.is_none() || a.problem_type.as_deref() != Some("https://xentri.io/errors/service-unavailable")
        })
        .count();
    report.check(
        "while PostgreSQL is down, writes are answered 503 service-unavailable with Retry-After",
        !unavailable.is_empty() && off_503 == 0,
        format!("{} × 503, {off_503} of them without Retry-After or of another type", unavailable.len()),
    );
    let bound = params.acquire_timeout + params.hang_slack;
    let slowest = during.iter().map(|a| a.took).max().unwrap_or_default();
    report.check(
        format!("no write hangs past the acquire timeout ({:?} + {:?})", params.acquire_timeout, params.hang_slack),
        slowest <= bound,
        format!("slowest answer during the outage: {slowest:?}"),
    );
    let retried = writes.iter().filter(|a| a.status == Some(201) && a.replayed).count();
    report.figure("answers_replayed", retried);

    settle_checked(&scene, &mut report, params.settle_within).await;
    scene.check_exactly_once(&mut report, &answers, true).await;
    report.figure("worker_health", worker.health().await);
    still_running_then_stop(&mut report, &mut api).await;
    still_running_then_stop(&mut report, &mut worker).await;
    report.logs = scene.logs();
    report
}

/// What an outage of Redis left to do once it was back: how long until every
/// event stored before it came back was handled by `event_counts`.
async fn redis_recovery(scene: &Scene, report: &mut Report, name: &str, params: &Params, back: Instant, seq: i64) {
    let drained = poll_until(params.settle_within, || async {
        match scene.unhandled_through(seq).await? {
            0 => Ok(back.elapsed()),
            n => Err(format!("{n} events stored before Redis came back not handled yet")),
        }
    })
    .await;
    match drained {
        Ok(took) => {
            report.figure(&format!("{name}_recovery_s"), secs(took));
            report.check(
                format!("{name}: the worker reconnects and handles the backlog"),
                true,
                format!("every event stored during the outage handled {took:?} after Redis was back"),
            );
        }
        Err(missing) => report.check(format!("{name}: the worker reconnects and handles the backlog"), false, missing),
    }
}

/// Drill 2: Redis paused (`CLIENT PAUSE … ALL`) and, later, stopped (a clean
/// stop of a server with AOF, started again on its files), each for
/// `params.outage`, under write load with the worker running.
pub async fn redis_unavailable(params: &Params) -> Report {
    let mut report = Report::new("redis paused and stopped");
    let mut scene = Scene::new(Persistence::Aof).await;
    let (mut api, base) = scene.api(&[]).await;
    let mut worker = scene.worker(&[]).await;
    let mut load = scene.load(&base, "redis", Some((params.writers, params.write_rate))).await;
    load.add_writers(params.writers);
    scene.wait_counted(params.warm_events, Duration::from_secs(60)).await;

    // Paused: the server is up, every command waits.
    let paused_at = load.elapsed();
    scene.redis.pause(params.outage).await;
    let pause_end = Instant::now() + params.outage;
    tokio::time::sleep(params.outage.saturating_sub(Duration::from_millis(200))).await;
    let outbox_paused = scene.outbox().await;
    tokio::time::sleep_until(pause_end.into()).await;
    let seq = scene.last_seq().await;
    let resumed_at = load.elapsed();
    redis_recovery(&scene, &mut report, "paused", params, pause_end, seq).await;
    report.figure("paused_outbox_at_end", outbox_paused);

    // Stopped: nothing listens on the port.
    let stopped_at = load.elapsed();
    scene.redis.stop("-TERM").await;
    tokio::time::sleep(params.outage.saturating_sub(Duration::from_millis(200))).await;
    let outbox_stopped = scene.outbox().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    scene.redis.start_again().await;
    let back = Instant::now();
    let seq = scene.last_seq().await;
    let started_at = load.elapsed();
    redis_recovery(&scene, &mut report, "stopped", params, back, seq).await;
    report.figure("stopped_outbox_at_end", outbox_stopped);
    report.figure("stopped_s", secs(started_at - stopped_at));
    tokio::time::sleep(params.after).await;
    let answers = load.finish(Duration::from_secs(30)).await;

    let writes: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Write).collect();
    for (name, from, to) in [("paused", paused_at, resumed_at), ("stopped", stopped_at, started_at)] {
        let during: Vec<&Answer> = writes.iter().copied().filter(|a| a.sent >= from && a.sent < to).collect();
        let created = during.iter().filter(|a| a.status == Some(201)).count();
        report.figure(&format!("{name}_answers"), answers_figure(&during));
        report.check(
            format!("{name}: the api keeps accepting writes (201)"),
            created > 0 && created == during.len(),
            format!("{created} of {} writes sent meanwhile answered 201", during.len()),
        );
    }
    report.check(
        "events wait in the outbox while Redis is away",
        outbox_paused > 0 && outbox_stopped > 0,
        format!("outbox rows near the end of the pause: {outbox_paused}, of the stop: {outbox_stopped}"),
    );
    report.figure("answers", answers_figure(&writes));
    settle_checked(&scene, &mut report, params.settle_within).await;
    scene.check_exactly_once(&mut report, &answers, true).await;
    report.figure("worker_health", worker.health().await);
    still_running_then_stop(&mut report, &mut api).await;
    still_running_then_stop(&mut report, &mut worker).await;
    report.logs = scene.logs();
    report
}

/// Drill 3: Redis without persistence killed and started again empty while
/// `event_counts` is behind (relayed events not yet handled are lost with the
/// stream); the worker recreates its groups and `worker republish` puts the
/// lost events back, as on-call runs it.
pub async fn redis_restarted_empty(params: &Params) -> Report {
    let mut report = Report::new("redis restarted empty");
    let mut scene = Scene::new(Persistence::None).await;
    let (mut api, base) = scene.api(&[]).await;
    // A slow event_counts, so that it is behind when Redis goes.
    let mut worker = scene.worker(&[("XENTRI_WORKER__GROUPS__EVENT_COUNTS__CONCURRENCY", "1")]).await;
    let mut load = scene.load(&base, "empty", None).await;
    load.add_writers(params.writers);
    scene.wait_counted(params.warm_events, Duration::from_secs(60)).await;
    // Entries on the stream the group has not been handed yet: what the
    // worker has read is in its memory and survives Redis, these do not.
    let behind = poll_until(Duration::from_secs(60), || async {
        match scene.lag("event_counts").await {
            n if n >= 100 => Ok(n),
            n => Err(format!("{n} entries on the stream not yet delivered to event_counts")),
        }
    })
    .await;
    report.check("event_counts is behind when Redis goes", behind.is_ok(), format!("{behind:?}"));

    scene.redis.stop("-KILL").await;
    let killed = Instant::now();
    let lost_with_redis = scene.relayed_unhandled().await;
    report.figure("relayed_unhandled_at_kill", lost_with_redis);
    tokio::time::sleep(params.outage.saturating_sub(killed.elapsed())).await;
    scene.redis.start_again().await;
    let back = Instant::now();
    let recreated = poll_until(params.settle_within, || async {
        let groups = scene.groups().await;
        if groups.len() == 2 { Ok(back.elapsed()) } else { Err(format!("groups on events:work: {groups:?}")) }
    })
    .await;
    match &recreated {
        Ok(took) => {
            report.figure("groups_recreated_s", secs(*took));
            report.check("the worker recreates its groups", true, format!("{took:?} after Redis was back"));
        }
        Err(missing) => report.check("the worker recreates its groups", false, missing.clone()),
    }
    tokio::time::sleep(params.after).await;
    let answers = load.finish(Duration::from_secs(30)).await;
    let writes: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Write).collect();
    report.figure("answers", answers_figure(&writes));

    // The stream drained: what is not handled now never will be without help.
    if let Err(behind) = scene.settle(params.settle_within, false).await {
        report.check("the stream drains after the restart", false, behind);
    }
    let (code, audit) = scene.on_call("audit", "event_counts", &["--since-seq", "1"]).await;
    let missing = audit["summary"]["missing"].as_i64().unwrap_or(-1);
    report.figure("missing_before_republish", missing);
    report.check(
        "`worker audit` names the events whose handling was lost",
        code == Some(1) && missing > 0,
        format!("exit {code:?}, {missing} missing; {lost_with_redis} were relayed and unhandled at the kill"),
    );
    let republish_started = Instant::now();
    for group in ["event_counts", "cache_invalidation"] {
        let (code, outcome) = scene.on_call("republish", group, &["--since", "1h", "--yes"]).await;
        report.figure(&format!("republished_{group}"), outcome["republished"].clone());
        report.check(
            format!("`worker republish --group {group} --since 1h` exits 0"),
            code == Some(0),
            format!("exit {code:?}, published {}", outcome["republished"]),
        );
    }
    settle_checked(&scene, &mut report, params.settle_within).await;
    report.figure("recovered_after_republish_s", secs(republish_started.elapsed()));
    let (code, again) = scene.on_call("republish", "event_counts", &["--since", "1h", "--yes"]).await;
    report.check(
        "a second republish publishes nothing",
        code == Some(0) && again["republished"] == 0,
        format!("exit {code:?}, published {}", again["republished"]),
    );
    scene.check_exactly_once(&mut report, &answers, true).await;
    report.figure("worker_health", worker.health().await);
    still_running_then_stop(&mut report, &mut api).await;
    still_running_then_stop(&mut report, &mut worker).await;
    report.logs = scene.logs();
    report
}

/// Drill 4: the api SIGKILLed under write load, started again on the same
/// port after `params.api_down`; writers retry their keys meanwhile.
pub async fn api_killed(params: &Params) -> Report {
    let mut report = Report::new("api killed");
    let scene = Scene::new(Persistence::None).await;
    let port = free_port().to_string();
    let (mut api, base) = scene.api(&[("XENTRI_API__PORT", &port)]).await;
    let mut worker = scene.worker(&[]).await;
    let mut load = scene.load(&base, "kill", None).await;
    load.add_writers(params.writers * 2);
    scene.wait_counted(params.warm_events, Duration::from_secs(60)).await;

    let killed_at = load.elapsed();
    let status = api.signal("-KILL").await;
    let dead_at = load.elapsed();
    report.check("the api died of SIGKILL", status.code().is_none(), status.to_string());
    tokio::time::sleep(params.api_down).await;
    let restarted_at = load.elapsed();
    let (mut api, _) = scene.api(&[("XENTRI_API__PORT", &port)]).await;
    let up_at = load.elapsed();
    report.figure("api_start_s", secs(up_at - restarted_at));
    let first = poll_until(params.recover_within * 4, || async {
        load.first(|a| a.kind == Kind::Write && a.sent >= restarted_at && a.status == Some(201))
            .ok_or_else(|| "no 201 yet".to_owned())
    })
    .await;
    match &first {
        Ok(first) => {
            let took = first.answered().saturating_sub(restarted_at);
            report.figure("api_recovery_s", secs(took));
            report.check("the restarted api answers 201", true, format!("{took:?} after it was started"));
        }
        Err(missing) => report.check("the restarted api answers 201", false, missing.clone()),
    }
    tokio::time::sleep(params.after).await;
    let answers = load.finish(Duration::from_secs(30)).await;
    let writes: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Write).collect();
    report.figure("answers", answers_figure(&writes));

    // Cut at the kill: sent before the api was dead, and never answered.
    let cut: Vec<&&Answer> =
        writes.iter().filter(|a| a.sent < dead_at && a.answered() >= killed_at && a.status.is_none()).collect();
    report.figure("in_flight_at_kill", cut.len());
    report.check(
        "the kill cuts requests in flight (their connections drop, no answer)",
        !cut.is_empty(),
        format!("{} requests sent before the api died got no answer", cut.len()),
    );
    let while_dead =
        writes.iter().filter(|a| a.status.is_some() && a.answered() > dead_at && a.answered() < restarted_at).count();
    report.check("nothing is answered while the api is dead", while_dead == 0, format!("{while_dead} answers"));
    let cut_keys: HashSet<&str> = cut.iter().filter_map(|a| a.key.as_deref()).collect();
    let cut_created = writes
        .iter()
        .filter(|a| a.status == Some(201) && a.key.as_deref().is_some_and(|k| cut_keys.contains(k)))
        .count();
    report.check(
        "every key cut at the kill is answered 201 when retried after the restart",
        cut_created >= cut_keys.len(),
        format!("{} keys cut, {cut_created} 201 answers to their retries", cut_keys.len()),
    );
    let replayed: HashSet<&str> = writes
        .iter()
        .filter(|a| a.replayed && a.status == Some(201))
        .filter_map(|a| a.key.as_deref())
        .filter(|k| cut_keys.contains(k))
        .collect();
    report.figure("cut_keys_committed_before_the_kill", replayed.len());
    let bad: Vec<&&Answer> =
        writes.iter().filter(|a| !matches!(a.status, None | Some(201) | Some(409) | Some(503))).collect();
    report.check(
        "writes are answered 201 (or 409/503 to a retry), never another status",
        bad.is_empty(),
        format!("{} others, e.g. {:?}", bad.len(), bad.first().map(|a| (a.label(), &a.problem_type))),
    );
    settle_checked(&scene, &mut report, params.settle_within).await;
    scene.check_exactly_once(&mut report, &answers, true).await;
    still_running_then_stop(&mut report, &mut api).await;
    still_running_then_stop(&mut report, &mut worker).await;
    report.logs = scene.logs();
    report
}

/// Drill 5: a spike from `params.spike_from` to `params.spike_to` clients
/// (half writing, half reading) within `params.spike_ramp`, held, then back;
/// `/health` probed every 100 ms throughout. The api runs with
/// `api.max_concurrent_requests` = `params.max_concurrent_requests`.
pub async fn spike(params: &Params) -> Report {
    let mut report = Report::new("spike");
    let scene = Scene::new(Persistence::None).await;
    let limit = params.max_concurrent_requests.to_string();
    let (mut api, base) = scene.api(&[("XENTRI_API__MAX_CONCURRENT_REQUESTS", &limit)]).await;
    let mut load = scene.load(&base, "spike", None).await;
    load.add_health_probe(Duration::from_millis(100));
    load.add_writers(params.spike_from / 2);
    load.add_readers(params.spike_from - params.spike_from / 2);
    tokio::time::sleep(params.spike_base).await;
    let ramp_at = load.elapsed();
    let steps = 20u32;
    let per_step = (params.spike_to - params.spike_from) as f64 / steps as f64;
    for step in 1..=steps {
        tokio::time::sleep(params.spike_ramp / steps).await;
        let target = params.spike_from + (per_step * step as f64).round() as usize;
        let add = target.saturating_sub(load.clients());
        load.add_writers(add / 2);
        load.add_readers(add - add / 2);
    }
    let top_at = load.elapsed();
    tokio::time::sleep(params.spike_hold).await;
    let answers = load.finish(Duration::from_secs(30)).await;
    report.figure("clients", json!({"from": params.spike_from, "to": params.spike_to}));
    report.figure("ramp_s", secs(top_at - ramp_at));
    report.figure("max_concurrent_requests", params.max_concurrent_requests);

    let requests: Vec<&Answer> = answers.iter().filter(|a| a.kind != Kind::Health).collect();
    let health: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Health).collect();
    report.figure("answers", answers_figure(&requests));
    report.figure(
        "writes",
        answers_figure(&requests.iter().copied().filter(|a| a.kind == Kind::Write).collect::<Vec<_>>()),
    );
    report.figure(
        "reads",
        answers_figure(&requests.iter().copied().filter(|a| a.kind == Kind::Read).collect::<Vec<_>>()),
    );
    report.figure("health", answers_figure(&health));
    report.figure("per_second", load::per_second(requests.iter().copied()));
    let shed: Vec<&&Answer> = requests.iter().filter(|a| a.status == Some(503)).collect();
    let shed_off: Vec<&&&Answer> = shed
        .iter()
        .filter(|a| {
            a.retry_after.as_deref() != Some("1")
                || !a.problem_type.as_deref().is_some_and(|t| t.ends_with("/overloaded"))
        })
        .collect();
    let errors: Vec<&&Answer> = requests.iter().filter(|a| a.status.is_none_or(|s| s >= 500 && s != 503)).collect();
    report.check(
        "no 5xx but 503 load shedding, every request answered",
        errors.is_empty(),
        format!("{} others, e.g. {:?}", errors.len(), errors.first().map(|a| (a.label(), &a.error))),
    );
    report.check(
        "past the configured concurrency the api sheds load: 503 overloaded with Retry-After: 1",
        !shed.is_empty() && shed_off.is_empty(),
        format!(
            "{} × 503, {} of them not overloaded with Retry-After: 1 (e.g. {:?})",
            shed.len(),
            shed_off.len(),
            shed_off.first().map(|a| (&a.retry_after, &a.problem_type))
        ),
    );
    let client_errors: Vec<&&Answer> =
        requests.iter().filter(|a| a.status.is_some_and(|s| (400..500).contains(&s) && s != 409)).collect();
    report.check(
        "no 4xx (but 409 to a retry)",
        client_errors.is_empty(),
        format!("{} e.g. {:?}", client_errors.len(), client_errors.first().map(|a| (a.label(), &a.problem_type))),
    );
    let health_off = health.iter().filter(|a| a.status != Some(200)).count();
    let slowest_health = health.iter().map(|a| a.took).max().unwrap_or_default();
    report.check(
        "/health keeps answering 200 throughout",
        !health.is_empty() && health_off == 0,
        format!("{} probes, {health_off} not 200, slowest {slowest_health:?}", health.len()),
    );
    scene.check_exactly_once(&mut report, &answers, false).await;
    still_running_then_stop(&mut report, &mut api).await;
    report.logs = scene.logs();
    report
}
