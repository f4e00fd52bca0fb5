//! `tail <dlq>`: prints dead letters as they arrive, like `tail -f`, until
//! Ctrl-C. A blocking `XREAD` from `$` (only what arrives from now on), then
//! from the last id seen, so nothing that arrives while printing is missed.

use crate::cli::TailArgs;
use crate::context::{Ctx, parse_range};
use crate::entry::ROW_HEADERS;
use crate::error::{Completion, Error};
use crate::output::{err_line, out_line};

/// How long one `XREAD` blocks, ms (below the connection's response timeout).
pub const BLOCK_MS: u64 = 5_000;
/// Entries read per `XREAD`.
const READ_COUNT: usize = 100;
/// Column widths of the human output (the stream is endless, so widths cannot
/// be measured first).
const WIDTHS: [usize; 6] = [15, 6, 32, 36, 16, 8];

/// Runs `tail`.
pub async fn run(ctx: &mut Ctx, args: &TailArgs) -> Result<Completion, Error> {
    let dlq = ctx.dlq(&args.dlq).await?;
    err_line(&format!("following {} (Ctrl-C to stop)", dlq.name));
    if !args.json {
        out_line(&fixed(&ROW_HEADERS.map(str::to_owned)))?;
    }
    let mut last = "$".to_owned();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let mut conn = ctx.conn.clone();
        let mut xread = redis::cmd("XREAD");
        xread.arg("COUNT").arg(READ_COUNT).arg("BLOCK").arg(BLOCK_MS).arg("STREAMS").arg(&dlq.key).arg(&last);
        let read = xread.query_async::<redis::Value>(&mut conn);
        let reply = tokio::select! {
            _ = &mut stop => return Ok(Completion::Done),
            reply = read => reply?,
        };
        // `[[key, [[id, [field, value, …]], …]]]`, or nil when the block timed out.
        let redis::Value::Array(streams) = reply else { continue };
        for stream in streams {
            let redis::Value::Array(parts) = stream else { continue };
            let Some(entries) = parts.into_iter().nth(1) else { continue };
            for entry in parse_range(entries)? {
                let now = chrono::Utc::now();
                if args.json {
                    out_line(&entry.summary_json(now).to_string())?;
                } else {
                    out_line(&fixed(&entry.row(now)))?;
                }
                last = entry.id().to_owned();
            }
        }
    }
}

/// The cells padded to [`WIDTHS`], the last one as is.
fn fixed(cells: &[String]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        match WIDTHS.get(i) {
            Some(width) => line.push_str(&format!("{cell:<width$}  ")),
            None => line.push_str(cell),
        }
    }
    line.trim_end().to_owned()
}
