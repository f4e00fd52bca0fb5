//! `show <dlq> <id>`: one dead letter, every field, the payload pretty-printed.

use chrono::SecondsFormat;
use serde_json::{Map, Value, json};
use xentri_core::dlq::dlq_field;
use xentri_core::stream::field;

use crate::cli::ShowArgs;
use crate::context::Ctx;
use crate::error::{Completion, Error};
use crate::output::{out, out_json};
use crate::table;
use crate::time::format_age;
use xentri_core::stream_id::StreamId;

/// Refuses an id that is not a stream entry id.
pub fn check(args: &ShowArgs) -> Result<(), Error> {
    StreamId::parse(&args.id).map(|_| ()).map_err(|bad| Error::BadInput(bad.to_string()))
}

/// Runs `show`.
pub async fn run(ctx: &mut Ctx, args: &ShowArgs) -> Result<Completion, Error> {
    let dlq = ctx.dlq(&args.dlq).await?;
    let ids = [args.id.clone()];
    let Some(Some(entry)) = ctx.fetch(&dlq.key, &ids).await?.pop() else {
        return Err(Error::IdsNotFound { dlq: dlq.name, ids: ids.to_vec() });
    };
    let now = ctx.now;
    let payload = entry.get(field::PAYLOAD).and_then(|p| serde_json::from_str::<Value>(p).ok());
    if args.json {
        let mut document = entry.summary_json(now);
        let fields: Map<String, Value> =
            entry.entry.fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        if let Value::Object(map) = &mut document {
            map.insert("dlq".into(), json!(dlq.name));
            map.insert("payload".into(), payload.unwrap_or(Value::Null));
            map.insert("fields".into(), Value::Object(fields));
        }
        out_json(&document)?;
        return Ok(Completion::Done);
    }
    let text = |name: &str| entry.get(name).unwrap_or("-").to_owned();
    let mut summary = vec![
        vec!["entry".to_owned(), format!("{} in {}", entry.id(), dlq.name)],
        vec![
            "failed at".to_owned(),
            format!(
                "{} ({} ago)",
                entry.failed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                format_age(entry.age_secs(now))
            ),
        ],
        vec!["origin".to_owned(), format!("{} {}", text(dlq_field::STREAM), text(dlq_field::ID))],
        vec![
            "group".to_owned(),
            format!(
                "{} (consumer {}, {} attempts)",
                text(dlq_field::GROUP),
                text(dlq_field::CONSUMER),
                text(dlq_field::ATTEMPTS)
            ),
        ],
        vec!["error".to_owned(), text(dlq_field::ERROR)],
    ];
    if let Some(reason) = &entry.undecodable {
        summary.push(vec!["undecodable".to_owned(), format!("{reason}; bytes that are not UTF-8 show as U+FFFD")]);
    }
    let mut report = table::render(&["DEAD LETTER", ""], &summary);
    report.push('\n');
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (name, value) in &entry.entry.fields {
        // Multi-line values (the payload pretty-printed, stack traces in
        // errors) continue on the following rows.
        let shown = match (name.as_str(), &payload) {
            (field::PAYLOAD, Some(parsed)) => serde_json::to_string_pretty(parsed).unwrap_or_else(|_| value.clone()),
            _ => value.clone(),
        };
        for (i, line) in shown.split('\n').enumerate() {
            rows.push(vec![if i == 0 { name.clone() } else { String::new() }, line.trim_end().to_owned()]);
        }
    }
    report.push_str(&table::render(&["FIELD", "VALUE"], &rows));
    out(&report)?;
    Ok(Completion::Done)
}
