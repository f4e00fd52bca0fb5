//! One handler run against a real Redis stream through the runtime's own lane
//! (read, de-duplication decision, attempts with retries, ack, dead-letter,
//! reclaim), without the rest of the worker: no relay, supervisor, jobs or
//! ops server. A test pushes events (or malformed entries) and awaits what
//! became of them, polling with a deadline, never sleeping a fixed time.
//!
//! Test-only: compiled with the `testing` feature, which the worker's own
//! tests and the end-to-end tests switch on through their dev-dependencies.
//! Production builds leave it out.

// Test support: a step that fails panics with its cause, failing the test
// that asked for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;
mod observed;
mod scripted;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use redis::aio::MultiplexedConnection;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use xentri_core::dlq::DeadLetter;
use xentri_core::stream::StreamEntry;
use xentri_core::stream_id::StreamId;
use xentri_core::{Settings, StoredEvent};
use xentri_test_support::{DEADLINE, TestSettings, database_url, delete_keys_under, eventually, unique_key_prefix};

pub use self::group::Group;
pub use self::observed::{Call, CallResult};
use self::observed::{Observed, Record};
pub use self::scripted::{Scripted, Step};
use crate::app::DEFAULT_CONCURRENCY;
use crate::handler::Handler;
use crate::runtime::{Shared, lane};

/// A handler's group running on its first stream, under a key prefix of its
/// own. Stop it with [`HandlerHarness::stop`], which also deletes its keys.
pub struct HandlerHarness {
    /// The runtime state the lane runs on.
    shared: Arc<Shared>,
    /// The group.
    group: String,
    /// The work stream's Redis key.
    stream_key: String,
    /// The DLQ's Redis key.
    dlq_key: String,
    /// What happened to the handler.
    record: Arc<Mutex<Record>>,
    /// The test's own connection.
    conn: MultiplexedConnection,
    /// Stops the lane.
    shutdown: CancellationToken,
    /// The lane.
    lane: Option<JoinHandle<anyhow::Result<()>>>,
}

impl HandlerHarness {
    /// Runs `handler` on `pool` with fast test settings
    /// ([`TestSettings::fast_worker`]) under a new key prefix.
    pub async fn start(pool: &PgPool, handler: Arc<dyn Handler>) -> Self {
        let settings = TestSettings::new(&database_url(&pool.connect_options()))
            .key_prefix(&unique_key_prefix())
            .fast_worker()
            .load();
        Self::start_with(settings, pool, handler).await
    }

    /// Runs `handler` with `settings` (their key prefix, retry and group
    /// settings) on `pool`. The group exists when this returns, so entries
    /// pushed from now on are read.
    pub async fn start_with(settings: Settings, pool: &PgPool, handler: Arc<dyn Handler>) -> Self {
        let group = handler.group().to_owned();
        let stream = handler.streams().into_iter().next().expect("the handler reads a stream");
        let concurrency = settings.worker.groups.get(&group).map_or(DEFAULT_CONCURRENCY, |g| g.concurrency);
        let redis = xentri_core::redis_pool::connect_lazy(&settings.redis).expect("a Redis pool");
        let client = redis::Client::open(settings.redis.url.expose_secret()).expect("a Redis URL");
        let conn = client.get_multiplexed_async_connection().await.expect("the test Redis accepts a connection");
        let readers = BTreeMap::from([(stream.clone(), vec![group.clone()])]);
        let shared = Arc::new(Shared::new(redis, client, pool.clone(), Arc::new(settings)).with_readers(readers));
        shared.create_group(&stream, &group).await.expect("the group is created");
        let dlq = shared.dlq_of(&stream).expect("the handler's stream is a configured work stream");
        let (stream_key, dlq_key) = (shared.keys.key(&stream), shared.keys.key(dlq));
        let record = Arc::new(Mutex::new(Record::default()));
        let observed = Arc::new(Observed { inner: handler, record: record.clone() });
        let shutdown = CancellationToken::new();
        let lane = tokio::spawn(lane::run(shared.clone(), observed, stream, concurrency, shutdown.clone()));
        Self { shared, group, stream_key, dlq_key, record, conn, shutdown, lane: Some(lane) }
    }

    /// The key prefix everything of this harness is under.
    pub fn key_prefix(&self) -> &str {
        self.shared.keys.prefix()
    }

    /// The work stream's Redis key.
    pub fn stream_key(&self) -> &str {
        &self.stream_key
    }

    /// The DLQ's Redis key.
    pub fn dlq_key(&self) -> &str {
        &self.dlq_key
    }

    /// A connection to the test Redis.
    pub fn redis(&self) -> MultiplexedConnection {
        self.conn.clone()
    }

    /// `XADD`s `event` to the work stream as the relay does; returns the entry id.
    pub async fn push(&self, event: &StoredEvent) -> String {
        let fields = xentri_core::stream::encode(event);
        let fields: Vec<(&str, &[u8])> = fields.iter().map(|(name, value)| (*name, value.as_bytes())).collect();
        self.push_fields(&fields).await
    }

