//! One function per outcome: each logs and counts together, with bounded
//! labels (stream, group, outcome).

use std::time::Duration;

/// Describes the runtime's metrics.
pub fn describe() {
    metrics::describe_counter!("worker_messages_total", "Stream entries handled, by stream, group and outcome");
    metrics::describe_histogram!(
        "worker_handler_duration_seconds",
        metrics::Unit::Seconds,
        "Handler run time, by stream and group"
    );
    metrics::describe_gauge!("worker_pending_entries", "Entries delivered to a group and not yet acknowledged");
    metrics::describe_gauge!("worker_dlq_depth", "Entries in a dead-letter stream");
    metrics::describe_counter!("worker_task_restarts_total", "Restarts of a supervised task of the worker, by task");
    metrics::describe_counter!("relay_events_total", "Outbox rows published to streams");
    metrics::describe_histogram!("relay_lag_seconds", metrics::Unit::Seconds, "Time from append to publish");
    metrics::describe_gauge!("outbox_backlog", "Outbox rows not yet published");
    metrics::describe_counter!("worker_purged_rows_total", "Rows deleted by the purge jobs, by table");
}

/// One lane's metric handles, registered once: recording an outcome is then an
/// atomic add, not a lookup by labels. Each method logs and counts together.
pub struct LaneMetrics {
    stream: String,
    group: String,
    ack: metrics::Counter,
    retry: metrics::Counter,
    dlq: metrics::Counter,
    skipped: metrics::Counter,
    duration: metrics::Histogram,
}

impl LaneMetrics {
    /// Registers the handles of `group` on `stream`.
    pub fn new(stream: &str, group: &str) -> Self {
        let counter = |outcome: &'static str| {
            metrics::counter!(
                "worker_messages_total",
                "stream" => stream.to_owned(), "group" => group.to_owned(), "outcome" => outcome
            )
        };
        Self {
            stream: stream.to_owned(),
            group: group.to_owned(),
            ack: counter("ack"),
            retry: counter("retry"),
            dlq: counter("dlq"),
            skipped: counter("skipped"),
            duration: metrics::histogram!(
                "worker_handler_duration_seconds",
                "stream" => stream.to_owned(), "group" => group.to_owned()
            ),
        }
    }

    /// A handler run finished (either way).
    pub fn handler_ran(&self, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
    }

    /// Handled and acknowledged.
    pub fn acked(&self, entry_id: &str, attempts: u32) {
        tracing::debug!(stream = %self.stream, group = %self.group, entry_id, attempts, "acked");
        self.ack.increment(1);
    }

    /// A transient failure; another attempt follows after `delay`.
    pub fn retried(&self, entry_id: &str, attempt: u32, delay: Duration, error: &str) {
        tracing::warn!(
            stream = %self.stream, group = %self.group, entry_id, attempt,
            delay_ms = delay.as_millis() as u64, error, "retrying"
        );
        self.retry.increment(1);
    }

    /// Moved to the DLQ.
    pub fn dead_lettered(&self, entry_id: &str, dlq: &str, reason: &str) {
        tracing::error!(stream = %self.stream, group = %self.group, entry_id, dlq, reason, "dead-lettered");
        self.dlq.increment(1);
    }

    /// Acknowledged without running the handler: not its type, targeted at
    /// another group, or already processed.
    pub fn skipped(&self, entry_id: &str, reason: &'static str) {
        tracing::debug!(stream = %self.stream, group = %self.group, entry_id, reason, "skipped");
        self.skipped.increment(1);
    }
}
