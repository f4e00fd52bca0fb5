//! The built binaries as an operator runs them: a database of their own, a
//! process whose log lines are kept and can be awaited, and signals.

use std::process::Stdio;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{binary, workspace};

/// The longest a binary may take to start or to stop.
pub const START_STOP_WITHIN: Duration = Duration::from_secs(20);

/// A database of its own on the server of `DATABASE_URL`.
pub struct Database {
    /// The server, with the `postgres` database, as the superuser.
    server: PgConnectOptions,
    /// The database's name.
    pub name: String,
    /// Its URL (as the superuser).
    pub url: String,
}

impl Database {
    /// Creates and migrates it with `api migrate`, as an operator would.
    pub async fn create(label: &str) -> Self {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/xentri_test".to_owned());
        Self::create_on(&base, label).await
    }

    /// Creates and migrates it with `api migrate` on the server of `base`
    /// (any database URL of that server, as the superuser), e.g. a
    /// [`crate::services::PrivatePostgres`] cluster.
    pub async fn create_on(base: &str, label: &str) -> Self {
        let server = PgConnectOptions::from_str(base).expect("a PostgreSQL URL").database("postgres");
        let name = format!("xentri_{label}_{}", Uuid::new_v4().simple());
        let url = format!("postgres://{}@{}:{}/{name}", server.get_username(), server.get_host(), server.get_port());
        let output = Command::new(binary("api"))
            .arg("migrate")
            .current_dir(workspace())
            .env("XENTRI_ENV", "test")
            .env("DATABASE_URL", &url)
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("`api migrate` runs");
        assert!(
            output.status.success(),
            "expected `api migrate` to create and migrate {name}, it failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { server, name, url }
    }

    /// A pool as the superuser, whom row-level security does not bind.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new().max_connections(2).connect(&self.url).await.expect("the test database accepts")
    }

    /// Drops it, whoever is still connected.
    pub async fn remove(self) {
        let mut server = self.server.connect().await.expect("the server accepts a connection");
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
            .execute(&mut server)
            .await
            .expect("the test database is dropped");
        let _ = server.close().await;
    }
}

/// A running binary; its stderr lines are kept, and sent on as they come.
pub struct Process {
    /// What it is, for messages.
    pub name: &'static str,
    child: Child,
    /// Its stderr so far (every run of the same role may share one log).
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::UnboundedReceiver<String>,
    /// The worker's `/health` and `/metrics` address, once it logged it.
    pub ops: Option<String>,
}

