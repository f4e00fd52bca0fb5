//! Test harness: settings, a worker running in-process, a recording handler,
//! and stream helpers; what every crate's tests share is `xentri_test_support`,
//! one handler on its own is `xentri_worker::testing`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;
use xentri_core::dlq::DeadLetter;
use xentri_core::{Settings, StoredEvent};
pub use xentri_test_support::{
    DEADLINE, TestSettings, database_url, redis_connection as redis, redis_url, stored_event as event,
    unique_key_prefix as prefix, wait_until,
};
use xentri_worker::app::Worker;
use xentri_worker::handler::{
    BoxFuture, Handler, HandlerError, Handling, PgDelivery, PostgresStoreHandler, RedisDelivery, RedisStoreHandler,
    Store,
};

/// Fast timings, built-in groups off (tests switch on what they need), plus `extra`.
pub fn settings(database_url: &str, prefix: &str, extra: &[(&str, &str)]) -> Settings {
    TestSettings::new(database_url).key_prefix(prefix).fast_worker().vars(extra).load()
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
        _db: &'a sqlx::PgPool,
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
        tx: Option<(&mut sqlx::PgConnection, u16)>,
    ) -> Result<(), HandlerError> {
        let index = {
            let mut calls = self.calls.lock().expect("lock");
            calls.push(Call { event_id: event.id, attempt, finished: false });
            calls.len() - 1
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let step = self.script.lock().expect("lock").pop_front().unwrap_or(Step::Ok);
        if let Some((tx, slot)) = tx {
            xentri_worker::handlers::counts::count(tx, event, slot).await?;
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
        Box::pin(self.run(delivery.event, delivery.attempt, Some((delivery.tx, delivery.slot))))
    }
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

/// Waits until every outbox row is below the commit horizon, so the relay
/// sees them all. The horizon is the server's: another test's open write
/// transaction holds it back a moment.
pub async fn outbox_visible(pool: &sqlx::PgPool) {
    wait_until(DEADLINE, "the outbox is below the commit horizon", || async {
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
    read_group_as(conn, key, group, "c1", count).await
}

/// The same as consumer `consumer`.
pub async fn read_group_as(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    group: &str,
    consumer: &str,
    count: usize,
) -> Vec<redis::streams::StreamId> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
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

/// What the event counts of `org` add up to: how often a Postgres-store
/// handler's effect took place.
pub async fn counted_effects(pool: &sqlx::PgPool, org: Uuid) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(sum(count), 0)::bigint FROM event_counts WHERE org_id = $1")
        .bind(org)
        .fetch_one(pool)
        .await
        .expect("the event counts")
}
