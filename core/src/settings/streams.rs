//! `[streams]`, `[dlq]` and `[alerts]`: stream names, caps, archival and DLQ
//! alert thresholds and severities.

use serde::Deserialize;

/// `[dlq]`: archival of old dead letters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlqSettings {
    /// Dead letters older than this move to `dlq:archive:{dlq}:{date}`, seconds.
    pub archive_after_secs: u64,
    /// An archive key expires this long after its newest entry failed, seconds.
    pub archive_ttl_secs: u64,
    /// How often the worker archives, seconds.
    pub archive_interval_secs: u64,
}

/// `[alerts]`: DLQ growth and repeated correlation ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// How often the worker evaluates the alert conditions, seconds.
    pub evaluate_interval_secs: u64,
    /// The sliding window of the growth condition, seconds.
    pub window_secs: u64,
    /// A correlation id appearing this many times in one DLQ alerts.
    pub repeated_correlation_threshold: u32,
    /// Alertmanager's v2 alerts endpoint (e.g. `http://127.0.0.1:9093/api/v2/alerts`); unset: log and gauge only.
    pub webhook_url: Option<String>,
    /// A firing alert is sent again this often, seconds.
    pub resend_interval_secs: u64,
}

/// `[streams]`: the three families of SPEC.md "Streams".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsSettings {
    /// Entries every group has acknowledged are trimmed beyond this many per
    /// work stream; unacknowledged entries are never trimmed.
    pub work_cap: usize,
    /// Every appended event.
    pub events: FamilySettings,
    /// Background jobs.
    pub jobs: FamilySettings,
    /// Deliveries to systems outside the platform.
    pub sync: FamilySettings,
}

impl StreamsSettings {
    /// The settings of `family`.
    pub fn family(&self, family: crate::stream::Family) -> &FamilySettings {
        match family {
            crate::stream::Family::Events => &self.events,
            crate::stream::Family::Jobs => &self.jobs,
            crate::stream::Family::Sync => &self.sync,
        }
    }

    /// The family whose work stream is `stream`.
    pub fn family_of_work(&self, stream: &str) -> Option<crate::stream::Family> {
        crate::stream::Family::ALL.into_iter().find(|f| self.family(*f).work == stream)
    }
}

/// One stream family.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilySettings {
    /// Work stream key (before `redis.key_prefix`).
    pub work: String,
    /// Dead-letter stream key.
    pub dlq: String,
    /// More than this many dead letters within an hour raises an alert.
    pub alert_threshold: u32,
    /// The `severity` label of the alerts on this family's DLQ.
    pub alert_severity: Severity,
}

/// An alert's `severity` label, as Alertmanager routes on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look; pages no one.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The label value: `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}
