//! The `jobs` group: runs background jobs from the jobs stream. The first job
//! purges expired idempotency keys.

use xentri_core::Settings;

use crate::handler::{BoxFuture, Delivery, Handler, HandlerError, Store};
use crate::jobs::PURGE_IDEMPOTENCY_KEYS;

/// The group name.
pub const GROUP: &str = "jobs";

/// Runs jobs.
pub struct Jobs {
    stream: String,
}

impl Jobs {
    /// Reads the jobs stream.
    pub fn new(settings: &Settings) -> Self {
        Self { stream: settings.streams.jobs.work.clone() }
    }
}

impl Handler for Jobs {
    fn group(&self) -> &str {
        GROUP
    }

    fn streams(&self) -> Vec<String> {
        vec![self.stream.clone()]
    }

    fn accepts(&self, event_type: &str) -> bool {
        event_type == PURGE_IDEMPOTENCY_KEYS
    }

    fn store(&self) -> Store {
        Store::Postgres
    }

    fn handle<'a>(&'a self, delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let tx = delivery.tx.ok_or_else(|| HandlerError::permanent("no transaction"))?;
            // The worker role may delete expired keys of every org, and only those.
            let purged = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= now()")
                .execute(tx)
                .await
                .map_err(|e| HandlerError::Transient(e.into()))?;
            tracing::info!(purged = purged.rows_affected(), "expired idempotency keys purged");
            Ok(())
        })
    }
}
