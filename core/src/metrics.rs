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
                let recorder = PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &LATENCY_BUCKETS)
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