    /// `XADD`s an entry of these fields, which need not be an event nor even
    /// text; returns the entry id.
    pub async fn push_fields(&self, fields: &[(&str, &[u8])]) -> String {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&self.stream_key).arg("*");
        for (name, value) in fields {
            xadd.arg(*name).arg(*value);
        }
        xadd.query_async(&mut self.redis()).await.expect("XADD")
    }

    /// Every call of the handler so far, in the order they finished.
    pub fn calls(&self) -> Vec<Call> {
        self.record.lock().map(|record| record.calls.clone()).unwrap_or_default()
    }

    /// The dead letters the handler's hook was called with so far.
    pub fn dead_letter_hooks(&self) -> Vec<DeadLetter> {
        self.record.lock().map(|record| record.dead_letters.clone()).unwrap_or_default()
    }

    /// Awaits `n` calls of the handler, and returns every call so far.
    pub async fn calls_made(&self, n: usize) -> Vec<Call> {
        eventually(DEADLINE, &format!("{n} calls of the handler"), || async {
            let calls = self.calls();
            if calls.len() >= n { Ok(calls) } else { Err(format!("{} calls: {calls:?}", calls.len())) }
        })
        .await
    }

    /// Awaits a call that handled `event_id` successfully, and returns it.
    pub async fn handled(&self, event_id: Uuid) -> Call {
        eventually(DEADLINE, &format!("event {event_id} handled"), || async {
            let calls = self.calls();
            calls
                .iter()
                .find(|call| call.event_id == event_id && call.result == CallResult::Ok)
                .cloned()
                .ok_or_else(|| format!("calls so far: {calls:?}"))
        })
        .await
    }

    /// Awaits entry `entry_id` delivered to the group and acknowledged
    /// (handled, skipped, or dead-lettered).
    pub async fn acked(&self, entry_id: &str) {
        let id = StreamId::parse(entry_id).expect("an entry id");
        eventually(DEADLINE, &format!("entry {entry_id} acked"), || async {
            let (delivered, pending) = self.progress().await?;
            let delivered = StreamId::parse(&delivered).map_err(|e| e.to_string())?;
            if delivered < id {
                Err(format!("delivered up to {delivered}"))
            } else if pending.iter().any(|p| p == entry_id) {
                Err("still pending".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
    }

    /// Awaits every entry of the stream delivered to the group and none
    /// pending.
    pub async fn settled(&self) {
        eventually(DEADLINE, "every entry delivered and acknowledged", || async {
            let mut conn = self.redis();
            let last: redis::streams::StreamInfoStreamReply =
                redis::cmd("XINFO").arg("STREAM").arg(&self.stream_key).query_async(&mut conn).await.map_err(text)?;
            let (delivered, pending) = self.progress().await?;
            if delivered == last.last_generated_id && pending.is_empty() {
                Ok(())
            } else {
                Err(format!("delivered up to {delivered} of {}, pending {pending:?}", last.last_generated_id))
            }
        })
        .await;
    }

    /// Entries delivered to the group and not acknowledged, now.
    pub async fn pending(&self) -> usize {
        self.progress().await.map(|(_, pending)| pending.len()).expect("the group's pending entries")
    }

    /// Awaits the dead letter of entry `entry_id` (the DLQ entry whose
    /// `dlq_id` it is), and returns it.
    pub async fn dead_lettered(&self, entry_id: &str) -> StreamEntry {
        eventually(DEADLINE, &format!("entry {entry_id} dead-lettered"), || async {
            let letters = self.dead_letters().await;
            letters
                .iter()
                .find(|letter| letter.get("dlq_id") == Some(entry_id))
                .cloned()
                .ok_or_else(|| format!("{} other dead letters", letters.len()))
        })
        .await
    }

    /// The DLQ's entries, now (with the bytes that are not UTF-8 replaced).
    pub async fn dead_letters(&self) -> Vec<StreamEntry> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.dlq_key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.redis())
            .await
            .expect("XRANGE");
        reply
            .ids
            .into_iter()
            .map(|entry| match StreamEntry::from_redis(entry.id, &entry.map) {
                Ok(entry) => entry,
                Err(undecodable) => undecodable.lossy,
            })
            .collect()
    }

    /// Stops the lane (it drains what is in flight) and deletes the
    /// harness's keys.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(lane) = self.lane.take() {
            lane.await.expect("the lane ends without panicking").expect("the lane ends cleanly");
        }
        delete_keys_under(&mut self.redis(), self.shared.keys.prefix()).await.expect("the keys are deleted");
    }

    /// The group's last delivered entry id and its pending entry ids.
    async fn progress(&self) -> Result<(String, Vec<String>), String> {
        let mut conn = self.redis();
        let groups: redis::streams::StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(&self.stream_key).query_async(&mut conn).await.map_err(text)?;
        let group = groups.groups.into_iter().find(|g| g.name == self.group).ok_or("the group is missing")?;
        let pending: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.stream_key)
            .arg(&self.group)
            .arg("-")
            .arg("+")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .map_err(text)?;
        Ok((group.last_delivered_id, pending.ids.into_iter().map(|p| p.id).collect()))
    }
}

impl Drop for HandlerHarness {
    fn drop(&mut self) {
        // A test that failed before `stop`: the lane ends with the runtime.
        self.shutdown.cancel();
    }
}

fn text(error: redis::RedisError) -> String {
    error.to_string()
}
