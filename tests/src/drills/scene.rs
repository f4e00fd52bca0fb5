//! A drill's stage: a private PostgreSQL cluster with a migrated database, a
//! private Redis server, the api and worker started on them, load clients,
//! and the reckoning: what is stored, handled, dead-lettered and audited.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use super::{Params, Report};
use crate::load::{self, Answer, Kind, Load, Options, TYPES};
use crate::processes::{Database, Process, start_api, start_worker};
use crate::services::{Persistence, PrivatePostgres, PrivateRedis};
use crate::{binary, group_progress, poll_until, workspace};

/// The Redis key prefix of every drill (each has a Redis of its own).
pub(super) const PREFIX: &str = "drill:";

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
    /// Settings every worker of the drill starts with.
    worker_env: Vec<(&'static str, String)>,
    api_log: Arc<Mutex<Vec<String>>>,
    worker_log: Arc<Mutex<Vec<String>>>,
}

impl Scene {
    /// Starts the servers and migrates a database with `api migrate`.
    pub async fn new(redis: Persistence, params: &Params) -> Self {
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
            worker_env: params
                .visibility_timeout
                .map(|timeout| {
                    let ms = timeout.as_millis() as u64;
                    vec![
                        ("XENTRI_WORKER__VISIBILITY_TIMEOUT_MS", ms.to_string()),
                        ("XENTRI_WORKER__RECLAIM_INTERVAL_MS", (ms / 4).max(50).to_string()),
                    ]
                })
                .unwrap_or_default(),
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
        all.extend(self.worker_env.iter().map(|(key, value)| (*key, value.as_str())));
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

    /// What both processes logged at WARN and ERROR: per process and level,
    /// the count of lines per message (what on-call sees in the logs).
    pub fn log_summary(&self) -> Value {
        let summarise = |log: &Arc<Mutex<Vec<String>>>| {
            let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
            for line in log.lock().expect("log lock is not poisoned").iter() {
                let Ok(json) = serde_json::from_str::<Value>(line) else { continue };
                let level = json["level"].as_str().unwrap_or_default();
                if level == "WARN" || level == "ERROR" {
                    *counts.entry(format!("{level} {}", json["message"].as_str().unwrap_or_default())).or_default() +=
                        1;
                }
            }
            json!(counts)
        };
        json!({"api": summarise(&self.api_log), "worker": summarise(&self.worker_log)})
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
