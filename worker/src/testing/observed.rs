//! A handler wrapped so that every call and its result, and every dead
//! letter, is recorded for the test to await.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use uuid::Uuid;
use xentri_core::StoredEvent;
use xentri_core::dlq::DeadLetter;

use crate::handler::{
    Batch, BoxFuture, Handler, HandlerError, Handling, PgDelivery, PostgresStoreHandler, RedisDelivery,
    RedisStoreHandler,
};

/// What one call of the handler came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    /// It succeeded.
    Ok,
    /// It failed transiently.
    Transient,
    /// It failed permanently.
    Permanent,
}

impl CallResult {
    fn of(result: &Result<(), HandlerError>) -> Self {
        match result {
            Ok(()) => Self::Ok,
            Err(HandlerError::Transient(_)) => Self::Transient,
            Err(HandlerError::Permanent(_)) => Self::Permanent,
        }
    }
}

/// One call of the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The event handed to it.
    pub event_id: Uuid,
    /// The stream entry it came in (empty for a call on a read batch).
    pub entry_id: String,
    /// The attempt (1, 2, …; 1 for a call on a read batch).
    pub attempt: u32,
    /// What the call came to.
    pub result: CallResult,
    /// When it returned.
    pub at: Instant,
}

/// What has happened to the handler so far.
#[derive(Debug, Default)]
pub(super) struct Record {
    /// Its calls, in the order they finished.
    pub calls: Vec<Call>,
    /// The dead letters its hook was called with.
    pub dead_letters: Vec<DeadLetter>,
}

/// A handler that records what happens to the one it wraps.
pub(super) struct Observed {
    /// The handler under test.
    pub inner: Arc<dyn Handler>,
    /// What happened so far.
    pub record: Arc<Mutex<Record>>,
}

impl Observed {
    fn called(&self, event_id: Uuid, entry_id: &str, attempt: u32, result: &Result<(), HandlerError>) {
        if let Ok(mut record) = self.record.lock() {
            let result = CallResult::of(result);
            record.calls.push(Call { event_id, entry_id: entry_id.to_owned(), attempt, result, at: Instant::now() });
        }
    }
}

impl Handler for Observed {
    fn group(&self) -> &str {
        self.inner.group()
    }

    fn streams(&self) -> Vec<String> {
        self.inner.streams()
    }

    fn accepts(&self, event_type: &str) -> bool {
        self.inner.accepts(event_type)
    }

    fn handling(&self) -> Handling<'_> {
        match self.inner.handling() {
            Handling::Redis(_) => Handling::Redis(self),
            Handling::Postgres(_) => Handling::Postgres(self),
        }
    }

    fn on_dead_letter<'a>(
        &'a self,
        event: Option<&'a StoredEvent>,
        letter: &'a DeadLetter,
        db: &'a sqlx::PgPool,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        if let Ok(mut record) = self.record.lock() {
            record.dead_letters.push(letter.clone());
        }
        self.inner.on_dead_letter(event, letter, db)
    }
}

impl Observed {
    /// Runs one delivery's `run` (`None` when the handler no longer has the
    /// store it started with) and records the call.
    fn observe<'a>(
        &'a self,
        (event_id, entry_id, attempt): (Uuid, &'a str, u32),
        run: Option<BoxFuture<'a, Result<(), HandlerError>>>,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let result = match run {
                Some(run) => run.await,
                None => Err(HandlerError::permanent("the handler changed its store")),
            };
            self.called(event_id, entry_id, attempt, &result);
            result
        })
    }
}

impl RedisStoreHandler for Observed {
    fn handle<'a>(&'a self, delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        let call = (delivery.event.id, delivery.entry_id, delivery.attempt);
        let run = match self.inner.handling() {
            Handling::Redis(inner) => Some(inner.handle(delivery)),
            Handling::Postgres(_) => None,
        };
        self.observe(call, run)
    }
}

impl PostgresStoreHandler for Observed {
    fn handle<'a>(&'a self, delivery: PgDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        let call = (delivery.event.id, delivery.entry_id, delivery.attempt);
        let run = match self.inner.handling() {
            Handling::Postgres(inner) => Some(inner.handle(delivery)),
            Handling::Redis(_) => None,
        };
        self.observe(call, run)
    }

    fn handle_batch<'a>(&'a self, batch: Batch<'a>) -> Option<BoxFuture<'a, Result<(), HandlerError>>> {
        let Handling::Postgres(inner) = self.inner.handling() else { return None };
        let events: Vec<Uuid> = batch.events.iter().map(|event| event.id).collect();
        let run = inner.handle_batch(batch)?;
        Some(Box::pin(async move {
            let result = run.await;
            for event_id in events {
                self.called(event_id, "", 1, &result);
            }
            result
        }))
    }
}
