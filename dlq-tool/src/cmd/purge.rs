//! `purge <dlq>`: deletes dead letters for good — the named ids, or those older
//! than a cut-off that match the filters. Refuses without `--yes`.

use std::collections::BTreeSet;

use indicatif::ProgressBar;
use serde_json::json;
use xentri_core::stream_id::StreamId;

use crate::batch::{self, Pace};
use crate::cli::PurgeArgs;
use crate::context::Ctx;
use crate::entry::{DeadEntry, ROW_HEADERS};
use crate::error::{Completion, Error};
use crate::filter::Filter;
use crate::output::{out, out_json, out_line, progress_bar};
use crate::table;
use crate::time::format_age;

/// Refuses what can be refused without Redis: no `--yes` (unless
/// `--dry-run`), malformed ids, filters with ids.
pub fn check(args: &PurgeArgs) -> Result<(), Error> {
    if !args.yes && !args.dry_run {
        return Err(Error::MissingYes);
    }
    if let Some(bad) = args.ids.iter().find_map(|id| StreamId::parse(id).err()) {
        return Err(Error::BadInput(bad.to_string()));
    }
    if args.filters.any() && args.older_than.is_none() {
        return Err(Error::BadInput(
            "filters (--type, --org, --since, --correlation-id, --error-match, --ids-from) select among \
             --older-than; leave them out when naming ids"
                .into(),
        ));
    }
    Ok(())
}

/// Runs `purge`.
pub async fn run(ctx: &mut Ctx, args: &PurgeArgs) -> Result<Completion, Error> {
    check(args)?;
    let filter = Filter::compile(&args.filters)?;
    let dlq = ctx.dlq(&args.dlq).await?;
    let now = ctx.now;

    let selected: Vec<DeadEntry> = match args.older_than {
        Some(older_than) => {
            let older_than = chrono::Duration::from_std(older_than)
                .map_err(|_| Error::BadInput("--older-than is too long".to_owned()))?;
            let cutoff_ms = (now - older_than).timestamp_millis();
            let mut selected = Vec::new();
            if let Ok(cutoff) = u64::try_from(cutoff_ms) {
                ctx.scan(&dlq.key, "-", &cutoff_ms.to_string(), |entry| {
                    if StreamId::parse(entry.id()).is_ok_and(|id| id.ms() < cutoff) && filter.matches(&entry) {
                        selected.push(entry);
                    }
                    true
                })
                .await?;
            }
            selected
        }
        None => {
            let unique: Vec<String> = args.ids.iter().collect::<BTreeSet<_>>().into_iter().cloned().collect();
            let found = ctx.fetch(&dlq.key, &unique).await?;
            let missing: Vec<String> =
                unique.iter().zip(&found).filter(|(_, e)| e.is_none()).map(|(id, _)| id.clone()).collect();
            if !missing.is_empty() {
                return Err(Error::IdsNotFound { dlq: dlq.name, ids: missing });
            }
            found.into_iter().flatten().collect()
        }
    };

    if args.dry_run {
        if args.json {
            out_json(&json!({
                "dlq": dlq.name,
                "dry_run": true,
                "planned": selected.len(),
                "entries": selected.iter().map(|e| e.summary_json(now)).collect::<Vec<_>>(),
            }))?;
        } else {
            out_line(&format!("dry run: would purge {} entries from {}; nothing changed", selected.len(), dlq.name))?;
            if !selected.is_empty() {
                let rows: Vec<Vec<String>> = selected.iter().map(|e| e.row(now)).collect();
                out(&table::render(&ROW_HEADERS, &rows))?;
            }
        }
        return Ok(Completion::Done);
    }

    // Bulk work shows progress; a few named ids do not need it.
    let bar = if args.older_than.is_some() { progress_bar(selected.len(), "purging") } else { ProgressBar::hidden() };
    let run = batch::run(
        &mut ctx.conn,
        &selected,
        Pace { batch: args.batch as usize, rate: None },
        None,
        |pipe, entry| {
            pipe.cmd("XDEL").arg(&dlq.key).arg(entry.id());
        },
        |_, _| {},
        &bar,
    )
    .await;

    if args.json {
        out_json(&json!({
            "dlq": dlq.name,
            "dry_run": false,
            "planned": selected.len(),
            "purged": run.moved,
            "already_gone": run.gone,
            "failed": run.failed.iter().map(|(id, reason)| json!({"id": id, "reason": reason})).collect::<Vec<_>>(),
            "completed": run.aborted.is_none(),
        }))?;
    } else {
        for id in &run.gone {
            out_line(&format!("already gone: {id} (replayed, archived or purged meanwhile)"))?;
        }
        let what = match args.older_than {
            Some(older_than) => {
                format!(" older than {}", format_age(older_than.as_secs().try_into().unwrap_or(i64::MAX)))
            }
            None => String::new(),
        };
        out_line(&format!(
            "purged {} of {} entries{what} from {}; {} already gone, {} failed",
            run.moved,
            selected.len(),
            dlq.name,
            run.gone.len(),
            run.failed.len()
        ))?;
    }
    run.finish("stopped early; re-run to purge the rest")
}
