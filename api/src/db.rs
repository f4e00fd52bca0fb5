//! The api's only door to PostgreSQL.
//!
//! Every transaction is opened by [`Db::begin`], which switches to the api's
//! role and sets `app.org_id` transaction-locally before anything else runs, so
//! row-level security applies even when the pool logs in as a superuser.
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
    /// The role every transaction runs as (`database.api_role`).
    role: Arc<str>,
}

/// A transaction running as the api's role with `app.org_id` set. Dropped
/// without [`OrgTx::commit`], it rolls back.
pub struct OrgTx {
    tx: Transaction<'static, Postgres>,
}

impl Db {
    /// Wraps `pool`; transactions will run as `role`.
    pub fn new(pool: PgPool, role: &str) -> Self {
        Self { pool, role: Arc::from(role) }
    }

    /// Opens a transaction for `org_id`.
    pub async fn begin(&self, org_id: Uuid) -> Result<OrgTx, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('role', $1, true), set_config('app.org_id', $2, true)")
            .bind(&*self.role)
            .bind(org_id.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(OrgTx { tx })
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
