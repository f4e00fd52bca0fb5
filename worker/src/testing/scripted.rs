//! A handler that answers as scripted: a test says which calls fail, and how.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::handler::{
    BoxFuture, Handler, HandlerError, Handling, PgDelivery, PostgresStoreHandler, RedisDelivery, RedisStoreHandler,
    Store,
};

/// What a [`Scripted`] handler does on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Succeed.
    Ok,
    /// Fail transiently (`scripted transient failure`).
    Transient,
    /// Fail permanently (`scripted permanent failure`).
    Permanent,
}

/// A group on `events:work` that takes every type and answers its calls as
/// scripted, then succeeds once the script is used up. A Postgres-store one
/// counts each event it handles in `event_counts`, in the delivery's
/// transaction, so a test can see its effect and how often it took place.
pub struct Scripted {
    group: String,
    store: Store,
    script: Mutex<VecDeque<Step>>,
}

impl Scripted {
    /// A Redis-store group `group` that succeeds at every call.
    pub fn new(group: &str) -> Self {
        Self { group: group.to_owned(), store: Store::Redis, script: Mutex::new(VecDeque::new()) }
    }

    /// The same with its processed records in `store`.
    pub fn store(mut self, store: Store) -> Self {
        self.store = store;
        self
    }

    /// The same answering its first calls with `steps`, in order.
    pub fn script(self, steps: &[Step]) -> Self {
        if let Ok(mut script) = self.script.lock() {
            *script = steps.iter().copied().collect();
        }
        self
    }

    fn next(&self) -> Result<(), HandlerError> {
        match self.script.lock().ok().and_then(|mut script| script.pop_front()).unwrap_or(Step::Ok) {
            Step::Ok => Ok(()),
            Step::Transient => Err(HandlerError::transient("scripted transient failure")),
            Step::Permanent => Err(HandlerError::permanent("scripted permanent failure")),
        }
    }
}

impl Handler for Scripted {
    fn group(&self) -> &str {
        &self.group
    }

    fn streams(&self) -> Vec<String> {
        vec!["events:work".to_owned()]
    }

    fn accepts(&self, _event_type: &str) -> bool {
        true
    }

    fn handling(&self) -> Handling<'_> {
        match self.store {
            Store::Redis => Handling::Redis(self),
            Store::Postgres => Handling::Postgres(self),
        }
    }
}

impl RedisStoreHandler for Scripted {
    fn handle<'a>(&'a self, _delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move { self.next() })
    }
}

impl PostgresStoreHandler for Scripted {
    fn handle<'a>(&'a self, delivery: PgDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let event = delivery.event;
            sqlx::query(xentri_core::sql::COUNT_EVENT)
                .bind(event.org_id)
                .bind(event.event_type.as_str())
                .bind(event.seq)
                .execute(delivery.tx)
                .await
                .map_err(|e| HandlerError::Transient(e.into()))?;
            self.next()
        })
    }
}
