//! `list <dlq>`: the entries that match the filters, oldest first, as a table
//! or one JSON document.

use serde_json::json;

use crate::cli::ListArgs;
use crate::context::Ctx;
use crate::entry::{DeadEntry, ROW_HEADERS};
use crate::error::{Completion, Error};
use crate::filter::Filter;
use crate::output::{out, out_json, out_line};
use crate::table;

/// Runs `list`.
pub async fn run(ctx: &mut Ctx, args: &ListArgs) -> Result<Completion, Error> {
    let filter = Filter::compile(&args.filters)?;
    let dlq = ctx.dlq(&args.dlq).await?;
    let (mut depth, mut matched) = (0usize, 0usize);
    let mut shown: Vec<DeadEntry> = Vec::new();
    ctx.scan(&dlq.key, "-", "+", |entry| {
        depth += 1;
        if filter.matches(&entry) {
            matched += 1;
            if shown.len() < args.count {
                shown.push(entry);
            }
        }
        true
    })
    .await?;
    let now = ctx.now;
    if args.json {
        out_json(&json!({
            "dlq": dlq.name,
            "depth": depth,
            "matched": matched,
            "shown": shown.len(),
            "entries": shown.iter().map(|e| e.summary_json(now)).collect::<Vec<_>>(),
        }))?;
    } else if shown.is_empty() {
        out_line(&format!("no matching entries in {} (depth {depth})", dlq.name))?;
    } else {
        let rows: Vec<Vec<String>> = shown.iter().map(|e| e.row(now)).collect();
        out(&table::render(&ROW_HEADERS, &rows))?;
        out_line(&format!("{} of {matched} matching entries shown; {} holds {depth}", shown.len(), dlq.name))?;
    }
    Ok(Completion::Done)
}
