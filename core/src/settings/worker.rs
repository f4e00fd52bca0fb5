//! `[worker]` and its subsections: reading, retries, the relay, the
//! supervisor, jobs and the consumer groups.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[worker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Address of the worker's `/health` and `/metrics`.
    pub host: IpAddr,
    /// Port of the worker's `/health` and `/metrics`; 0 picks a free one.
    pub port: u16,
    /// Entries fetched per `XREADGROUP`.
    pub read_count: usize,
    /// How long one `XREADGROUP` blocks waiting for entries, ms.
    pub block_ms: u64,
    /// An entry pending this long on a consumer is reclaimed by another, ms.
    pub visibility_timeout_ms: u64,
    /// How often each group looks for entries to reclaim, ms.
    pub reclaim_interval_ms: u64,
    /// Deliveries (reclaims included) after which an entry is poison: DLQ.
    pub max_deliveries: u32,
    /// How long a Redis "processed" record is kept, seconds.
    pub processed_ttl_secs: u64,
    /// How long in-flight handlers may take to finish after a shutdown signal, ms.
    pub shutdown_grace_ms: u64,
    /// How often work streams are trimmed, ms.
    pub trim_interval_ms: u64,
    /// Retry of transient failures.
    pub retry: RetrySettings,
    /// The outbox relay.
    pub relay: RelaySettings,
    /// Scheduled jobs.
    pub jobs: JobsSettings,
    /// Restarts of the worker's tasks.
    pub supervisor: SupervisorSettings,
    /// Consumer groups by name; a built-in group runs when listed and enabled.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, GroupSettings>,
    /// Test hook, unset in every shipped profile: `point` or `point:n` parks
    /// the task that reaches the named point (the n-th time, default 1st) and
    /// logs `pause point reached`, so a crash test can SIGKILL the process at
    /// exactly that moment. The points are listed in the worker's `pause` module.
    #[serde(default)]
    pub pause_at: Option<String>,
    /// Test hook, unset in every shipped profile: tasks (`relay`,
    /// `lane.<group>`, comma-separated) that panic once when they first start,
    /// to show that the supervisor restarts them; `<task>:always` panics at
    /// every start, to show that the supervisor gives it up.
    #[serde(default)]
    pub panic_at: Option<String>,
    /// Test hook, 0 in every shipped profile: the first n site builds this
    /// process runs fail transiently, to show a build's retries, its dead
    /// letter and its replay.
    #[serde(default)]
    pub test_failing_site_builds: u32,
}

/// `[worker.retry]`: exponential backoff with jitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// First delay, ms.
    pub base_ms: u64,
    /// Each delay is the previous times this.
    pub factor: f32,
    /// Largest delay, ms.
    pub max_ms: u64,
    /// Handler attempts before the entry is dead-lettered.
    pub max_attempts: u32,
    /// Randomise delays (recommended: keeps retries of many entries apart).
    pub jitter: bool,
}

/// `[worker.relay]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Run the relay in this worker.
    pub enabled: bool,
    /// Outbox rows published per round trip.
    pub batch_size: i64,
    /// Polling fallback when no notification arrives, ms.
    pub poll_interval_ms: u64,
}

/// `[worker.supervisor]`: a task that ends or panics is restarted after a
/// delay that doubles from `first_delay_ms` up to `max_delay_ms`; after
/// `max_restarts` restarts in a row (no run of `healthy_after_secs` between)
/// it is given up and the worker exits non-zero for its own supervisor
/// (systemd, Kubernetes) to restart it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSettings {
    /// First delay before a restart, ms.
    pub first_delay_ms: u64,
    /// Longest delay before a restart, ms.
    pub max_delay_ms: u64,
    /// A run this long resets the delay and the count, seconds.
    pub healthy_after_secs: u64,
    /// Restarts in a row before the task is given up.
    pub max_restarts: u32,
}

/// `[worker.jobs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    /// How often expired idempotency keys are purged, seconds.
    pub idempotency_purge_interval_secs: u64,
    /// How often processed records past their retention are purged, seconds.
    pub processed_purge_interval_secs: u64,
    /// How long a Postgres-store group's processed record (`processed_events`)
    /// is kept, seconds: a delivery of the event after that is handled again.
    /// At least a day, and longer than any redelivery (see
    /// [`WorkerSettings::redelivery_window`]).
    pub processed_retention_secs: u64,
    /// Most rows a purge deletes in one transaction (1 to 10,000).
    pub purge_chunk_rows: u32,
}

impl JobsSettings {
    /// The processed-record retention as a duration.
    pub fn processed_retention(&self) -> Duration {
        Duration::from_secs(self.processed_retention_secs)
    }
}

impl WorkerSettings {
    /// The longest an entry can keep being delivered after its first delivery:
    /// every delivery (`max_deliveries`, reclaims included) left pending for
    /// the visibility timeout and found by the next reclaim pass, plus the
    /// retry delays of its attempts. A processed record must outlive it.
    pub fn redelivery_window(&self) -> Duration {
        let per_delivery = self.visibility_timeout_ms.saturating_add(self.reclaim_interval_ms);
        let deliveries = per_delivery.saturating_mul(u64::from(self.max_deliveries));
        let retries = self.retry.max_ms.saturating_mul(u64::from(self.retry.max_attempts));
        Duration::from_millis(deliveries.saturating_add(retries))
    }
}

/// `[worker.groups.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// Run this group.
    pub enabled: bool,
    /// Handlers of this group running at once, per worker process.
    pub concurrency: usize,
}
