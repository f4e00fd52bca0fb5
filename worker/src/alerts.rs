//! DLQ alerts. Two conditions per DLQ, counted by [`DlqTally`]:
//! - growth: more than the family's threshold of dead letters failed within
//!   the window (an hour by default);
//! - a systemic issue: one `correlation_id` in the DLQ
//!   `alerts.repeated_correlation_threshold` (3) or more times.
//!
//! Each alert carries its family's `alert_severity` as its `severity` label.
//!
//! A condition that starts holding raises an alert: one error-level log line
//! with `alert=true`, a gauge, and a POST to `alerts.webhook_url` in
//! Alertmanager's v2 format — once, then again every
//! `alerts.resend_interval_secs` while it holds (no alert storm) — and a
//! resolution when it clears. Firing alerts are kept in Redis, so whichever
//! worker evaluates next knows them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::streams::StreamRangeReply;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use xentri_core::dlq::DlqTally;
use xentri_core::settings::Severity;
use xentri_core::stream::{Family, StreamEntry};

use crate::runtime::Shared;

/// Dead letters read per page when counting correlation ids.
const PAGE: usize = 1000;
/// Most dead letters looked at per DLQ and evaluation.
const SCAN_LIMIT: usize = 100_000;

/// An alert: its identity (labels) and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Alertmanager labels; `alertname` and `stream` always.
    pub labels: BTreeMap<String, String>,
    /// `summary` and `description`.
    pub annotations: BTreeMap<String, String>,
}

impl Alert {
    fn key(&self) -> String {
        self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
}

/// What is remembered of a firing alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Firing {
    alert: Alert,
    starts_at: DateTime<Utc>,
    last_sent: DateTime<Utc>,
}

/// Evaluates until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let interval = Duration::from_secs(shared.settings.alerts.evaluate_interval_secs.max(1));
    let client = client()?;
    crate::jobs::once_per_interval(&shared, "alerts", interval, &shutdown, || evaluate(&shared, &client, Utc::now()))
        .await;
    Ok(())
}

/// The HTTP client for the webhook.
pub fn client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?)
}

/// The conditions holding now, over every configured DLQ: each DLQ's newest
/// dead letters (at most [`SCAN_LIMIT`]) counted by [`DlqTally`], as
/// `dlq-tool stats` counts them.
pub async fn conditions(shared: &Shared, now: DateTime<Utc>) -> anyhow::Result<Vec<Alert>> {
    let settings = &shared.settings;
    let window = Duration::from_secs(settings.alerts.window_secs);
    let window_start = chrono::Duration::from_std(window)
        .ok()
        .and_then(|window| now.checked_sub_signed(window))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut conn = shared.redis.get().await?;
    let mut alerts = Vec::new();
    for family in Family::ALL {
        let names = settings.streams.family(family);
        let key = shared.keys.key(&names.dlq);
        let mut tally = DlqTally::new(window_start);
        // Newest first: the window's dead letters are all counted even when
        // the DLQ holds more than the scan looks at.
        let mut end = "+".to_owned();
        while tally.seen < SCAN_LIMIT {
            let page: StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(&key)
                .arg(&end)
                .arg("-")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut conn)
                .await?;
            let Some(last) = page.ids.last().map(|e| e.id.clone()) else { break };
            for id in &page.ids {
                match StreamEntry::from_redis(id.id.clone(), &id.map) {
                    Ok(entry) => tally.add(&entry),
                    Err(error) => {
                        tracing::warn!(dlq = %names.dlq, entry_id = %id.id, %error, "undecodable dead letter");
                        tally.add_undecodable(&id.id);
                    }
                }
            }
            if page.ids.len() < PAGE {
                break;
            }
            end = format!("({last}");
        }
        metrics::gauge!("worker_dlq_recent_entries", "stream" => names.dlq.clone()).set(tally.in_window as f64);
        let holding = tally.conditions(names.alert_threshold, settings.alerts.repeated_correlation_threshold);
        let severity = names.alert_severity;
        if holding.growth {
            alerts.push(alert(
                "XentriDlqGrowth",
                &names.dlq,
                severity,
                &[],
                format!("{} has {} new dead letters within {}s", names.dlq, tally.in_window, window.as_secs()),
                format!("more than {} dead letters within the window", names.alert_threshold),
            ));
        }
        metrics::gauge!("worker_dlq_repeated_correlations", "stream" => names.dlq.clone())
            .set(holding.repeated.len() as f64);
        for (correlation, n) in holding.repeated {
            alerts.push(alert(
                "XentriDlqRepeatedCorrelation",
                &names.dlq,
                severity,
                &[("correlation_id", correlation.as_str())],
                format!("correlation id {correlation} is in {} {n} times", names.dlq),
                "the same business operation keeps failing: a systemic issue".to_owned(),
            ));
        }
    }
    Ok(alerts)
}

