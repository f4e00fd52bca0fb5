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

/// The allocator's view of the heap, in bytes: what tells memory the program
/// holds (`allocated`) from memory the allocator keeps for reuse (`resident`
/// minus it), which RSS alone cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    /// Live allocations.
    pub allocated: usize,
    /// Pages holding live allocations: `allocated` plus fragmentation.
    pub active: usize,
    /// The allocator's pages in physical memory, metadata included: its part of RSS.
    pub resident: usize,
    /// Virtual memory the allocator keeps mapped after returning its pages.
    pub retained: usize,
    /// The allocator's own bookkeeping.
    pub metadata: usize,
}

/// How this process reads its heap, set by the binary that chose the allocator.
static HEAP: OnceLock<fn() -> Option<Heap>> = OnceLock::new();

/// Renders the heap read by `read` with every scrape, as `heap_*_bytes`
/// gauges. For the binary that sets the global allocator; the first call wins.
pub fn report_heap(read: fn() -> Option<Heap>) {
    let _ = HEAP.set(read);
}

/// jemalloc's counters, refreshed on every call; `None` when jemalloc cannot
/// give them. Meaningful only in a process whose global allocator is jemalloc.
#[cfg(feature = "jemalloc")]
pub fn jemalloc_heap() -> Option<Heap> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The counters are cached per epoch: advancing it refreshes them.
    epoch::advance().ok()?;
    Some(Heap {
        allocated: stats::allocated::read().ok()?,
        active: stats::active::read().ok()?,
        resident: stats::resident::read().ok()?,
        retained: stats::retained::read().ok()?,
        metadata: stats::metadata::read().ok()?,
    })
}

/// Sets the `heap_*_bytes` gauges from the reader the binary reported, if any.
fn record_heap() {
    let Some(heap) = HEAP.get().and_then(|read| read()) else { return };
    // Precision is lost above 2^53 bytes only.
    #[allow(clippy::cast_precision_loss)]
    let bytes = |n: usize| n as f64;
    metrics::gauge!("heap_allocated_bytes").set(bytes(heap.allocated));
    metrics::gauge!("heap_active_bytes").set(bytes(heap.active));
    metrics::gauge!("heap_resident_bytes").set(bytes(heap.resident));
    metrics::gauge!("heap_retained_bytes").set(bytes(heap.retained));
    metrics::gauge!("heap_metadata_bytes").set(bytes(heap.metadata));
}

/// Help texts of the heap gauges.
fn describe_heap() {
    use metrics::{Unit, describe_gauge};
    describe_gauge!("heap_allocated_bytes", Unit::Bytes, "Bytes in live allocations (the allocator's count).");
    describe_gauge!("heap_active_bytes", Unit::Bytes, "Bytes in pages that hold live allocations.");
    describe_gauge!(
        "heap_resident_bytes",
        Unit::Bytes,
        "Bytes of the allocator's pages in physical memory, free pages it keeps for reuse included."
    );
    describe_gauge!(
        "heap_retained_bytes",
        Unit::Bytes,
        "Virtual memory the allocator keeps mapped after returning its pages."
    );
    describe_gauge!("heap_metadata_bytes", Unit::Bytes, "Bytes of the allocator's own bookkeeping.");
}

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
                describe_heap();
                Metrics { handle, process: Arc::new(process), started: Instant::now() }
            })
            .clone()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.process.collect();
        record_heap();
        metrics::gauge!("process_uptime_seconds").set(self.started.elapsed().as_secs_f64());
        self.handle.run_upkeep();
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_heap_is_rendered_with_every_scrape() {
        fn read() -> Option<Heap> {
            Some(Heap {
                allocated: 1_234_567,
                active: 2_000_000,
                resident: 3_000_000,
                retained: 4_000_000,
                metadata: 56_789,
            })
        }
        let metrics = Metrics::install();
        report_heap(read);
        let text = metrics.render();
        for line in [
            "heap_allocated_bytes 1234567",
            "heap_active_bytes 2000000",
            "heap_resident_bytes 3000000",
            "heap_retained_bytes 4000000",
            "heap_metadata_bytes 56789",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }

    #[cfg(feature = "jemalloc")]
    #[test]
    fn jemalloc_gives_counters_that_nest() {
        let heap = jemalloc_heap();
        let Some(heap) = heap else { panic!("jemalloc gave no counters") };
        assert!(heap.allocated <= heap.active, "{heap:?}");
        assert!(heap.active <= heap.resident, "{heap:?}");
        assert!(heap.metadata > 0, "{heap:?}");
    }

    /// `.cargo/config.toml` compiles the allocator's defaults in: one arena,
    /// freed pages returned within a second.
    #[cfg(feature = "jemalloc")]
    #[test]
    fn jemalloc_runs_with_the_compiled_in_defaults() {
        use tikv_jemalloc_ctl::{config, opt};
        let conf = config::malloc_conf::read().unwrap_or_default().trim_end_matches('\0');
        for option in ["narenas:1", "dirty_decay_ms:1000"] {
            assert!(conf.split(',').any(|o| o == option), "{option} is missing from {conf:?}");
        }
        assert_eq!(opt::narenas::read().ok(), Some(1));
    }
}
