//! `stats`: for every configured DLQ, its depth, the age of its oldest entry,
//! the dead letters of the last alert window against its threshold, its most
//! frequent errors and the correlation ids seen more than once — the same
//! conditions the worker alerts on.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use xentri_core::dlq::DlqTally;

use crate::cli::StatsArgs;
use crate::context::Ctx;
use crate::entry::one_line;
use crate::error::{Completion, Error};
use crate::output::{out, out_json};
use crate::table;
use crate::time::format_age;

/// How many errors and correlation ids each DLQ lists.
pub const TOP: usize = 5;
/// Errors are grouped by their first this many characters.
pub const ERROR_CHARS: usize = 80;

/// What `stats` found in one DLQ.
struct DlqStats {
    name: String,
    depth: usize,
    oldest: Option<DateTime<Utc>>,
    in_window: usize,
    threshold: u32,
    /// The growth alert holds.
    growth: bool,
    /// The correlation ids the repeated-correlation alert holds for.
    alerting: HashSet<String>,
    top_errors: Vec<(String, usize)>,
    /// Correlation ids seen more than once, most frequent first.
    repeated: Vec<(String, usize)>,
}

/// Runs `stats`.
pub async fn run(ctx: &mut Ctx, args: &StatsArgs) -> Result<Completion, Error> {
    let now = ctx.now;
    let window_secs = i64::try_from(ctx.settings.alerts.window_secs).unwrap_or(i64::MAX);
    let window_start = now - chrono::Duration::seconds(window_secs.min(i64::from(i32::MAX)));
    let repeat_threshold = usize::try_from(ctx.settings.alerts.repeated_correlation_threshold).unwrap_or(usize::MAX);
    let mut all = Vec::new();
    for (family, settings) in ctx.configured().into_iter().map(|(f, s)| (f, s.clone())).collect::<Vec<_>>() {
        let dlq = ctx.configured_dlq(family);
        let mut stats = DlqStats {
            name: dlq.name.clone(),
            depth: 0,
            oldest: None,
            in_window: 0,
            threshold: settings.alert_threshold,
            growth: false,
            alerting: HashSet::new(),
            top_errors: Vec::new(),
            repeated: Vec::new(),
        };
        let mut errors: HashMap<String, usize> = HashMap::new();
        // The worker's alert conditions, counted the same way.
        let mut tally = DlqTally::new(window_start);
        ctx.scan(&dlq.key, "-", "+", |entry| {
            stats.depth += 1;
            stats.oldest = Some(stats.oldest.map_or(entry.failed_at, |o| o.min(entry.failed_at)));
            tally.add(&entry.entry);
            *errors.entry(one_line(entry.error().unwrap_or("-"), ERROR_CHARS)).or_default() += 1;
            true
        })
        .await?;
        let holding = tally.conditions(settings.alert_threshold, ctx.settings.alerts.repeated_correlation_threshold);
        stats.in_window = tally.in_window;
        stats.growth = holding.growth;
        stats.alerting = holding.repeated.into_iter().map(|(correlation, _)| correlation).collect();
        stats.top_errors = top(errors, 1);
        stats.repeated = top(tally.per_correlation, 2);
        all.push(stats);
    }

    if args.json {
        let dlqs: Vec<Value> = all
            .iter()
            .map(|s| {
                let (growth, repeated) = (s.growth, !s.alerting.is_empty());
                json!({
                    "dlq": s.name,
                    "depth": s.depth,
                    "oldest_failed_at": s.oldest.map(|o| o.to_rfc3339_opts(SecondsFormat::Millis, true)),
                    "oldest_age_secs": s.oldest.map(|o| (now - o).num_seconds()),
                    "last_window": s.in_window,
                    "alert_threshold": s.threshold,
                    "growth_alert": growth,
                    "repeated_alert": repeated,
                    "alerting": growth || repeated,
                    "top_errors": s.top_errors.iter().map(|(e, n)| json!({"error": e, "count": n})).collect::<Vec<_>>(),
                    "repeated_correlation_ids": s
                        .repeated
                        .iter()
                        .map(|(c, n)| json!({"correlation_id": c, "count": n, "alert": s.alerting.contains(c)}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        out_json(
            &json!({"window_secs": window_secs, "repeated_correlation_threshold": repeat_threshold, "dlqs": dlqs}),
        )?;
        return Ok(Completion::Done);
    }

    let window =
        if window_secs == 3_600 { "LAST HOUR".to_owned() } else { format!("LAST {}", format_age(window_secs)) };
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            let status = match (s.growth, !s.alerting.is_empty()) {
                (false, false) => "ok",
                (true, false) => "ALERT: growth",
                (false, true) => "ALERT: repeated correlation id",
                (true, true) => "ALERT: growth, repeated correlation id",
            };
            vec![
                s.name.clone(),
                s.depth.to_string(),
                s.oldest.map_or("-".to_owned(), |o| format_age((now - o).num_seconds())),
                s.in_window.to_string(),
                s.threshold.to_string(),
                status.to_owned(),
            ]
        })
        .collect();
    let mut report = table::render(&["DLQ", "DEPTH", "OLDEST", &window, "THRESHOLD", "STATUS"], &rows);
    for s in all.iter().filter(|s| s.depth > 0) {
        let errors: Vec<Vec<String>> = s.top_errors.iter().map(|(e, n)| vec![n.to_string(), e.clone()]).collect();
        report.push_str(&format!("\n{}: top errors\n", s.name));
        report.push_str(&table::render(&["COUNT", "ERROR"], &errors));
        if !s.repeated.is_empty() {
            let rows: Vec<Vec<String>> = s
                .repeated
                .iter()
                .map(|(c, n)| {
                    let flag =
                        if s.alerting.contains(c) { format!("ALERT (>= {repeat_threshold})") } else { String::new() };
                    vec![n.to_string(), c.clone(), flag]
                })
                .collect();
            report.push_str(&format!("\n{}: correlation ids seen more than once\n", s.name));
            report.push_str(&table::render(&["COUNT", "CORRELATION ID", ""], &rows));
        }
    }
    out(&report)?;
    Ok(Completion::Done)
}

/// The `TOP` most frequent keys seen at least `min` times, most frequent
/// first, ties by key (so output is stable).
fn top(counts: HashMap<String, usize>, min: usize) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= min).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(TOP);
    counts
}
