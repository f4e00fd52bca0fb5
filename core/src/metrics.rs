//! The Prometheus registry every binary installs: its own metrics plus process
//! metrics (CPU, memory, uptime) collected on each scrape.
//!
//! Labels are bounded (route templates, streams, groups, outcomes), never ids.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: fine below 50 ms where this service should live.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Relay lag buckets, in seconds: from a few milliseconds (a notified relay)
/// to minutes (a backlog after an outage).
const LAG_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];

/// Batch size buckets (appends per group-commit transaction).
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// How often histogram samples are folded into their buckets when nothing scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide registry.
#[derive(Clone)]
pub struct Metrics {
    /// Renders the registry.
    handle: PrometheusHandle,
    /// Process CPU, memory and start time.
    process: Arc<metrics_process::Collector>,
    /// When this process started, for `process_uptime_seconds`.
    started: Instant,
}

static INSTALLED: OnceLock<Metrics> = OnceLock::new();

impl Metrics {
    /// Installs the global recorder the first time; later calls (several
    /// applications in one test process) share it.
    pub fn install() -> Self {
        INSTALLED
            .get_or_init(|| {
                // Every histogram has fixed buckets (none is a summary): its
                // memory is fixed, and buckets add up across instances.
                let recorder = PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &LATENCY_BUCKETS)
                    .and_then(|b| b.set_buckets_for_metric(Matcher::Full("relay_lag_seconds".into()), &LAG_BUCKETS))
                    .and_then(|b| {
                        b.set_buckets_for_metric(Matcher::Full("api_append_batch_size".into()), &BATCH_BUCKETS)
                    })
                    .map(PrometheusBuilder::build_recorder);
                let recorder = match recorder {
                    Ok(recorder) => recorder,
                    // Only reachable with an empty bucket list, which the constant is not.
                    Err(_) => PrometheusBuilder::new().build_recorder(),
                };
                let handle = recorder.handle();
                // Fails only when another recorder is installed; then ours
                // renders nothing new, which the metrics test would show.
                let _ = metrics::set_global_recorder(recorder);
                // Histogram samples wait in buckets until upkeep folds them in.
                // A scrape does it too, but nothing may scrape for hours (no
                // Prometheus yet, or it is down): without this the samples of
                // every request and entry pile up and memory grows without bound.
                let upkept = handle.clone();
                let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkept.run_upkeep();
                    }
                });
                let process = metrics_process::Collector::default();
                process.describe();
                Metrics { handle, process: Arc::new(process), started: Instant::now() }
            })
            .clone()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.process.collect();
        metrics::gauge!("process_uptime_seconds").set(self.started.elapsed().as_secs_f64());
        self.handle.run_upkeep();
        self.handle.render()
    }
}
