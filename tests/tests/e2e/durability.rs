//! Durability of the worker at the scale of an outage's backlog, with the
//! built binaries:
//! - crash and restart: a backlog of 100,000 events while the worker is
//!   SIGKILLed at each of its crash points (relay publishing, a read batch
//!   delivered, an entry handled but not acked, acks queued, a reclaim, a
//!   trim) and restarted; in the end every group has handled every event
//!   exactly once, counted from its processed records and the projection;
//! - long run: one worker process drains 300,000 group entries with logging
//!   at the default level, without crashing and without its memory growing.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use sqlx::PgPool;
use uuid::Uuid;
use xentri_e2e::processes::{BACKLOG_TYPES, Database, Process, seed_backlog, start_worker};
use xentri_e2e::{delete_keys_under, group_progress, poll_until, redis_connection, unique_key_prefix};

/// The types `cache_invalidation` takes.
const CACHED_TYPES: [&str; 3] = ["xentri.soul.updated.v1", "xentri.lead.created.v1", "xentri.website.published.v1"];

/// Fast reclaim and trimming, a small cap so trimming runs all the time, and
/// room for three kills without an entry looking poisonous.
const CRASH_SETTINGS: [(&str, &str); 9] = [
    ("XENTRI_WORKER__VISIBILITY_TIMEOUT_MS", "1000"),
    ("XENTRI_WORKER__RECLAIM_INTERVAL_MS", "200"),
    ("XENTRI_WORKER__BLOCK_MS", "100"),
    ("XENTRI_WORKER__TRIM_INTERVAL_MS", "200"),
    ("XENTRI_WORKER__MAX_DELIVERIES", "50"),
    ("XENTRI_WORKER__RELAY__POLL_INTERVAL_MS", "50"),
    ("XENTRI_WORKER__GROUPS__EVENT_COUNTS__CONCURRENCY", "16"),
    ("XENTRI_STREAMS__WORK_CAP", "2000"),
    ("XENTRI_TELEMETRY__LOG_FILTER", "warn,worker=info"),
];

/// A test's database, key prefix and logs; cleaned up whatever happens.
struct Scene {
    database: Database,
    db: PgPool,
    prefix: String,
    redis: MultiplexedConnection,
    log: Arc<Mutex<Vec<String>>>,
}

impl Scene {
    async fn new(label: &str) -> Self {
        xentri_api::install_crypto_provider();
        let database = Database::create(label).await;
        let db = database.pool().await;
        Self { database, db, prefix: unique_key_prefix(), redis: redis_connection().await, log: Arc::default() }
    }

