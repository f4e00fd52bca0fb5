//! The api's only door to PostgreSQL.
//!
//! Every transaction is opened by [`Db::begin`], which switches to the api's
//! role and sets `app.org_id` transaction-locally before anything else runs, so
//! row-level security applies to every statement. (The pool logs in as
//! `xentri_service`, which row-level security binds too; the start-up check
//! refuses a login it would not bind.)
//! The only statements that run outside such a transaction are calls of the
//! database functions that do the same as their first step ([`Db::scoped`]).
//! **Invariant:** no code in `api` touches the pool except through this type.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

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
        let begin = format!(
            "BEGIN; SELECT set_config('role', '{}', true), set_config('app.org_id', '{org_id}', true)",
            self.role
        );
        let tx = self.pool.begin_with(begin).await?;
        Ok(OrgTx { tx })
    }

    /// The pool and role for a call of a database function that sets the role
    /// and `app.org_id` transaction-locally itself before anything else
    /// (`append_events`, through `append_event` per item, and `list_events`):
    /// one round trip, in the statement's own transaction. Only such calls may
    /// run on it.
    pub(crate) fn scoped(&self) -> (&PgPool, &str) {
        (&self.pool, &self.role)
    }

    /// Wakes the worker's relay (`NOTIFY xentri_outbox`). Outside any write
    /// transaction on purpose: a NOTIFY inside one would serialise every
    /// commit on PostgreSQL's notification lock.
    pub async fn notify_outbox(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify('xentri_outbox', '')").execute(&self.pool).await.map(|_| ())
    }

    /// Checks PostgreSQL answers, within the pool's acquire timeout.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }

    /// Closes the pool, waiting for checked-out connections to return.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl OrgTx {
    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
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
