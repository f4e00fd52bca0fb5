//! The api's only door to PostgreSQL.
//!
//! Every transaction is opened by [`Db::begin`], which switches to the api's
//! role and sets `app.org_id` transaction-locally before anything else runs, so
//! row-level security applies to every statement. (The pool logs in as
//! `xentri_service`, which row-level security binds too; the start-up check
//! refuses a login it would not bind.)
//! The only statements that run outside such a transaction are calls of the
//! database functions that do the same as their first step
//! ([`Db::append_session`], [`Db::list_events`]). The pool is never handed out.
//! **Invariant:** no code in `api` touches the pool except through this type.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;
use xentri_core::store::{AppendOutcome, NewEventRecord};

use xentri_core::TypeFilter;

use crate::routes::events::request::ListQuery;

/// Org-scoped access to PostgreSQL.
#[derive(Clone)]
pub struct Db {
    /// The pool; never handed out.
    pool: PgPool,
    /// The role every transaction runs as ([`xentri_core::roles::API`]).
    role: Arc<str>,
}

/// A transaction running as the api's role with `app.org_id` set. Dropped
/// without [`OrgTx::commit`], it rolls back.
pub struct OrgTx {
    tx: Transaction<'static, Postgres>,
    /// The role it runs as, which its appends name.
    role: Arc<str>,
}

impl Db {
    /// Wraps `pool`; transactions will run as `role`, one of
    /// [`xentri_core::roles::SERVICE_ROLES`] (a constant: it is interpolated).
    pub fn new(pool: PgPool, role: &'static str) -> Self {
        Self { pool, role: Arc::from(role) }
    }

    /// Opens a transaction for `org_id`: `BEGIN` and both settings go in one
    /// round trip (a simple-query batch). Interpolation is safe here: the role
    /// is a constant of ours (not a setting), and a UUID prints as hex digits
    /// and dashes.
    pub async fn begin(&self, org_id: Uuid) -> Result<OrgTx, sqlx::Error> {
        let tx = xentri_core::db::begin_as(&self.pool, &self.role, Some(org_id)).await?;
        Ok(OrgTx { tx, role: self.role.clone() })
    }

    /// A session for appends: its calls of `append_events` set the role and
    /// each item's `app.org_id` themselves, in the statement's own
    /// transaction. The appender keeps one session for a batch and the retry
    /// of its items.
    pub async fn append_session(&self) -> Result<AppendSession, sqlx::Error> {
        Ok(AppendSession { conn: self.pool.acquire().await?, role: self.role.clone() })
    }

    /// One page of `org_id`'s events (and one more, to tell whether more are
    /// available), as rows in `sql::LIST_EVENTS`'s columns: one call of
    /// `list_events`, which sets the role and `app.org_id` itself as
    /// [`Db::begin`] does, in one round trip.
    pub async fn list_events(&self, org_id: Uuid, query: &ListQuery) -> Result<Vec<PgRow>, sqlx::Error> {
        let (exact, like) = match &query.event_type {
            Some(TypeFilter::Exact(name)) => (Some(name.as_str()), None),
            Some(TypeFilter::Prefix(prefix)) => (None, Some(format!("{}%", escape_like(prefix)))),
            None => (None, None),
        };
        sqlx::query(xentri_core::sql::LIST_EVENTS)
            .bind(&*self.role)
            .bind(org_id)
            .bind(query.after.map(|p| p.tx_id))
            .bind(query.after.map(|p| p.seq))
            .bind(i32::try_from(query.limit + 1).unwrap_or(i32::MAX))
            .bind(exact)
            .bind(like)
            .bind(query.correlation_id.as_deref())
            .bind(query.since)
            .bind(query.until)
            .fetch_all(&self.pool)
            .await
    }

    /// Wakes the worker's relay (`NOTIFY xentri_outbox`). Outside any write
    /// transaction on purpose: a NOTIFY inside one would serialise every
    /// commit on PostgreSQL's notification lock.
    pub async fn notify_outbox(&self) -> Result<(), sqlx::Error> {
        sqlx::query(xentri_core::sql::NOTIFY_OUTBOX).execute(&self.pool).await.map(|_| ())
    }

    /// Checks PostgreSQL answers, within the pool's acquire timeout.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query(xentri_core::sql::PING).execute(&mut *conn).await?;
        Ok(())
    }

    /// Closes the pool, waiting for checked-out connections to return.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A pooled session that only appends (see [`Db::append_session`]).
pub struct AppendSession {
    conn: PoolConnection<Postgres>,
    role: Arc<str>,
}

impl AppendSession {
    /// Appends `items` with one call of `append_events`, their outbox rows
    /// aimed at `stream`; an outcome per item, in order.
    pub async fn append_events(
        &mut self,
        stream: &str,
        key_ttl_secs: f64,
        items: &[NewEventRecord<'_>],
    ) -> Result<Vec<AppendOutcome>, sqlx::Error> {
        xentri_core::store::append_events(&mut self.conn, &self.role, stream, key_ttl_secs, items).await
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

impl OrgTx {
    /// Appends `items` in this transaction, through the one append path
    /// (`append_events`: event and outbox row aimed at `stream` per item), so
    /// they commit or roll back with whatever else the transaction changed.
    pub async fn append_events(
        &mut self,
        stream: &str,
        key_ttl_secs: f64,
        items: &[NewEventRecord<'_>],
    ) -> Result<Vec<AppendOutcome>, sqlx::Error> {
        xentri_core::store::append_events(&mut self.tx, &self.role, stream, key_ttl_secs, items).await
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back and waits for it: what a transaction that took a lock
    /// (an idempotency key's) must do before its connection serves anyone
    /// else, since [`OrgTx::finish_read`]'s deferred `ROLLBACK` would hold the
    /// lock until the connection's next statement.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// Ends a transaction that only read: the `ROLLBACK` is queued and goes
    /// out with the connection's next statement, saving a round trip.
    pub fn finish_read(self) {
        drop(self.tx);
    }
}

impl Deref for OrgTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for OrgTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
