//! `archives <dlq>`: the DLQ's archive keys with their entry counts and TTLs.
//! Found with `SCAN` (never `KEYS`, which blocks the server).

use serde_json::json;
use xentri_core::stream::archive_keys;

use crate::cli::ArchivesArgs;
use crate::context::Ctx;
use crate::error::{Completion, Error};
use crate::output::{out, out_json, out_line};
use crate::table;
use crate::time::format_age;

/// Keys asked for per `SCAN` step.
const SCAN_COUNT: usize = 1000;

/// Runs `archives`.
pub async fn run(ctx: &mut Ctx, args: &ArchivesArgs) -> Result<Completion, Error> {
    let dlq = ctx.dlq(&args.dlq).await?;
    let keys = archive_keys(&mut ctx.conn, &ctx.keys, &dlq.name, SCAN_COUNT).await?;

    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("XLEN").arg(key).cmd("TTL").arg(key);
    }
    let counts: Vec<i64> = if keys.is_empty() { Vec::new() } else { pipe.query_async(&mut ctx.conn).await? };
    let prefix_len = ctx.keys.prefix().len();
    let archives: Vec<(String, i64, i64)> = keys
        .iter()
        .zip(counts.chunks(2))
        .map(|(key, pair)| {
            let name = key.get(prefix_len..).unwrap_or(key).to_owned();
            (name, pair.first().copied().unwrap_or(0), pair.get(1).copied().unwrap_or(-2))
        })
        // An archive that expired between SCAN and TTL is gone: skip it.
        .filter(|(_, _, ttl)| *ttl != -2)
        .collect();

    if args.json {
        out_json(&json!({
            "dlq": dlq.name,
            "archives": archives
                .iter()
                .map(|(key, entries, ttl)| json!({
                    "key": key,
                    "entries": entries,
                    "ttl_secs": if *ttl >= 0 { json!(ttl) } else { json!(null) },
                }))
                .collect::<Vec<_>>(),
        }))?;
    } else if archives.is_empty() {
        out_line(&format!("no archives of {}", dlq.name))?;
    } else {
        let rows: Vec<Vec<String>> = archives
            .iter()
            .map(|(key, entries, ttl)| {
                let ttl = if *ttl >= 0 { format_age(*ttl) } else { "none".to_owned() };
                vec![key.clone(), entries.to_string(), ttl]
            })
            .collect();
        out(&table::render(&["ARCHIVE", "ENTRIES", "TTL"], &rows))?;
    }
    Ok(Completion::Done)
}