impl Process {
    /// Starts `command` in the workspace with the test profile.
    pub fn spawn(name: &'static str, mut command: Command, log: Arc<Mutex<Vec<String>>>) -> Self {
        let mut child = command
            .current_dir(workspace())
            .env("XENTRI_ENV", "test")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("expected the {name} binary to start: {error}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::unbounded_channel();
        let shared = log.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                shared.lock().expect("log lock is not poisoned").push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self { name, child, log, lines, ops: None }
    }

    /// Waits up to `within` for the JSON log line with this `message` and
    /// returns it; `None` when the process ended or the time ran out first.
    pub async fn try_wait_for(&mut self, message: &str, within: Duration) -> Option<serde_json::Value> {
        tokio::time::timeout(within, async {
            while let Some(line) = self.lines.recv().await {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                    && json["message"] == message
                {
                    return Some(json);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Waits for the JSON log line with this `message` and returns it.
    pub async fn wait_for(&mut self, message: &str, within: Duration) -> serde_json::Value {
        match self.try_wait_for(message, within).await {
            Some(json) => json,
            None => {
                panic!("expected the {} to log {message:?} within {within:?}; its log:\n{}", self.name, self.tail(40))
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or_else(|| panic!("expected the {} to run", self.name))
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` (`-KILL`, `-TERM`) and waits for the exit.
    pub async fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let sent = Command::new("kill").args([signal, &self.pid().to_string()]).status().await.expect("`kill` runs");
        assert!(sent.success(), "expected `kill {signal}` to reach the {}", self.name);
        tokio::time::timeout(START_STOP_WITHIN, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("expected the {} to exit on {signal}; its log:\n{}", self.name, self.tail(40)))
            .expect("the exit status is read")
    }

    /// Its resident set size now, from `/proc`, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// What `GET /health` on its ops port says, within two seconds.
    pub async fn health(&self) -> String {
        let Some(ops) = &self.ops else { return "no ops address logged".to_owned() };
        let request = reqwest::Client::new().get(format!("http://{ops}/health")).timeout(Duration::from_secs(2)).send();
        match request.await {
            Ok(response) => format!("{} {}", response.status(), response.text().await.unwrap_or_default()),
            Err(error) => format!("no answer ({error})"),
        }
    }

    /// The last `n` lines of its log.
    pub fn tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("log lock is not poisoned");
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Every line of its log so far (all runs sharing the log).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock is not poisoned").clone()
    }
}

/// Starts the `worker` binary on `database_url` with key prefix `prefix`,
/// the test profile, and `env` on top; waits until it logs `worker running`.
pub async fn start_worker(
    database_url: &str,
    prefix: &str,
    env: &[(&str, &str)],
    log: Arc<Mutex<Vec<String>>>,
) -> Process {
    let mut command = Command::new(binary("worker"));
    command
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", crate::redis_url())
        .env("XENTRI_REDIS__KEY_PREFIX", prefix)
        .env("XENTRI_DATABASE__MIGRATE_ON_START", "false")
        .env("XENTRI_WORKER__PORT", "0");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut worker = Process::spawn("worker", command, log);
    let running = worker.wait_for("worker running", START_STOP_WITHIN).await;
    worker.ops = running["ops"].as_str().map(str::to_owned);
    worker
}

/// Starts the `api` binary on `database_url` and `redis_url` with key prefix
/// `prefix`, the test profile, its start and stop lines logged (not a line per
/// request), and `env` on top (e.g. `XENTRI_API__PORT`, 0 by default); waits
/// until it logs `api listening` and returns it with its base URL.
pub async fn start_api(
    database_url: &str,
    redis_url: &str,
    prefix: &str,
    env: &[(&str, &str)],
    log: Arc<Mutex<Vec<String>>>,
) -> (Process, String) {
    let mut command = Command::new(binary("api"));
    command
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("XENTRI_REDIS__KEY_PREFIX", prefix)
        .env("XENTRI_API__PORT", "0")
        .env("XENTRI_DATABASE__MIGRATE_ON_START", "false")
        .env("XENTRI_TELEMETRY__LOG_FILTER", "warn,api=info");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut api = Process::spawn("api", command, log);
    let listening = api.wait_for("api listening", START_STOP_WITHIN).await;
    let address = listening["address"].as_str().expect("`api listening` carries the address").to_owned();
    (api, format!("http://{address}"))
}

/// The types a seeded backlog cycles through: three that `cache_invalidation`
/// takes (a website with a `site_id`) and one it does not.
pub const BACKLOG_TYPES: [&str; 4] = [
    "xentri.soul.updated.v1",
    "xentri.lead.created.v1",
    "xentri.website.published.v1",
    "xentri.finance.invoice.created.v1",
];

/// Appends `n` events spread over `orgs` and `types` straight into
/// `system_events` with their outbox rows for `events:work`, as a backlog after
/// a worker outage looks; returns the (first, last) seq. Every payload has a
/// `site_id`. Runs as the superuser, in chunks of 50,000 rows.
pub async fn seed_backlog(db: &PgPool, n: usize, orgs: &[Uuid], types: &[&str]) -> (i64, i64) {
    let mut range: Option<(i64, i64)> = None;
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(50_000);
        let (first, last): (i64, i64) = sqlx::query_as(
            "WITH ev AS (
                INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
                SELECT gen_random_uuid(), ($1::uuid[])[1 + (($4 + i) % cardinality($1::uuid[]))],
                       ($2::text[])[1 + ((($4 + i) / cardinality($1::uuid[])) % cardinality($2::text[]))],
                       json_build_object('n', $4 + i, 'site_id', 's' || (($4 + i) % 7)),
                       'user:backlog', '4bf92f3577b34da6a3ce929d0e0e4736', 'backlog-' || ($4 + i), now()
                FROM generate_series(0, $3 - 1) AS i
                RETURNING seq, org_id
             ), ob AS (
                INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events:work', org_id FROM ev
             )
             SELECT min(seq), max(seq) FROM ev",
        )
        .bind(orgs)
        .bind(types)
        .bind(chunk as i32)
        .bind(done as i32)
        .fetch_one(db)
        .await
        .expect("the backlog is seeded");
        range = Some(range.map_or((first, last), |(f, _)| (f, last)));
        done += chunk;
    }
    range.unwrap_or((0, 0))
}
