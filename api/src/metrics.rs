//! The api's own metrics: requests by route template and status, and their
//! latency. The registry itself is [`xentri_core::metrics::Metrics`].
//!
//! Labels are bounded: method, route template, status. Never an id.

use std::time::Duration;

pub use xentri_core::metrics::Metrics;

/// Describes the api's metrics once the registry is installed.
pub fn describe() {
    metrics::describe_counter!("http_requests_total", "HTTP requests answered, by route and status");
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency, by route and status"
    );
    metrics::describe_counter!("events_appended_total", "Events appended through the api");
    metrics::describe_histogram!("api_append_batch_size", "Appends written together in one transaction (group commit)");
}

/// Counts one answered request.
pub fn record_request(method: &str, route: &'static str, status: u16, elapsed: Duration) {
    let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}