    async fn worker(&self, env: &[(&str, &str)]) -> Process {
        start_worker(&self.database.url, &self.prefix, env, self.log.clone()).await
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs `test`, then drops the database and the Redis keys; a failure is
    /// reported with the worker's last log lines.
    async fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(Arc<Scene>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let scene = Arc::new(self);
        let outcome = tokio::spawn(test(scene.clone())).await;
        let Ok(scene) = Arc::try_unwrap(scene) else { panic!("the scene outlives its test") };
        let mut redis = scene.redis.clone();
        delete_keys_under(&mut redis, &scene.prefix).await.expect("the test's Redis keys are deleted");
        scene.db.close().await;
        scene.database.remove().await;
        if let Err(error) = outcome {
            let log = scene.log.lock().expect("log lock is not poisoned");
            eprintln!("--- the last lines the worker logged ---\n{}", log[log.len().saturating_sub(60)..].join("\n"));
            std::panic::resume_unwind(error.into_panic());
        }
    }

    async fn processed(&self, group: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE group_name = $1")
            .bind(group)
            .fetch_one(&self.db)
            .await
            .expect("processed_events is readable")
    }

    /// Waits until the outbox is empty, every group on `events:work` has been
    /// handed every entry and acknowledged it, and `event_counts` has a
    /// processed record per event.
    async fn settled(&self, events: i64, within: Duration, worker: &Process) {
        let stream = self.key("events:work");
        let settled = poll_until(within, || async {
            let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(&self.db)
                .await
                .map_err(|e| e.to_string())?;
            let progress = group_progress(&mut self.redis.clone(), &stream).await.map_err(|e| e.to_string())?;
            let behind: Vec<_> = progress.iter().filter(|p| !p.read_all || p.pending > 0).collect();
            let counted = self.processed("event_counts").await;
            if outbox == 0 && behind.is_empty() && progress.len() == 2 && counted == events {
                Ok(())
            } else {
                Err(format!("{outbox} rows in the outbox, {counted} of {events} counted, groups behind: {behind:?}"))
            }
        })
        .await;
        if let Err(missing) = settled {
            panic!(
                "expected every event relayed and every group done within {within:?}, but: {missing}; /health: {}",
                worker.health().await
            );
        }
    }

    /// `worker audit --group <group> --since-seq 1 --json`, as on-call runs
    /// it: its exit code and its report.
    async fn audit(&self, group: &str) -> (Option<i32>, serde_json::Value) {
        let output = tokio::process::Command::new(xentri_e2e::binary("worker"))
            .args(["audit", "--group", group, "--since-seq", "1", "--json"])
            .current_dir(xentri_e2e::workspace())
            .env("XENTRI_ENV", "test")
            .env("DATABASE_URL", &self.database.url)
            .env("REDIS_URL", xentri_e2e::redis_url())
            .env("XENTRI_REDIS__KEY_PREFIX", &self.prefix)
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("`worker audit` runs");
        let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!(
                "expected a JSON report from `worker audit`, got {}; stderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code(), report)
    }

    /// Asserts that `worker audit` finds nothing missing for either group on
    /// `events:work`.
    async fn assert_audit_clean(&self) {
        for group in ["event_counts", "cache_invalidation"] {
            let (code, report) = self.audit(group).await;
            assert_eq!(code, Some(0), "expected `worker audit --group {group}` to exit 0, its report: {report:#}");
        }
    }

    /// Ids of the events of `types` appended by the backlog.
    async fn ids_of(&self, types: &[&str]) -> Vec<Uuid> {
        sqlx::query_scalar("SELECT id FROM system_events WHERE type = ANY($1) AND actor = 'user:backlog'")
            .bind(types)
            .fetch_all(&self.db)
            .await
            .expect("system_events is readable")
    }

    /// How many of `ids` have a Redis processed record of `group`.
    async fn redis_processed(&self, group: &str, ids: &[Uuid]) -> usize {
        let mut found = 0;
        let mut redis = self.redis.clone();
        for chunk in ids.chunks(5_000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("EXISTS").arg(self.key(&format!("processed:{group}:{id}")));
            }
            let exists: Vec<bool> = pipe.query_async(&mut redis).await.expect("EXISTS of processed records");
            found += exists.into_iter().filter(|e| *e).count();
        }
        found
    }

    /// `event_counts` equals what `system_events` holds, per (org, type).
    async fn assert_projection_exact(&self) {
        let expected: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "SELECT org_id, type, count(*) FROM system_events WHERE actor = 'user:backlog' GROUP BY 1, 2",
        )
        .fetch_all(&self.db)
        .await
        .expect("system_events is readable");
        let counted: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "SELECT org_id, type, count FROM event_counts WHERE org_id <> '00000000-0000-0000-0000-000000000000'",
        )
        .fetch_all(&self.db)
        .await
        .expect("event_counts is readable");
        let as_map = |rows: Vec<(Uuid, String, i64)>| -> BTreeMap<(Uuid, String), i64> {
            rows.into_iter().map(|(org, t, n)| ((org, t), n)).collect()
        };
        assert_eq!(as_map(counted), as_map(expected), "expected event_counts to count each event exactly once");
    }
}

fn orgs(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::now_v7()).collect()
}

/// Where the worker is killed, in this order, with the time the point must be
/// reached (`point:n`, the n-th time) so that each kill interrupts real work.
const CRASH_POINTS: [&str; 6] =
    ["relay.published:3", "lane.batch:4", "entry.handled:3000", "acker.flush:30", "lane.reclaimed:1", "trimmer.trim:3"];

/// Events of the crash test.
const CRASH_EVENTS: usize = 100_000;
/// Of which cannot be handled by `cache_invalidation` (a website without a
/// `site_id`): they, and only they, end in the DLQ.
const POISONED: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_handled_exactly_once_although_the_worker_is_killed_at_each_crash_point() {
    Scene::new("crash").await.run(crash_and_restart).await;
}

