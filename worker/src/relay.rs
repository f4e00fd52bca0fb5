//! The outbox relay: committed outbox rows → `XADD` to their streams, a batch
//! per round trip, woken by `LISTEN xentri_outbox` and polling.
//!
//! **Invariants:**
//! - Rows are published in position order (writing transaction, then `seq`),
//!   and only below the commit horizon, the rule every reader follows (see
//!   [`xentri_core::store`]): a row that commits later sorts after every row
//!   already published, so a cursor over what was published never passes a
//!   row still to come, whoever wrote it.
//! - A row leaves the outbox only after its `XADD`s are on the stream; a relay
//!   killed in between publishes those rows again (at-least-once; consumers
//!   skip duplicates).
//! - No PostgreSQL transaction is open across the Redis calls: the batch is
//!   read by one statement and deleted by another, each its own transaction,
//!   so the relay never holds back the commit horizon (or locks) while Redis
//!   answers.
//! - One relay publishes at a time: the one whose session holds the relay's
//!   advisory lock ([`LockClass::Relay`], session-level, so it needs no open
//!   transaction). The others stand by and take over when that session ends.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use redis::aio::MultiplexedConnection;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use xentri_core::locks::LockClass;
use xentri_core::store::TxId;
use xentri_core::stream::encode;
use xentri_core::{StoredEvent, sql};

use crate::runtime::Shared;

/// The second key of the advisory lock only the publishing relay holds
/// (its class is [`LockClass::Relay`]).
const RELAY_LOCK_KEY: i32 = 0;
/// The notification channel the api and the job scheduler signal.
pub const CHANNEL: &str = "xentri_outbox";

/// An outbox row with its event.
#[derive(sqlx::FromRow)]
struct Row {
    tx_id: TxId,
    stream: String,
    #[sqlx(flatten)]
    event: StoredEvent,
}

/// The last row a relay session published: `(tx_id, event_seq, stream)`.
type Cursor = (TxId, i64, String);

/// A relay: publishes while its session holds the relay lock, stands by
/// otherwise.
pub struct Relay {
    shared: Arc<Shared>,
    /// Its own session (out of the pool: its role and lock are
    /// session-level), as the relay role.
    session: Option<PgConnection>,
    /// Whether the session holds the relay lock.
    publishing: bool,
    /// The last row this session published. Rows at or below it are gone
    /// from the outbox (their dead index entries are what it skips).
    cursor: Option<Cursor>,
    /// Its own Redis connection, taken out of the pool: a batch is one
    /// pipeline of up to `batch_size` `XADD`s (~1 KB each), and a connection
    /// keeps write buffers as large as the largest pipeline it has sent. One
    /// connection keeps them, not every connection of the pool in turn.
    /// Dropped on an error; the next batch takes another.
    redis: Option<MultiplexedConnection>,
}

