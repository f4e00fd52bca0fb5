//! Test harness: settings, a worker running in-process, a recording handler,
//! and stream helpers.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;
use xentri_core::dlq::DeadLetter;
use xentri_core::{Actor, EventType, Settings, StoredEvent};
use xentri_worker::app::Worker;
use xentri_worker::handler::{
    BoxFuture, Handler, HandlerError, Handling, PgDelivery, PostgresStoreHandler, RedisDelivery, RedisStoreHandler,
    Store,
};

pub fn database_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// A key prefix of this test's own.
pub fn prefix() -> String {
    format!("t-{}:", Uuid::new_v4().simple())
}

/// Fast timings, built-in groups off (tests switch on what they need), plus `extra`.
pub fn settings(database_url: &str, prefix: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: Vec<(String, String)> = [
        ("DATABASE_URL", database_url.to_owned()),
        ("REDIS_URL", redis_url()),
        ("XENTRI_REDIS__KEY_PREFIX", prefix.to_owned()),
        ("XENTRI_DATABASE__MIGRATE_ON_START", "false".to_owned()),
        ("XENTRI_WORKER__PORT", "0".to_owned()),
        ("XENTRI_WORKER__BLOCK_MS", "100".to_owned()),
        ("XENTRI_WORKER__RECLAIM_INTERVAL_MS", "100".to_owned()),
        ("XENTRI_WORKER__VISIBILITY_TIMEOUT_MS", "400".to_owned()),
        ("XENTRI_WORKER__TRIM_INTERVAL_MS", "100".to_owned()),
        ("XENTRI_WORKER__SHUTDOWN_GRACE_MS", "5000".to_owned()),
        ("XENTRI_WORKER__RETRY__BASE_MS", "100".to_owned()),
        ("XENTRI_WORKER__RETRY__FACTOR", "3".to_owned()),
        ("XENTRI_WORKER__RETRY__JITTER", "false".to_owned()),
        ("XENTRI_WORKER__RELAY__POLL_INTERVAL_MS", "50".to_owned()),
        ("XENTRI_WORKER__GROUPS__CACHE_INVALIDATION__ENABLED", "false".to_owned()),
        ("XENTRI_WORKER__GROUPS__EVENT_COUNTS__ENABLED", "false".to_owned()),
        ("XENTRI_WORKER__GROUPS__JOBS__ENABLED", "false".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    Settings::load_from(&dir, Some("test"), vars).expect("test settings load")
}

/// A worker running in-process.
pub struct TestWorker {
    running: xentri_worker::app::RunningWorker,
}

pub async fn start(settings: Settings, handlers: Vec<Arc<dyn Handler>>) -> TestWorker {
    // Logs go to the captured output, shown when a test fails (RUST_LOG widens them).
    xentri_core::telemetry::init(&settings.telemetry);
    let worker = Worker::build(settings, handlers).await.expect("worker builds");
    TestWorker { running: worker.spawn() }
}

impl TestWorker {
    /// Signals shutdown and waits until the worker has drained.
    pub async fn stop(self) {
        self.running.stop().await.expect("worker stops cleanly");
    }
}

/// What a recorder does on a call.
#[derive(Debug, Clone)]
pub enum Step {
    Ok,
    Transient,
    Permanent,
}

/// One call of a recorder.
#[derive(Debug, Clone)]
pub struct Call {
    pub event_id: Uuid,
    pub attempt: u32,
    pub at: Instant,
    pub finished: bool,
}

/// A handler that records its calls and fails as scripted.
pub struct Recorder {
    pub group: String,
    pub stream: String,
    pub store: Store,
    pub script: Mutex<VecDeque<Step>>,
    pub calls: Mutex<Vec<Call>>,
    pub dead_letters: AtomicUsize,
    pub delay: Duration,
}

impl Recorder {
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            stream: "events:work".to_owned(),
            store: Store::Redis,
            script: Mutex::new(VecDeque::new()),
            calls: Mutex::new(Vec::new()),
            dead_letters: AtomicUsize::new(0),
            delay: Duration::ZERO,
        }
    }

    pub fn script(self, steps: &[Step]) -> Self {
        *self.script.lock().expect("lock") = steps.iter().cloned().collect();
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }

    pub fn finished(&self) -> usize {
        self.calls().iter().filter(|c| c.finished).count()
    }
}

impl Handler for Recorder {
    fn group(&self) -> &str {
        &self.group
    }

    fn streams(&self) -> Vec<String> {
        vec![self.stream.clone()]
    }

    fn accepts(&self, event_type: &str) -> bool {
        event_type != "xentri.ignored.thing.v1"
    }

    fn handling(&self) -> Handling<'_> {
        match self.store {
            Store::Redis => Handling::Redis(self),
            Store::Postgres => Handling::Postgres(self),
        }
    }

    fn on_dead_letter<'a>(
        &'a self,
        _event: Option<&'a StoredEvent>,
        _letter: &'a DeadLetter,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.dead_letters.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

