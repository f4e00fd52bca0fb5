//! The `jobs` group: runs background jobs from the jobs stream: the purges of
//! expired idempotency keys and of processed records past their retention.
//!
//! A purge is many short transactions ([`crate::purge`]), never one long one,
//! so the group records "processed" in Redis rather than in a transaction of
//! its own that would stay open (holding back every tenant's list) for the
//! whole purge. A purge is idempotent: a second delivery deletes what is left.

use std::future;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use xentri_core::Settings;

use crate::handler::{BoxFuture, Handler, HandlerError, Handling, RedisDelivery, RedisStoreHandler};
use crate::jobs::{PURGE_IDEMPOTENCY_KEYS, PURGE_PROCESSED_EVENTS};
use crate::purge::{self, Purge};

/// The group name.
pub const GROUP: &str = "jobs";

/// Runs jobs.
pub struct Jobs {
    /// The jobs work stream.
    stream: String,
    /// Rows per purge transaction.
    chunk_rows: u32,
    /// How long processed records are kept.
    processed_retention: Duration,
    /// How long one run of a purge may go on; what is left waits for the
    /// next run. Half the visibility timeout, so that no other worker
    /// reclaims the job while it runs.
    run_budget: Duration,
}

impl Jobs {
    /// Reads the jobs stream.
    pub fn new(settings: &Settings) -> Self {
        let jobs = &settings.worker.jobs;
        Self {
            stream: settings.streams.jobs.work.clone(),
            chunk_rows: jobs.purge_chunk_rows,
            processed_retention: jobs.processed_retention(),
            run_budget: Duration::from_millis(settings.worker.visibility_timeout_ms / 2),
        }
    }

    /// The purge a job event asks for.
    fn purge(&self, event_type: &str) -> Option<Purge> {
        match event_type {
            PURGE_IDEMPOTENCY_KEYS => Some(Purge::ExpiredIdempotencyKeys),
            PURGE_PROCESSED_EVENTS => Some(Purge::ProcessedEvents { retention: self.processed_retention }),
            _ => None,
        }
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
        self.purge(event_type).is_some()
    }

    fn handling(&self) -> Handling<'_> {
        Handling::Redis(self)
    }
}

impl RedisStoreHandler for Jobs {
    fn handle<'a>(&'a self, delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let event_type = delivery.event.event_type.as_str();
            let purge =
                self.purge(event_type).ok_or_else(|| HandlerError::permanent(format!("no job `{event_type}`")))?;
            let started = Instant::now();
            let within_budget = |_: purge::Progress| {
                future::ready(if started.elapsed() < self.run_budget {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                })
            };
            let progress = purge::run(delivery.db, xentri_core::roles::WORKER, purge, self.chunk_rows, within_budget)
                .await
                .map_err(|e| HandlerError::Transient(e.into()))?;
            purge::log_finished(purge, &progress, started.elapsed());
            Ok(())
        })
    }
}
