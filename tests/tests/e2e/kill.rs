//! The kill tests: the built `api` and `worker` binaries on a fresh database.
//! 5,000 events are posted while the worker is SIGKILLed three times at random
//! moments and restarted each time; in the end every event is counted exactly
//! once, the outbox is empty, no entry is pending and none was dead-lettered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::process::Command;
use uuid::Uuid;
use xentri_e2e::processes::{Database, Process, START_STOP_WITHIN, start_worker};
use xentri_e2e::unique_key_prefix;
use xentri_e2e::{binary, delete_keys_under, eventually, group_progress, poll_until, redis_connection, redis_url};

/// Events posted.
const EVENTS: usize = 5_000;
/// Orgs they are spread over.
const ORGS: usize = 5;
/// Types they are spread over; every one is valid for `cache_invalidation`
/// given a `site_id`, so no event is dead-lettered by content.
const TYPES: [&str; 3] = ["xentri.soul.updated.v1", "xentri.lead.created.v1", "xentri.website.published.v1"];
/// Requests in flight at once.
const IN_FLIGHT: usize = 32;
/// SIGKILLs of the worker.
const KILLS: usize = 3;
/// The dev secret of `config/default.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// The longest the system may take to catch up after the last post.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);

/// The org and type of the `n`th event.
fn spread(n: usize) -> (usize, &'static str) {
    (n % ORGS, TYPES[(n / ORGS) % TYPES.len()])
}

/// How the api and workers of this test are started.
struct Launcher {
    database_url: String,
    prefix: String,
    api_log: Arc<Mutex<Vec<String>>>,
    worker_log: Arc<Mutex<Vec<String>>>,
}

impl Launcher {
    /// Starts the api and returns it with its address.
    async fn api(&self) -> (Process, String) {
        let mut command = Command::new(binary("api"));
        command
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", redis_url())
            .env("XENTRI_REDIS__KEY_PREFIX", &self.prefix)
            .env("XENTRI_API__PORT", "0")
            .env("XENTRI_DATABASE__MIGRATE_ON_START", "false")
            // Its start and stop lines, not a line per request.
            .env("XENTRI_TELEMETRY__LOG_FILTER", "warn,api=info");
        let mut api = Process::spawn("api", command, self.api_log.clone());
        let listening = api.wait_for("api listening", START_STOP_WITHIN).await;
        let address = listening["address"].as_str().expect("`api listening` carries the address").to_owned();
        (api, format!("http://{address}"))
    }

    /// Starts a worker and waits until it runs.
    async fn worker(&self) -> Process {
        let env = [
            ("XENTRI_WORKER__VISIBILITY_TIMEOUT_MS", "1000"),
            ("XENTRI_WORKER__RECLAIM_INTERVAL_MS", "200"),
            ("XENTRI_WORKER__BLOCK_MS", "100"),
            ("XENTRI_WORKER__RELAY__POLL_INTERVAL_MS", "50"),
            // Three kills must not make an entry look poisonous.
            ("XENTRI_WORKER__MAX_DELIVERIES", "50"),
            // Processed records of this run need not outlive it.
            ("XENTRI_WORKER__PROCESSED_TTL_SECS", "600"),
            // Warnings, plus `worker running` and `worker stopped`.
            ("XENTRI_TELEMETRY__LOG_FILTER", "warn,worker=info"),
        ];
        start_worker(&self.database_url, &self.prefix, &env, self.worker_log.clone()).await
    }
}

