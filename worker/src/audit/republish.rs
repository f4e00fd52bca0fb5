//! `worker republish`: the events an audit finds missing go back on their
//! streams as new entries targeted at the group (`target_group`), so other
//! groups skip them and the group's processed records keep effects exactly
//! once. Unverifiable events are not republished: they may have been handled.
//!
//! Running it twice publishes nothing the second time: what the first run
//! published is then waiting, pending or handled, not missing.

use serde_json::{Value, json};
use xentri_core::stream::field;

use super::{Audit, AuditError, Since, Sources, postgres, routed_to};
use crate::handler::Handler;

/// More missing events than this are republished from a terminal only with
/// `--yes`.
pub const CONFIRM_ABOVE: usize = 1000;
/// Events published per round trip.
pub const BATCH: usize = 1000;

/// How to republish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// List what would be published; publish nothing.
    pub dry_run: bool,
    /// More than [`CONFIRM_ABOVE`] events may go (`--yes`, or no one at a
    /// terminal to ask).
    pub confirmed: bool,
}

/// The outcome of a republish.
#[derive(Debug, Clone)]
pub struct Republished {
    /// The audit that found the events.
    pub audit: Audit,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Events now on their stream again.
    pub published: u64,
    /// Events that could not be published.
    pub failed: u64,
    /// Why the first failure failed.
    pub first_error: Option<String>,
}

/// Audits `handler`'s group from `since`, then publishes every missing event
/// to its stream targeted at the group. `progress(done, total)` is called
/// after each batch.
pub async fn republish(
    sources: &Sources,
    handler: &dyn Handler,
    since: Since,
    limit: usize,
    options: Options,
    mut progress: impl FnMut(u64, u64),
) -> Result<Republished, AuditError> {
    let audit = super::audit(sources, handler, since, limit).await?;
    let total = audit.missing_seqs.len();
    let mut outcome = Republished { audit, dry_run: options.dry_run, published: 0, failed: 0, first_error: None };
    if options.dry_run || total == 0 {
        return Ok(outcome);
    }
    if !options.confirmed && total > CONFIRM_ABOVE {
        return Err(AuditError::NeedsConfirmation { count: total, limit: CONFIRM_ABOVE });
    }
    let group = handler.group();
    let mut conn = sources.redis.clone();
    for seqs in outcome.audit.missing_seqs.chunks(BATCH) {
        let events = postgres::events(sources, seqs).await?;
        if events.len() < seqs.len() {
            outcome.failed += (seqs.len() - events.len()) as u64;
            outcome.first_error.get_or_insert_with(|| "event no longer readable".to_owned());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for event in &events {
            let stream = &sources
                .settings
                .streams
                .family(routed_to(event.org_id, event.actor.as_str(), event.event_type.as_str()))
                .work;
            // No MAXLEN: trimming is the trimmer's, which never drops unread entries.
            let mut xadd = redis::cmd("XADD");
            xadd.arg(sources.keys.key(stream)).arg("*");
            for (name, value) in xentri_core::stream::encode(event) {
                xadd.arg(name).arg(value);
            }
            xadd.arg(field::TARGET_GROUP).arg(group);
            pipe.add_command(xadd);
        }
        let results: Vec<redis::RedisResult<String>> = pipe.query_async(&mut conn).await?;
        for result in results {
            match result {
                Ok(_) => outcome.published += 1,
                Err(error) => match AuditError::from(error) {
                    unreachable @ AuditError::RedisUnreachable(_) => return Err(unreachable),
                    refused => {
                        outcome.failed += 1;
                        outcome.first_error.get_or_insert_with(|| refused.to_string());
                    }
                },
            }
        }
        progress(outcome.published + outcome.failed, total as u64);
    }
    Ok(outcome)
}

/// The last line for people.
pub fn text(outcome: &Republished) -> String {
    let count = outcome.audit.missing_seqs.len();
    let group = &outcome.audit.group;
    if count == 0 {
        return "nothing to republish\n".to_owned();
    }
    if outcome.dry_run {
        return format!(
            "dry run: would republish {count} events to {} targeted at {group}\n",
            outcome.audit.streams.join(", ")
        );
    }
    let mut line = format!(
        "republished {} of {count} events to {} targeted at {group}",
        outcome.published,
        outcome.audit.streams.join(", ")
    );
    if outcome.failed > 0 {
        line.push_str(&format!("; {} failed", outcome.failed));
        if let Some(error) = &outcome.first_error {
            line.push_str(&format!(" (first: {error})"));
        }
    }
    line.push('\n');
    line
}

/// The republish as one JSON document: the audit, and what was published.
pub fn json(outcome: &Republished) -> Value {
    json!({
        "audit": super::report::json(&outcome.audit),
        "dry_run": outcome.dry_run,
        "to_republish": outcome.audit.missing_seqs.len(),
        "republished": outcome.published,
        "failed": outcome.failed,
        "first_error": outcome.first_error,
    })
}
