//! How an audit reads: the missing events as a table, notes and one summary
//! line for people; one JSON document for scripts.

use chrono::SecondsFormat;
use serde_json::{Value, json};
use xentri_core::human::render_table;

use super::{Audit, Since};
use crate::handler::Store;

/// Lost entry ids shown in the text before "…".
const LOST_SHOWN: usize = 5;

fn store_name(store: Store) -> &'static str {
    match store {
        Store::Postgres => "postgres",
        Store::Redis => "redis",
    }
}

fn range(audit: &Audit) -> String {
    match audit.since {
        Since::Seq(seq) if seq > audit.through_seq => format!("seq {seq} onwards: no events yet"),
        Since::Seq(seq) => format!("events seq {seq} through {}", audit.through_seq),
        Since::Time(time) => format!(
            "events since {} through seq {}",
            time.to_rfc3339_opts(SecondsFormat::Secs, true),
            audit.through_seq
        ),
    }
}

/// The audit for people: a heading, the missing events (at most the limit),
/// lost pending entries, what Redis records cannot prove, and the summary.
pub fn text(audit: &Audit) -> String {
    let mut out = format!(
        "group {} on {} ({} records), {}\n",
        audit.group,
        audit.streams.join(", "),
        store_name(audit.store),
        range(audit)
    );
    if !audit.missing.is_empty() {
        let rows: Vec<Vec<String>> = audit
            .missing
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    e.id.to_string(),
                    e.org_id.to_string(),
                    e.event_type.clone(),
                    e.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                ]
            })
            .collect();
        out.push_str(&render_table(&["SEQ", "EVENT ID", "ORG", "TYPE", "OCCURRED AT"], &rows));
    }
    let unlisted = audit.counts.missing.saturating_sub(audit.missing.len() as u64);
    if unlisted > 0 {
        out.push_str(&format!("… and {unlisted} more missing events (raise --limit to list them)\n"));
    }
    if !audit.lost.is_empty() {
        let mut ids: Vec<String> =
            audit.lost.iter().take(LOST_SHOWN).map(|l| format!("{} {}", l.stream, l.entry_id)).collect();
        if audit.lost.len() > LOST_SHOWN {
            ids.push("…".to_owned());
        }
        out.push_str(&format!(
            "lost: {} pending entries no longer exist on their stream ({}); they are never handled, \
             and their events count as missing\n",
            audit.lost.len(),
            ids.join(", ")
        ));
    }
    if let Some(records) = &audit.records {
        out.push_str(&format!(
            "note: {} keeps processed records in Redis for {}s (worker.processed_ttl_secs): an event before {} \
             without one is unverifiable (record expired), not missing\n",
            audit.group,
            records.ttl_secs,
            records.verifiable_since.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
        out.push_str(&format!("note: these records survive a Redis restart {}\n", records.survive_restart));
    }
    // PostgreSQL records are kept long: said only when it mattered.
    if let Some(records) = audit.postgres_records.as_ref().filter(|_| audit.counts.unverifiable > 0) {
        out.push_str(&format!(
            "note: {} keeps processed records in PostgreSQL for {}s (worker.jobs.processed_retention_secs): an \
             event before {} without one is unverifiable (record purged), not missing\n",
            audit.group,
            records.retention_secs,
            records.verifiable_since.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    out.push_str(&summary(audit));
    out.push('\n');
    out
}

/// `checked N of M events: handled …, missing …`
pub fn summary(audit: &Audit) -> String {
    let c = &audit.counts;
    let mut line = format!(
        "checked {} of {} events: handled {}, pending {}, dead-lettered {}, waiting {}",
        c.checked, c.scanned, c.handled, c.pending, c.dead_lettered, c.waiting
    );
    if audit.records.is_some() {
        line.push_str(&format!(", unverifiable {} (record expired)", c.unverifiable));
    } else if audit.postgres_records.is_some() && c.unverifiable > 0 {
        line.push_str(&format!(", unverifiable {} (record purged)", c.unverifiable));
    }
    line.push_str(&format!(", missing {}", c.missing));
    line
}

/// The audit as one JSON document.
pub fn json(audit: &Audit) -> Value {
    let since = match audit.since {
        Since::Seq(seq) => json!({ "seq": seq }),
        Since::Time(time) => json!({ "time": time }),
    };
    json!({
        "group": audit.group,
        "store": store_name(audit.store),
        "streams": audit.streams,
        "since": since,
        "through_seq": audit.through_seq,
        "summary": audit.counts,
        "missing": audit.missing,
        "missing_listed": audit.missing.len(),
        "lost_pending": audit.lost,
        "redis_records": audit.records,
        "postgres_records": audit.postgres_records,
    })
}