impl Relay {
    /// A relay that has not yet tried to take the lock.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared, session: None, publishing: false, cursor: None, redis: None }
    }

    /// Whether this relay holds the lock (it publishes).
    pub fn is_publishing(&self) -> bool {
        self.publishing
    }

    /// Publishes one batch, taking the relay lock first if this relay does
    /// not hold it; returns how many rows it published (0 when another relay
    /// holds the lock). A PostgreSQL error ends the session (and so releases
    /// the lock); the next call starts a new one.
    pub async fn publish_batch(&mut self) -> anyhow::Result<usize> {
        let result = async {
            if !self.publishing && !self.take_lock().await? {
                return Ok(0);
            }
            self.publish().await
        }
        .await;
        if let Err(error) = &result {
            if error.downcast_ref::<sqlx::Error>().is_some() {
                self.end_session().await;
            }
        }
        result
    }

    /// Ends the session, releasing the lock first if it holds it (so
    /// another relay can take over at once, not only once this session's
    /// backend has exited).
    pub async fn end_session(&mut self) {
        let publishing = std::mem::take(&mut self.publishing);
        self.cursor = None;
        if let Some(mut session) = self.session.take() {
            if publishing {
                let _ = sqlx::query(sql::RELAY_UNLOCK)
                    .bind(LockClass::Relay.id())
                    .bind(RELAY_LOCK_KEY)
                    .execute(&mut session)
                    .await;
            }
            let _ = session.close().await;
        }
    }

    /// Tries the lock on the session, opening one first if needed.
    async fn take_lock(&mut self) -> Result<bool, sqlx::Error> {
        let session = match &mut self.session {
            Some(session) => session,
            None => {
                let mut session = self.shared.db.acquire().await?.detach();
                sqlx::query(sql::SET_SESSION_ROLE).bind(xentri_core::roles::RELAY).execute(&mut session).await?;
                self.session.insert(session)
            }
        };
        let locked: bool = sqlx::query_scalar(sql::RELAY_TRY_LOCK)
            .bind(LockClass::Relay.id())
            .bind(RELAY_LOCK_KEY)
            .fetch_one(&mut *session)
            .await?;
        if locked {
            tracing::info!("relay publishing: this worker holds the relay lock");
            self.publishing = true;
            self.cursor = None;
        }
        Ok(locked)
    }

    async fn publish(&mut self) -> anyhow::Result<usize> {
        let Some(session) = self.session.as_mut().filter(|_| self.publishing) else { return Ok(0) };
        let shared = &self.shared;
        let (after_tx, after_seq, after_stream) = self.cursor.clone().unwrap_or_default();
        let rows: Vec<Row> = sqlx::query_as(sql::RELAY_BATCH)
            .bind(after_tx)
            .bind(after_seq)
            .bind(after_stream)
            .bind(shared.settings.worker.relay.batch_size)
            .fetch_all(&mut *session)
            .await?;
        let Some(last) = rows.last() else { return Ok(0) };
        let last: Cursor = (last.tx_id, last.event.seq, last.stream.clone());
        let mut pipe = redis::pipe();
        for row in &rows {
            // No MAXLEN: trimming is the trimmer's, which never drops unread entries.
            let mut xadd = redis::cmd("XADD");
            xadd.arg(shared.keys.key(&row.stream)).arg("*");
            for (name, value) in encode(&row.event) {
                xadd.arg(name).arg(value);
            }
            pipe.add_command(xadd).ignore();
        }
        let conn = match &mut self.redis {
            Some(conn) => conn,
            None => self.redis.insert(deadpool_redis::Connection::take(shared.redis.get().await?)),
        };
        if let Err(error) = pipe.query_async::<()>(conn).await {
            self.redis = None;
            return Err(error.into());
        }
        crate::pause::reached("relay.published").await;
        let seqs: Vec<i64> = rows.iter().map(|r| r.event.seq).collect();
        let streams: Vec<&str> = rows.iter().map(|r| r.stream.as_str()).collect();
        sqlx::query(sql::RELAY_DELETE_PUBLISHED).bind(&seqs).bind(&streams).execute(&mut *session).await?;
        self.cursor = Some(last);
        metrics::counter!("relay_events_total").increment(rows.len() as u64);
        let now = Utc::now();
        for row in &rows {
            let lag = (now - row.event.occurred_at).to_std().unwrap_or_default();
            metrics::histogram!("relay_lag_seconds").record(lag.as_secs_f64());
        }
        Ok(rows.len())
    }
}

/// Publishes until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> anyhow::Result<()> {
    shared.panic_once("relay");
    let settings = &shared.settings.worker.relay;
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let batch_size = settings.batch_size;
    let mut relay = Relay::new(shared.clone());
    let mut listener = None;
    let mut failures = 0u32;
    tracing::info!("relay started");
    while !shutdown.is_cancelled() {
        if listener.is_none() {
            listener = listen(&shared).await;
        }
        match relay.publish_batch().await {
            Ok(published) => {
                failures = 0;
                if published as i64 >= batch_size {
                    continue;
                }
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(error = format!("{error:#}"), failures, "relay batch failed");
            }
        }
        let wait = if failures > 0 { poll.min(Duration::from_millis(100 << failures.min(5))) } else { poll };
        // After a failure only the backoff decides when to try again: every
        // append's notification would otherwise retry (and log) at once. A
        // relay standing by only polls for the lock.
        let listening = if failures > 0 || !relay.is_publishing() { None } else { listener.as_mut() };
        tokio::select! {
            notified = async {
                match listening {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => {
                if notified.is_err() {
                    listener = None;
                }
            }
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => {}
        }
    }
    relay.end_session().await;
    tracing::info!("relay stopped");
    Ok(())
}

async fn listen(shared: &Shared) -> Option<PgListener> {
    let result = async {
        let mut listener = PgListener::connect_with(&shared.db).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    }
    .await;
    result.map_err(|error| tracing::warn!(error = %error, "cannot listen for outbox notifications; polling")).ok()
}

/// Outbox rows not yet published (for the backlog gauge).
pub async fn backlog(shared: &Shared) -> anyhow::Result<i64> {
    let mut tx = xentri_core::db::begin_as(&shared.db, xentri_core::roles::RELAY, None).await?;
    let count: i64 = sqlx::query_scalar(sql::OUTBOX_BACKLOG).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(count)
}
