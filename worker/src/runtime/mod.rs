//! The consumer-group runtime.
//!
//! Each handler is a consumer group; for each stream it reads, a [`lane`] runs:
//! it creates the group (`MKSTREAM`), reads in batches (`XREADGROUP`) under a
//! per-group concurrency limit, hands each entry to [`process`], reclaims
//! entries abandoned by crashed consumers, and acknowledges through a batching
//! [`acker`]. Whether an entry's event was handled already is one decision,
//! `dedup::decide`. **Invariant:** an entry is acked only after its handler
//! succeeded and its processed record is written, or after it is in the DLQ.

pub mod acker;
pub mod batch;
pub mod dedup;
pub mod lane;
pub mod process;
pub mod retry;
pub mod slots;
pub mod telemetry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::PgPool;
use xentri_core::Settings;
use xentri_core::stream::Keys;

/// What every part of the runtime shares.
pub struct Shared {
    /// Pooled Redis connections for short commands.
    pub redis: deadpool_redis::Pool,
    /// For dedicated connections that block (`XREADGROUP … BLOCK`).
    pub redis_client: redis::Client,
    /// PostgreSQL.
    pub db: PgPool,
    /// Key prefixing.
    pub keys: Keys,
    /// Settings, read once.
    pub settings: Arc<Settings>,
    /// This host's name, for consumer names.
    pub host: String,
    /// The groups this worker runs on each work stream (logical names): the
    /// trimmer leaves a stream alone while one of them has no consumer group.
    pub readers: BTreeMap<String, Vec<String>>,
    /// Consumers named so far by this process.
    next_consumer: AtomicUsize,
    /// Every supervised task's state, for `/health`.
    pub health: Arc<crate::supervisor::Health>,
    /// Test hook (`worker.panic_at`): tasks that panic once when they start.
    /// Each armed task, and whether it panics at every start (else once).
    panics: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

impl Shared {
    /// Builds the shared state.
    pub fn new(redis: deadpool_redis::Pool, redis_client: redis::Client, db: PgPool, settings: Arc<Settings>) -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let keys = Keys::new(settings.redis.key_prefix.clone());
        let panics = settings
            .worker
            .panic_at
            .iter()
            .flat_map(|list| list.split(','))
            .map(|task| task.trim().to_owned())
            .filter(|task| !task.is_empty())
            .map(|task| match task.strip_suffix(":always") {
                Some(task) => (task.to_owned(), true),
                None => (task, false),
            })
            .collect();
        Self {
            redis,
            redis_client,
            db,
            keys,
            settings,
            host,
            readers: BTreeMap::new(),
            next_consumer: AtomicUsize::new(0),
            health: Arc::default(),
            panics: std::sync::Mutex::new(panics),
        }
    }

    /// The same, knowing which groups read which stream.
    pub fn with_readers(mut self, readers: BTreeMap<String, Vec<String>>) -> Self {
        self.readers = readers;
        self
    }

    /// `XGROUP CREATE <stream> <group> 0 MKSTREAM`: a new group starts at the
    /// oldest entry still in the stream; an existing group is left as it is.
    pub async fn create_group(&self, stream: &str, group: &str) -> anyhow::Result<()> {
        let mut conn = self.redis.get().await?;
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.keys.key(stream))
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(error) if error.code() != Some("BUSYGROUP") => Err(error.into()),
            _ => Ok(()),
        }
    }

    /// Creates the group of every lane, retrying with backoff until each
    /// exists or `shutdown` fires: nothing is relayed or trimmed before every
    /// group of this worker exists, so no group misses entries at start.
    pub async fn create_groups(&self, shutdown: &tokio_util::sync::CancellationToken) {
        for (stream, groups) in &self.readers {
            self.ensure_groups(stream, groups.iter().map(String::as_str), shutdown).await;
        }
    }

    /// Creates `groups` on `stream` where missing, retrying with backoff
    /// until all exist or `shutdown` fires.
    pub async fn ensure_groups<'a>(
        &self,
        stream: &str,
        groups: impl Iterator<Item = &'a str> + Clone,
        shutdown: &tokio_util::sync::CancellationToken,
    ) {
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            let mut failed = None;
            for group in groups.clone() {
                if let Err(error) = self.create_group(stream, group).await {
                    failed = Some((group, error));
                    break;
                }
            }
            let Some((group, error)) = failed else { return };
            tracing::warn!(group, stream, error = format!("{error:#}"), "cannot create group; retrying");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
            delay = (delay * 2).min(std::time::Duration::from_secs(5));
        }
    }

    /// Test hook: panics the first time the task named `task` (`relay`,
    /// `lane.<group>`) starts — or at every start when listed as
    /// `task:always` — when `worker.panic_at` lists it, so a test can show
    /// that the supervisor restarts it, or gives it up and stops the worker.
    pub fn panic_once(&self, task: &str) {
        let armed = self.panics.lock().ok().and_then(|mut panics| match panics.get(task) {
            Some(true) => Some("at every start"),
            Some(false) => panics.remove(task).map(|_| "once"),
            None => None,
        });
        if let Some(how) = armed {
            panic!("test hook: {task} panics {how} (worker.panic_at)");
        }
    }

    /// A new consumer name, `{host}-{pid}-{n}`.
    pub fn consumer_name(&self) -> String {
        let n = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}-{n}", self.host, std::process::id())
    }

    /// A dedicated connection whose replies may take `block` plus a margin.
    pub async fn blocking_connection(
        &self,
        block: std::time::Duration,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.redis.timeout()))
            .set_response_timeout(Some(block + std::time::Duration::from_secs(5)));
        self.redis_client.get_multiplexed_async_connection_with_config(&config).await
    }

    /// The DLQ of work stream `stream` (logical names).
    pub fn dlq_of(&self, stream: &str) -> Option<&str> {
        let streams = &self.settings.streams;
        streams.family_of_work(stream).map(|family| streams.family(family).dlq.as_str())
    }
}
