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
    metrics::describe_counter!("relay_events_total", "Outbox rows published to streams");
    metrics::describe_histogram!("relay_lag_seconds", metrics::Unit::Seconds, "Time from append to publish");
    metrics::describe_gauge!("outbox_backlog", "Outbox rows not yet published");
}

fn count(stream: &str, group: &str, outcome: &'static str) {
    metrics::counter!(
        "worker_messages_total",
        "stream" => stream.to_owned(), "group" => group.to_owned(), "outcome" => outcome
    )
    .increment(1);
}

/// A handler run finished (either way).
pub fn handler_ran(stream: &str, group: &str, elapsed: Duration) {
    metrics::histogram!("worker_handler_duration_seconds", "stream" => stream.to_owned(), "group" => group.to_owned())
        .record(elapsed.as_secs_f64());
}

/// Handled and acknowledged.
pub fn acked(stream: &str, group: &str, entry_id: &str, attempts: u32) {
    tracing::debug!(stream, group, entry_id, attempts, "acked");
    count(stream, group, "ack");
}

/// A transient failure; another attempt follows after `delay`.
pub fn retried(stream: &str, group: &str, entry_id: &str, attempt: u32, delay: Duration, error: &str) {
    tracing::warn!(stream, group, entry_id, attempt, delay_ms = delay.as_millis() as u64, error, "retrying");
    count(stream, group, "retry");
}

/// Moved to the DLQ.
pub fn dead_lettered(stream: &str, group: &str, entry_id: &str, dlq: &str, reason: &str) {
    tracing::error!(stream, group, entry_id, dlq, reason, "dead-lettered");
    count(stream, group, "dlq");
}

/// Acknowledged without running the handler: not its type, targeted at
/// another group, or already processed.
pub fn skipped(stream: &str, group: &str, entry_id: &str, reason: &'static str) {
    tracing::debug!(stream, group, entry_id, reason, "skipped");
    count(stream, group, "skipped");
}