fn alert(
    name: &str,
    stream: &str,
    severity: Severity,
    extra: &[(&str, &str)],
    summary: String,
    description: String,
) -> Alert {
    let mut labels = BTreeMap::from([
        ("alertname".to_owned(), name.to_owned()),
        ("stream".to_owned(), stream.to_owned()),
        ("severity".to_owned(), severity.as_str().to_owned()),
        ("service".to_owned(), "xentri-worker".to_owned()),
    ]);
    labels.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let annotations = BTreeMap::from([("summary".to_owned(), summary), ("description".to_owned(), description)]);
    Alert { labels, annotations }
}

/// One evaluation: raise what started, re-send what is due, resolve what cleared.
pub async fn evaluate(shared: &Shared, client: &reqwest::Client, now: DateTime<Utc>) -> anyhow::Result<()> {
    let current = conditions(shared, now).await?;
    let state_key = shared.keys.key("alerts:firing");
    let mut conn = shared.redis.get().await?;
    let stored: HashMap<String, String> = redis::cmd("HGETALL").arg(&state_key).query_async(&mut conn).await?;
    let mut firing: HashMap<String, Firing> =
        stored.into_iter().filter_map(|(k, v)| serde_json::from_str(&v).ok().map(|f| (k, f))).collect();
    let resend = chrono::Duration::seconds(shared.settings.alerts.resend_interval_secs as i64);
    let mut to_send = Vec::new();
    let mut firing_by_name: HashMap<(String, String), bool> = HashMap::new();
    for alert in &current {
        let key = alert.key();
        let name = (alert.labels["alertname"].clone(), alert.labels["stream"].clone());
        firing_by_name.insert(name, true);
        match firing.get_mut(&key) {
            None => {
                tracing::error!(
                    alert = true,
                    alertname = %alert.labels["alertname"],
                    stream = %alert.labels["stream"],
                    reason = %alert.annotations["summary"],
                    "alert firing"
                );
                let entry = Firing { alert: alert.clone(), starts_at: now, last_sent: now };
                to_send.push(payload(&entry, None));
                firing.insert(key.clone(), entry);
            }
            Some(entry) => {
                entry.alert = alert.clone();
                if now - entry.last_sent >= resend {
                    entry.last_sent = now;
                    to_send.push(payload(entry, None));
                }
            }
        }
    }
    let current_keys: Vec<String> = current.iter().map(Alert::key).collect();
    let cleared: Vec<String> = firing.keys().filter(|k| !current_keys.contains(k)).cloned().collect();
    for key in &cleared {
        if let Some(entry) = firing.remove(key) {
            tracing::info!(alertname = %entry.alert.labels["alertname"], stream = %entry.alert.labels["stream"], "alert resolved");
            to_send.push(payload(&entry, Some(now)));
        }
    }
    // Gauges: one series per alert name and stream (bounded labels).
    for family in Family::ALL {
        let dlq = &shared.settings.streams.family(family).dlq;
        for name in ["XentriDlqGrowth", "XentriDlqRepeatedCorrelation"] {
            let on = firing_by_name.contains_key(&(name.to_owned(), dlq.clone()));
            metrics::gauge!("worker_alert_firing", "alertname" => name, "stream" => dlq.clone()).set(if on {
                1.0
            } else {
                0.0
            });
        }
    }
    let mut pipe = redis::pipe();
    pipe.cmd("DEL").arg(&state_key).ignore();
    for (key, entry) in &firing {
        pipe.cmd("HSET").arg(&state_key).arg(key).arg(serde_json::to_string(entry)?).ignore();
    }
    pipe.query_async::<()>(&mut conn).await?;
    if let (Some(url), false) = (&shared.settings.alerts.webhook_url, to_send.is_empty()) {
        let response = client.post(url).json(&to_send).send().await?;
        if !response.status().is_success() {
            anyhow::bail!("alert webhook answered {}", response.status());
        }
    }
    Ok(())
}

/// One alert in Alertmanager's v2 `postableAlert` shape.
fn payload(entry: &Firing, ends_at: Option<DateTime<Utc>>) -> serde_json::Value {
    let mut alert = serde_json::json!({
        "labels": entry.alert.labels,
        "annotations": entry.alert.annotations,
        "startsAt": entry.starts_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "generatorURL": "xentri-worker://alerts",
    });
    if let Some(ends_at) = ends_at {
        alert["endsAt"] = serde_json::json!(ends_at.to_rfc3339_opts(SecondsFormat::Millis, true));
    }
    alert
}
