//! A handler that answers as scripted: a test says which calls fail, and how.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::handler::{BoxFuture, HandlerError, PgDelivery, PostgresStoreHandler, RedisDelivery, RedisStoreHandler};

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

/// A handler that answers its calls as scripted, then succeeds once the
/// script is used up; put it in a [`Group`](super::Group). As a Postgres-store
/// handler it counts each event it handles in `event_counts` (as the event
/// counts group does), in the delivery's transaction, so a test can see its
/// effect and how often it took place.
#[derive(Default)]
pub struct Scripted {
    script: Mutex<VecDeque<Step>>,
}

impl Scripted {
    /// Answers its first calls with `steps`, in order.
    pub fn new(steps: &[Step]) -> Self {
        Self { script: Mutex::new(steps.iter().copied().collect()) }
    }

    fn next(&self) -> Result<(), HandlerError> {
        match self.script.lock().ok().and_then(|mut script| script.pop_front()).unwrap_or(Step::Ok) {
            Step::Ok => Ok(()),
            Step::Transient => Err(HandlerError::transient("scripted transient failure")),
            Step::Permanent => Err(HandlerError::permanent("scripted permanent failure")),
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
            crate::handlers::counts::count(delivery.tx, delivery.event, delivery.slot).await?;
            self.next()
        })
    }
}