async fn crash_and_restart(scene: Arc<Scene>) {
    let started = Instant::now();
    let orgs = orgs(5);
    // The poisoned events first, so they are dead-lettered while the kills
    // go on; then the backlog.
    let poisoned: Vec<Uuid> = sqlx::query_scalar(
        "WITH ev AS (
            INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
            SELECT gen_random_uuid(), $1, 'xentri.website.published.v1', '{}'::json, 'user:backlog',
                   '4bf92f3577b34da6a3ce929d0e0e4736', 'poisoned-' || i, now()
            FROM generate_series(1, $2) AS i
            RETURNING id, seq, org_id
         ), ob AS (INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events:work', org_id FROM ev)
         SELECT id FROM ev",
    )
    .bind(orgs[0])
    .bind(POISONED as i32)
    .fetch_all(&scene.db)
    .await
    .expect("the poisoned events are appended");
    seed_backlog(&scene.db, CRASH_EVENTS - POISONED, &orgs, &BACKLOG_TYPES).await;

    let mut kills = Vec::new();
    for point in CRASH_POINTS {
        let mut env: Vec<(&str, &str)> = CRASH_SETTINGS.to_vec();
        env.push(("XENTRI_WORKER__PAUSE_AT", point));
        let mut worker = scene.worker(&env).await;
        let reached = worker.try_wait_for("pause point reached", Duration::from_secs(90)).await;
        assert!(reached.is_some(), "expected the worker to reach {point}; its log:\n{}", worker.tail(40));
        let status = worker.signal("-KILL").await;
        kills.push(format!(
            "{point} after {:?}: {status}, {} counted",
            started.elapsed(),
            scene.processed("event_counts").await
        ));
    }
    eprintln!("crash test: kills: {kills:#?}");

    let worker = scene.worker(&CRASH_SETTINGS).await;
    scene.settled(CRASH_EVENTS as i64, Duration::from_secs(240), &worker).await;
    eprintln!("crash test: settled {:?} after the first start", started.elapsed());

    // event_counts: one processed record per event, and the projection counts
    // each event once.
    assert_eq!(scene.processed("event_counts").await, CRASH_EVENTS as i64);
    scene.assert_projection_exact().await;
    // cache_invalidation: a processed record for every event of its types but
    // the poisoned ones, which are in the DLQ, and only they.
    let cached = scene.ids_of(&CACHED_TYPES).await;
    let poisoned_set: HashSet<Uuid> = poisoned.iter().copied().collect();
    let handled: Vec<Uuid> = cached.iter().copied().filter(|id| !poisoned_set.contains(id)).collect();
    assert_eq!(
        scene.redis_processed("cache_invalidation", &handled).await,
        handled.len(),
        "expected a processed record of cache_invalidation for each of its {} events",
        handled.len()
    );
    assert_eq!(scene.redis_processed("cache_invalidation", &poisoned).await, 0);
    let mut redis = scene.redis.clone();
    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(scene.key("events:dlq"))
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .expect("XRANGE");
    let dead: Vec<(String, String)> = dead
        .ids
        .iter()
        .map(|e| {
            let text = |name: &str| e.get::<String>(name).unwrap_or_default();
            (text("id"), text("dlq_group"))
        })
        .collect();
    let mut expected_dead: Vec<(String, String)> =
        poisoned.iter().map(|id| (id.to_string(), "cache_invalidation".to_owned())).collect();
    let mut dead_sorted = dead.clone();
    dead_sorted.sort();
    expected_dead.sort();
    assert_eq!(dead_sorted, expected_dead, "expected exactly the poisoned events in the DLQ");
    let progress = group_progress(&mut redis, &scene.key("events:work")).await.expect("groups");
    assert!(progress.iter().all(|p| p.pending == 0), "expected nothing pending, got {progress:?}");
    scene.assert_audit_clean().await;

    let mut worker = worker;
    let exit = worker.signal("-TERM").await;
    assert!(exit.success(), "expected the worker to exit 0 on SIGTERM, got {exit}; its log:\n{}", worker.tail(20));
}

/// Events of the long run: each is an entry for both groups on
/// `events:work`, so the worker drains 300,000 group entries.
const LONG_RUN_EVENTS: usize = 150_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_drains_300000_entries_without_crashing_or_growing() {
    Scene::new("longrun").await.run(long_run).await;
}

async fn long_run(scene: Arc<Scene>) {
    let orgs = orgs(10);
    seed_backlog(&scene.db, LONG_RUN_EVENTS, &orgs, &CACHED_TYPES).await;
    let started = Instant::now();
    // Logging at the default level of the shipped configuration.
    let default_filter =
        xentri_core::Settings::load_from(&xentri_e2e::config_dir(), None, Vec::<(String, String)>::new())
            .expect("the shipped configuration loads")
            .telemetry
            .log_filter;
    let worker = scene
        .worker(&[
            ("XENTRI_TELEMETRY__LOG_FILTER", default_filter.as_str()),
            ("XENTRI_WORKER__GROUPS__EVENT_COUNTS__CONCURRENCY", "32"),
            ("XENTRI_DATABASE__MAX_CONNECTIONS", "48"),
        ])
        .await;
    let early = poll_until(Duration::from_secs(60), || async {
        match scene.processed("event_counts").await {
            n if n >= 10_000 => Ok(worker.rss_kib()),
            n => Err(format!("{n} handled")),
        }
    })
    .await
    .unwrap_or_else(|missing| panic!("expected 10,000 events handled within a minute: {missing}"))
    .expect("the worker's RSS is readable");
    scene.settled(LONG_RUN_EVENTS as i64, Duration::from_secs(300), &worker).await;
    let mut worker = worker;
    let drained_in = started.elapsed();
    assert!(worker.exited().is_none(), "expected the worker to be running; its log:\n{}", worker.tail(40));
    let end = worker.rss_kib().expect("the worker's RSS is readable");
    eprintln!(
        "long run: {} group entries in {drained_in:?}; RSS after 10,000: {} MiB, after the drain: {} MiB",
        LONG_RUN_EVENTS * 2,
        early / 1024,
        end / 1024
    );
    assert!(
        end <= early + 50 * 1024,
        "expected RSS after the drain ({end} KiB) within 50 MiB of RSS after the first 10,000 ({early} KiB)"
    );
    assert_eq!(scene.processed("event_counts").await, LONG_RUN_EVENTS as i64);
    scene.assert_projection_exact().await;
    let cached = scene.ids_of(&CACHED_TYPES).await;
    assert_eq!(scene.redis_processed("cache_invalidation", &cached).await, LONG_RUN_EVENTS);
    scene.assert_audit_clean().await;
    let exit = worker.signal("-TERM").await;
    assert!(exit.success(), "expected the worker to exit 0 on SIGTERM, got {exit}; its log:\n{}", worker.tail(20));
}
