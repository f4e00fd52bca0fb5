//! `archive <dlq>`: dead letters older than a cut-off move to
//! `dlq:archive:{dlq}:{date}` (the UTC day each failed), one [`ARCHIVE`] script
//! run per entry, pipelined in batches. An archive expires
//! `dlq.archive_ttl_secs` after its newest entry failed.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::SecondsFormat;
use serde_json::json;
use xentri_core::dlq::archive_ttl_secs;
use xentri_core::scripts::ARCHIVE;
use xentri_core::stream::archive_key;
use xentri_core::stream_id::StreamId;

use crate::batch::{self, Item, Pace};
use crate::cli::ArchiveArgs;
use crate::context::Ctx;
use crate::error::{Completion, Error};
use crate::output::{out, out_json, out_line, progress_bar};
use crate::table;
use crate::time::format_age;

/// One entry to archive.
struct Planned {
    /// Its id in the DLQ.
    id: String,
    /// The archive (name, without the key prefix).
    archive: String,
    /// The Redis key of `archive`.
    archive_key: String,
    /// Seconds the archive must live from now for this entry.
    ttl_secs: u64,
    /// When it failed (RFC 3339), for the dry-run listing.
    failed_at: String,
    /// Its age, for the dry-run listing.
    age: String,
}

impl Item for Planned {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Runs `archive`.
pub async fn run(ctx: &mut Ctx, args: &ArchiveArgs) -> Result<Completion, Error> {
    let dlq = ctx.dlq(&args.dlq).await?;
    let older_than = args.older_than.unwrap_or(Duration::from_secs(ctx.settings.dlq.archive_after_secs));
    let older_than =
        chrono::Duration::from_std(older_than).map_err(|_| Error::BadInput("--older-than is too long".to_owned()))?;
    let cutoff_ms = (ctx.now - older_than).timestamp_millis();
    let ttl_secs = ctx.settings.dlq.archive_ttl_secs;
    let now = ctx.now;

    // An entry id's milliseconds are when it entered the DLQ, so the old
    // entries are exactly the range up to the cut-off.
    let mut planned = Vec::new();
    if let Ok(cutoff) = u64::try_from(cutoff_ms) {
        let keys = ctx.keys.clone();
        let dlq_name = dlq.name.clone();
        ctx.scan(&dlq.key, "-", &cutoff_ms.to_string(), |entry| {
            // Only whole milliseconds before the cut-off: `XRANGE` includes the end's.
            if StreamId::parse(entry.id()).is_ok_and(|id| id.ms() < cutoff) {
                let archive = archive_key(&dlq_name, entry.failed_at.date_naive());
                let age = entry.age_secs(now);
                planned.push(Planned {
                    id: entry.id().to_owned(),
                    archive_key: keys.key(&archive),
                    archive,
                    ttl_secs: archive_ttl_secs(ttl_secs, entry.failed_at, now),
                    failed_at: entry.failed_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    age: format_age(age),
                });
            }
            true
        })
        .await?;
    }

    if args.dry_run {
        return print_dry_run(args, &dlq.name, &planned);
    }
    let bar = progress_bar(planned.len(), "archiving");
    let mut per_archive: BTreeMap<String, usize> = BTreeMap::new();
    let run = batch::run(
        &mut ctx.conn,
        &planned,
        Pace { batch: args.batch as usize, rate: None },
        Some(&ARCHIVE),
        |pipe, item| {
            let mut invocation = ARCHIVE.prepare_invoke();
            invocation.key(&dlq.key).key(&item.archive_key).arg(&item.id).arg(item.ttl_secs.max(1));
            pipe.invoke_script(&invocation);
        },
        |item, result| {
            if matches!(result, batch::StepResult::Moved(_)) {
                *per_archive.entry(item.archive.clone()).or_default() += 1;
            }
        },
        &bar,
    )
    .await;

    if args.json {
        out_json(&json!({
            "dlq": dlq.name,
            "dry_run": false,
            "planned": planned.len(),
            "archived": run.moved,
            "archives": per_archive.iter().map(|(key, n)| json!({"key": key, "archived": n})).collect::<Vec<_>>(),
            "already_gone": run.gone,
            "failed": run.failed.iter().map(|(id, reason)| json!({"id": id, "reason": reason})).collect::<Vec<_>>(),
            "completed": run.aborted.is_none(),
        }))?;
    } else {
        if !per_archive.is_empty() {
            let rows: Vec<Vec<String>> = per_archive.iter().map(|(key, n)| vec![key.clone(), n.to_string()]).collect();
            out(&table::render(&["ARCHIVE", "ARCHIVED"], &rows))?;
        }
        for id in &run.gone {
            out_line(&format!("already gone: {id} (replayed, purged or archived meanwhile)"))?;
        }
        out_line(&format!(
            "archived {} of {} entries older than {} from {}; {} already gone, {} failed",
            run.moved,
            planned.len(),
            format_age(older_than.num_seconds()),
            dlq.name,
            run.gone.len(),
            run.failed.len()
        ))?;
    }
    run.finish("stopped early; re-run to archive the rest (archived entries are not archived twice)")
}

fn print_dry_run(args: &ArchiveArgs, dlq: &str, planned: &[Planned]) -> Result<Completion, Error> {
    if args.json {
        out_json(&json!({
            "dlq": dlq,
            "dry_run": true,
            "planned": planned.len(),
            "entries": planned
                .iter()
                .map(|p| json!({"id": p.id, "archive": p.archive, "ttl_secs": p.ttl_secs, "failed_at": p.failed_at}))
                .collect::<Vec<_>>(),
        }))?;
        return Ok(Completion::Done);
    }
    out_line(&format!("dry run: would archive {} entries from {dlq}; nothing changed", planned.len()))?;
    if !planned.is_empty() {
        let rows: Vec<Vec<String>> = planned
            .iter()
            .map(|p| {
                vec![
                    p.id.clone(),
                    p.age.clone(),
                    p.archive.clone(),
                    format_age(i64::try_from(p.ttl_secs).unwrap_or(i64::MAX)),
                ]
            })
            .collect();
        out(&table::render(&["ID", "AGE", "ARCHIVE", "TTL"], &rows))?;
    }
    Ok(Completion::Done)
}