impl Recorder {
    /// Records the call, waits `delay`, then takes the next step of the script;
    /// with a transaction (a Postgres-store group), counts the event in it
    /// first.
    async fn run(
        &self,
        event: &StoredEvent,
        attempt: u32,
        tx: Option<&mut sqlx::PgConnection>,
    ) -> Result<(), HandlerError> {
        let index = {
            let mut calls = self.calls.lock().expect("lock");
            calls.push(Call { event_id: event.id, attempt, at: Instant::now(), finished: false });
            calls.len() - 1
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let step = self.script.lock().expect("lock").pop_front().unwrap_or(Step::Ok);
        if let Some(tx) = tx {
            sqlx::query(
                "INSERT INTO event_count_slots (org_id, type, slot, count, last_seq) VALUES ($1, $2, 0, 1, $3)
                 ON CONFLICT (org_id, type, slot) DO UPDATE SET count = event_count_slots.count + 1",
            )
            .bind(event.org_id)
            .bind(event.event_type.as_str())
            .bind(event.seq)
            .execute(tx)
            .await
            .map_err(|e| HandlerError::Transient(e.into()))?;
        }
        self.calls.lock().expect("lock")[index].finished = true;
        match step {
            Step::Ok => Ok(()),
            Step::Transient => Err(HandlerError::transient("scripted transient failure")),
            Step::Permanent => Err(HandlerError::permanent("scripted permanent failure")),
        }
    }
}

impl RedisStoreHandler for Recorder {
    fn handle<'a>(&'a self, delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(self.run(delivery.event, delivery.attempt, None))
    }
}

impl PostgresStoreHandler for Recorder {
    fn handle<'a>(&'a self, delivery: PgDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(self.run(delivery.event, delivery.attempt, Some(delivery.tx)))
    }
}

pub fn event(org: Uuid, seq: i64) -> StoredEvent {
    let payload = serde_json::value::to_raw_value(&serde_json::json!({ "n": seq })).expect("json");
    StoredEvent {
        id: Uuid::now_v7(),
        seq,
        org_id: org,
        event_type: EventType::parse("xentri.soul.updated.v1").expect("type"),
        payload,
        actor: Actor::user("user_1").expect("actor"),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        correlation_id: "corr-1".into(),
        causation_id: None,
        occurred_at: Utc::now().trunc_subsecs(6),
    }
}

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// `XADD` of raw fields; returns the entry id.
pub async fn xadd(conn: &mut redis::aio::MultiplexedConnection, key: &str, fields: &[(String, String)]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*");
    for (k, v) in fields {
        cmd.arg(k).arg(v);
    }
    cmd.query_async(conn).await.expect("xadd")
}

pub async fn xadd_event(conn: &mut redis::aio::MultiplexedConnection, key: &str, event: &StoredEvent) -> String {
    let fields: Vec<(String, String)> =
        xentri_core::stream::encode(event).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    xadd(conn, key, &fields).await
}

pub async fn pending(conn: &mut redis::aio::MultiplexedConnection, key: &str, group: &str) -> usize {
    let reply: redis::RedisResult<redis::streams::StreamPendingReply> =
        redis::cmd("XPENDING").arg(key).arg(group).query_async(conn).await;
    reply.map(|r| r.count()).unwrap_or(0)
}

pub async fn xlen(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> usize {
    redis::cmd("XLEN").arg(key).query_async(conn).await.expect("xlen")
}

/// Entries of a stream as field maps.
pub async fn entries(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<xentri_core::stream::StreamEntry> {
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(key).arg("-").arg("+").query_async(conn).await.expect("xrange");
    reply
        .ids
        .into_iter()
        .map(|id| xentri_core::stream::StreamEntry::from_redis(id.id, &id.map).expect("text fields"))
        .collect()
}

/// Waits until `check` holds, polling; panics with `what` after 15 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every outbox row is below the commit horizon, so the relay
/// sees them all. The horizon is the server's: another test's open write
/// transaction holds it back a moment.
pub async fn outbox_visible(pool: &sqlx::PgPool) {
    eventually("the outbox is below the commit horizon", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT NOT EXISTS (SELECT 1 FROM outbox WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot()))",
        )
        .fetch_one(pool)
        .await
        .expect("the horizon")
    })
    .await;
}

/// The runtime's shared state built from `settings` on `pool` (for tests that
/// drive the relay, the trimmer or the alerts directly).
pub fn shared_state(pool: &sqlx::PgPool, settings: Settings) -> xentri_worker::runtime::Shared {
    let redis_pool = xentri_core::redis_pool::connect_lazy(&settings.redis).expect("redis pool");
    let client = redis::Client::open(redis_url()).expect("client");
    xentri_worker::runtime::Shared::new(redis_pool, client, pool.clone(), Arc::new(settings))
}

/// `XREADGROUP` of up to `count` new entries of stream `key` for `group`
/// (consumer `c1`), not acknowledged.
pub async fn read_group(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    group: &str,
    count: usize,
) -> Vec<redis::streams::StreamId> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("c1")
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await
        .expect("xreadgroup");
    reply.keys.into_iter().flat_map(|k| k.ids).collect()
}