/// Posts every event, `IN_FLIGHT` at a time; returns the failures.
async fn post_all(address: String, orgs: Vec<Uuid>) -> Vec<String> {
    let client = reqwest::Client::new();
    let tokens: Vec<String> = orgs
        .iter()
        .map(|org| {
            xentri_api::auth::token::dev_token(DEV_SECRET, *org, "user_kill", Duration::from_secs(600))
                .expect("a dev token is minted")
        })
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (client, tokens, next, address) = (client.clone(), tokens.clone(), next.clone(), address.clone());
        posters.spawn(async move {
            let mut failures = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= EVENTS {
                    return failures;
                }
                let (org, event_type) = spread(n);
                let response = client
                    .post(format!("{address}/api/v1/events"))
                    .bearer_auth(&tokens[org])
                    .header("Idempotency-Key", format!("kill-{n}"))
                    .json(&serde_json::json!({"type": event_type, "payload": xentri_test_support::valid_payload_with(
                        event_type,
                        serde_json::json!({"n": n, "site_id": xentri_test_support::sample_site_id(n % 7)}),
                    )}))
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 201 => {}
                    Ok(response) => {
                        let status = response.status();
                        failures.push(format!("event {n}: {status} {}", response.text().await.unwrap_or_default()));
                    }
                    Err(error) => failures.push(format!("event {n}: {error}")),
                }
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(poster) = posters.join_next().await {
        failures.extend(poster.expect("a poster does not panic"));
    }
    failures
}

async fn counted(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(sum(count), 0)::bigint FROM event_counts")
        .fetch_one(db)
        .await
        .expect("event_counts is readable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_counted_once_although_the_worker_is_killed_three_times() {
    let database = Database::create("kill").await;
    let prefix = unique_key_prefix();
    let launcher = Launcher {
        database_url: database.url.clone(),
        prefix: prefix.clone(),
        api_log: Arc::default(),
        worker_log: Arc::default(),
    };
    let (api_log, worker_log) = (launcher.api_log.clone(), launcher.worker_log.clone());
    let outcome = tokio::spawn(run(launcher)).await;
    // Clean up whatever happened, then report it.
    database.remove().await;
    let mut redis = redis_connection().await;
    delete_keys_under(&mut redis, &prefix).await.expect("the test's Redis keys are deleted");
    if let Err(error) = outcome {
        for (name, log) in [("api", api_log), ("worker", worker_log)] {
            let log = log.lock().expect("log lock is not poisoned");
            eprintln!("--- the last lines the {name} logged ---\n{}", log[log.len().saturating_sub(60)..].join("\n"));
        }
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn run(launcher: Launcher) {
    let (database_url, prefix) = (launcher.database_url.clone(), launcher.prefix.clone());
    xentri_api::install_crypto_provider();
    let seed: u64 =
        std::env::var("KILL_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::rng().random());
    eprintln!("kill test: seed {seed} (set KILL_TEST_SEED to replay), database {database_url}, prefix {prefix}");
    let mut rng = StdRng::seed_from_u64(seed);
    // As the superuser, whom row-level security does not bind.
    let db = PgPoolOptions::new().max_connections(2).connect(&database_url).await.expect("the test database accepts");
    let (mut api, address) = launcher.api().await;
    let mut worker = launcher.worker().await;
    let orgs: Vec<Uuid> = (0..ORGS).map(|_| Uuid::now_v7()).collect();
    let mut expected: BTreeMap<(Uuid, String), i64> = BTreeMap::new();
    for n in 0..EVENTS {
        let (org, event_type) = spread(n);
        *expected.entry((orgs[org], event_type.to_owned())).or_default() += 1;
    }

    let started = Instant::now();
    let posting = tokio::spawn(post_all(address, orgs.clone()));
    // Kill only once the worker is processing, so each kill interrupts work.
    eventually(START_STOP_WITHIN, "the worker to count a first event", || async {
        match counted(&db).await {
            0 => Err("nothing counted yet".to_owned()),
            n => Ok(n),
        }
    })
    .await;
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        let delay = Duration::from_millis(rng.random_range(100..=800));
        tokio::time::sleep(delay).await;
        let status = worker.signal("-KILL").await;
        kills.push(format!(
            "after {:?} (+{delay:?}): {status}, {} counted, posting done: {}",
            started.elapsed(),
            counted(&db).await,
            posting.is_finished()
        ));
        worker = launcher.worker().await;
    }
    let failures = posting.await.expect("posting does not panic");
    let posted_in = started.elapsed();
    eprintln!("kill test: {EVENTS} events posted in {posted_in:?}; kills: {kills:#?}");
    assert!(
        failures.is_empty(),
        "expected every post to be stored (201); {} failed, the first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // Settled: everything relayed, every group on the stream has been handed
    // every entry and has acknowledged it.
    let stream = format!("{prefix}events:work");
    let mut redis = redis_connection().await;
    let progress = {
        let redis = &redis;
        poll_until(SETTLE_WITHIN, || async {
            let outbox: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&db).await.map_err(|e| e.to_string())?;
            let progress = group_progress(&mut redis.clone(), &stream).await.map_err(|e| e.to_string())?;
            let behind: Vec<_> = progress.iter().filter(|p| !p.read_all || p.pending > 0).collect();
            let counted = counted(&db).await;
            let has = |group: &str| progress.iter().any(|p| p.name == group);
            if outbox == 0 && behind.is_empty() && has("event_counts") && has("cache_invalidation") {
                Ok(progress)
            } else {
                Err(format!("{outbox} rows in the outbox, {counted} events counted, groups behind: {behind:?}"))
            }
        })
        .await
    };
    let progress = match progress {
        Ok(progress) => progress,
        Err(missing) => panic!(
            "expected the outbox to empty and every group to acknowledge every entry within {SETTLE_WITHIN:?}, \
             but at the deadline: {missing}; the worker's /health: {}",
            worker.health().await
        ),
    };
    let settled_in = started.elapsed();
    eprintln!("kill test: settled {settled_in:?} after the first post");

    let counts: Vec<(Uuid, String, i64)> =
        sqlx::query_as("SELECT org_id, type, count FROM event_counts").fetch_all(&db).await.expect("event_counts");
    let counts: BTreeMap<(Uuid, String), i64> = counts.into_iter().map(|(org, t, n)| ((org, t), n)).collect();
    let dlq: usize =
        redis::cmd("XLEN").arg(format!("{prefix}events:dlq")).query_async(&mut redis).await.expect("XLEN of the DLQ");
    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{prefix}events:dlq"))
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(5)
        .query_async(&mut redis)
        .await
        .expect("XRANGE of the DLQ");
    let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE group_name = 'event_counts'")
        .fetch_one(&db)
        .await
        .expect("processed_events is readable");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM system_events WHERE org_id = ANY($1)")
        .bind(&orgs)
        .fetch_one(&db)
        .await
        .expect("system_events is readable");

    assert_eq!(stored, EVENTS as i64, "expected the api to have stored each of the {EVENTS} events once");
    assert_eq!(
        dlq,
        0,
        "expected no dead letters on {prefix}events:dlq; the first: {:#?}",
        dead.ids.iter().map(|e| &e.map).collect::<Vec<_>>()
    );
    assert_eq!(counts, expected, "expected event_counts to count each posted event once per (org, type)");
    assert_eq!(processed, EVENTS as i64, "expected one processed_events row per event for group event_counts");
    assert!(
        progress.iter().all(|p| p.pending == 0),
        "expected nothing pending in any group on {stream}, got {progress:?}"
    );

    let api_exit = api.signal("-TERM").await;
    let worker_exit = worker.signal("-TERM").await;
    assert!(api_exit.success(), "expected the api to exit 0 on SIGTERM, got {api_exit}; its log:\n{}", api.tail(20));
    assert!(
        worker_exit.success(),
        "expected the worker to exit 0 on SIGTERM, got {worker_exit}; its log:\n{}",
        worker.tail(20)
    );
}

/// A task the supervisor gives up ends the process with exit code 1, so that
/// systemd or Kubernetes starts it again; it never runs on without the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_task_cannot_be_restarted_exits_1() {
    let database = Database::create("giveup").await;
    let prefix = unique_key_prefix();
    let env = [
        ("XENTRI_WORKER__PANIC_AT", "lane.event_counts:always"),
        ("XENTRI_WORKER__SUPERVISOR__FIRST_DELAY_MS", "10"),
        ("XENTRI_WORKER__SUPERVISOR__MAX_DELAY_MS", "20"),
        ("XENTRI_WORKER__SUPERVISOR__MAX_RESTARTS", "2"),
    ];
    let mut command = Command::new(binary("worker"));
    command
        .env("DATABASE_URL", &database.url)
        .env("REDIS_URL", redis_url())
        .env("XENTRI_REDIS__KEY_PREFIX", &prefix)
        .env("XENTRI_DATABASE__MIGRATE_ON_START", "false")
        .env("XENTRI_WORKER__PORT", "0")
        .envs(env);
    let mut worker = Process::spawn("worker", command, Arc::default());
    let stopped = worker.wait_for("worker stopped: a task cannot run", START_STOP_WITHIN).await;
    assert!(
        stopped["error"].as_str().is_some_and(|e| e.contains("event_counts") && e.contains("2 times in a row")),
        "expected the given-up task named: {stopped}"
    );
    let status = tokio::time::timeout(START_STOP_WITHIN, async {
        loop {
            if let Some(status) = worker.exited() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the worker exits after giving up a task");
    assert_eq!(status.code(), Some(1), "exit code for the process supervisor; log:\n{}", worker.tail(20));
    database.remove().await;
    let mut redis = redis_connection().await;
    delete_keys_under(&mut redis, &prefix).await.expect("the test's Redis keys are deleted");
}
