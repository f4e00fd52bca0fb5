//! `replay`: dead letters (from a DLQ or an archive) back onto their stream,
//! without `dlq_*` fields and with `target_group` set to the group that failed
//! them. One [`REPLAY`] script run per entry, pipelined in batches: each entry
//! is on the target or still in the source, never neither, never both, and an
//! entry two operators replay at once is delivered once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use indicatif::ProgressBar;
use serde_json::json;
use xentri_core::scripts::REPLAY;
use xentri_core::stream::{Keys, field};
use xentri_core::stream_id::StreamId;

use crate::batch::{self, Item, Pace, StepResult};
use crate::cli::ReplayArgs;
use crate::context::Ctx;
use crate::entry::DeadEntry;
use crate::error::{Completion, Error};
use crate::filter::Filter;
use crate::output::{err_line, out, out_json, out_line, progress_bar};
use crate::table;

/// Where entries are replayed from, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceArg<'a> {
    /// A DLQ by name.
    Dlq(&'a str),
    /// An archive key, as `archives` lists it.
    Archive(&'a str),
}

/// The source, resolved.
struct Source {
    /// Its name in messages.
    name: String,
    /// Its Redis key.
    key: String,
}

/// One entry to replay.
struct Planned {
    /// Its id in the source.
    id: String,
    /// The stream it goes to (name, without the key prefix).
    target: String,
    /// The Redis key of `target`.
    target_key: String,
    /// `dlq_group`: the group it is replayed for.
    group: String,
    /// `dlq_stream`, when it has one.
    origin: Option<String>,
    /// The event type, for the dry-run listing.
    event_type: Option<String>,
}

impl Item for Planned {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Splits the positional arguments into the source and the ids.
fn split(args: &ReplayArgs) -> Result<(SourceArg<'_>, Vec<String>), Error> {
    match &args.from_archive {
        Some(key) => Ok((SourceArg::Archive(key), args.dlq.iter().chain(&args.ids).cloned().collect())),
        None => {
            let dlq = args.dlq.as_deref().ok_or_else(|| {
                Error::BadInput("name the DLQ: `dlq-tool replay <DLQ> <ID>...` or `dlq-tool replay <DLQ> --all`".into())
            })?;
            Ok((SourceArg::Dlq(dlq), args.ids.clone()))
        }
    }
}

/// Refuses what can be refused without Redis: no ids and no `--all`, both,
/// malformed ids, filters without `--all`, an empty `--to`.
pub fn check(args: &ReplayArgs) -> Result<(), Error> {
    let (_, ids) = split(args)?;
    match (ids.is_empty(), args.all) {
        (true, false) => return Err(Error::BadInput("name the ids to replay, or pass --all".into())),
        (false, true) => return Err(Error::BadInput("name ids or pass --all, not both".into())),
        _ => {}
    }
    if let Some(bad) = ids.iter().find_map(|id| StreamId::parse(id).err()) {
        return Err(Error::BadInput(bad.to_string()));
    }
    if args.filters.any() && !args.all {
        return Err(Error::BadInput(
            "filters (--type, --org, --since, --correlation-id, --error-match, --ids-from) select among --all; \
             leave them out when naming ids"
                .into(),
        ));
    }
    if args.to.as_deref().is_some_and(str::is_empty) {
        return Err(Error::BadInput("--to needs a stream name".into()));
    }
    Ok(())
}

/// Runs `replay`.
pub async fn run(ctx: &mut Ctx, args: &ReplayArgs) -> Result<Completion, Error> {
    check(args)?;
    let (source_arg, ids) = split(args)?;
    let filter = Filter::compile(&args.filters)?;
    let source = match source_arg {
        SourceArg::Dlq(name) => {
            let dlq = ctx.dlq(name).await?;
            Source { name: dlq.name, key: dlq.key }
        }
        SourceArg::Archive(key) => resolve_archive(ctx, key).await?,
    };
    if let Some(to) = &args.to {
        let key = ctx.keys.key(to);
        ctx.require_stream(to, &key).await?;
    }

    // Everything that is replayed is decided (and checked) before anything moves.
    let mut plan = Plan::default();
    let keys = ctx.keys.clone();
    let selection = if args.all { Some(&filter) } else { None };
    select(ctx, &source, &ids, selection, |entry| plan.add(&keys, args.to.as_deref(), entry)).await?;
    let Plan { planned, unplannable } = plan;
    if !args.force {
        check_groups(ctx, &planned).await?;
    }
    warn_other_target(args, &planned);

    if args.dry_run {
        print_dry_run(args, &source, &planned, &unplannable)?;
        return Ok(if unplannable.is_empty() { Completion::Done } else { Completion::PartlyDone });
    }

    // Bulk work shows progress; a few named ids do not need it.
    let bar = if args.all { progress_bar(planned.len(), "replaying") } else { ProgressBar::hidden() };
    let mut new_ids: HashMap<String, String> = HashMap::new();
    let pace = Pace { batch: args.batch as usize, rate: args.rate };
    let run = batch::run(
        &mut ctx.conn,
        &planned,
        pace,
        Some(&REPLAY),
        |pipe, item| {
            let mut invocation = REPLAY.prepare_invoke();
            // An empty target group: the script takes the entry's `dlq_group`.
            invocation.key(&source.key).key(&item.target_key).arg(&item.id).arg("");
            pipe.invoke_script(&invocation);
        },
        |item, result| {
            // New ids are printed per entry only for named ids, and in JSON.
            let wanted = !args.all || args.json;
            if let (true, StepResult::Moved(Some(new_id))) = (wanted, result) {
                new_ids.insert(item.id.clone(), new_id.clone());
            }
        },
        &bar,
    )
    .await;

    let mut failed: Vec<(String, String)> = unplannable;
    failed.extend(run.failed.iter().cloned());
    if args.json {
        let replayed: Vec<_> = planned
            .iter()
            .filter_map(|p| {
                new_ids
                    .get(&p.id)
                    .map(|new_id| json!({"id": p.id, "target": p.target, "target_group": p.group, "new_id": new_id}))
            })
            .collect();
        out_json(&json!({
            "source": source.name,
            "dry_run": false,
            "planned": planned.len(),
            "replayed": run.moved,
            "entries": replayed,
            "already_gone": run.gone,
            "failed": failed.iter().map(|(id, reason)| json!({"id": id, "reason": reason})).collect::<Vec<_>>(),
            "completed": run.aborted.is_none(),
        }))?;
    } else {
        if !args.all {
            for item in &planned {
                if let Some(new_id) = new_ids.get(&item.id) {
                    out_line(&format!(
                        "replayed {} to {} as {} (target_group {})",
                        item.id, item.target, new_id, item.group
                    ))?;
                }
            }
        }
        for id in &run.gone {
            out_line(&format!("already gone: {id} (replayed or removed by someone else meanwhile)"))?;
        }
        out_line(&format!(
            "replayed {} of {} entries from {} in {:.2}s ({:.0}/s); {} already gone, {} failed",
            run.moved,
            planned.len(),
            source.name,
            run.elapsed.as_secs_f64(),
            run.rate(),
            run.gone.len(),
            failed.len()
        ))?;
    }
    for (id, why) in &failed {
        err_line(&format!("failed: {id}: {why}"));
    }
    if let Some(error) = run.aborted {
        err_line(&format!(
            "stopped after {} of {} entries; re-run to replay the rest (replayed entries are not replayed twice)",
            run.moved + run.gone.len() + run.failed.len(),
            planned.len()
        ));
        return Err(error);
    }
    Ok(if failed.is_empty() { Completion::Done } else { Completion::PartlyDone })
}

/// Checks an archive key (`dlq:archive:{dlq}:{YYYY-MM-DD}` of a DLQ) and that it exists.
async fn resolve_archive(ctx: &mut Ctx, key: &str) -> Result<Source, Error> {
    let bad = |why: &str| Error::BadArchive { key: key.to_owned(), why: why.to_owned() };
    let (dlq, date) = key
        .strip_prefix("dlq:archive:")
        .and_then(|rest| rest.rsplit_once(':'))
        .ok_or_else(|| bad("is not an archive key (dlq:archive:{dlq}:{YYYY-MM-DD})"))?;
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| bad("is not an archive key: it does not end in a date (YYYY-MM-DD)"))?;
    ctx.dlq(dlq).await?;
    let full = ctx.keys.key(key);
    match ctx.key_type(&full).await?.as_str() {
        "stream" => Ok(Source { name: key.to_owned(), key: full }),
        "none" => Err(bad(&format!(
            "does not exist (expired, or never created; `dlq-tool archives {dlq}` lists the archives)"
        ))),
        kind => Err(Error::NotAStream { name: key.to_owned(), kind: kind.to_owned() }),
    }
}

/// Hands `keep` the entries to replay: the named ids (all must exist), or
/// every entry the filters select. Entries are not collected here: a bulk
/// replay keeps only what it needs of each ([`Planned`]).
async fn select(
    ctx: &mut Ctx,
    source: &Source,
    ids: &[String],
    filter: Option<&Filter>,
    mut keep: impl FnMut(DeadEntry),
) -> Result<(), Error> {
    if let Some(filter) = filter {
        return ctx
            .scan(&source.key, "-", "+", |entry| {
                if filter.matches(&entry) {
                    keep(entry);
                }
                true
            })
            .await;
    }
    let unique: Vec<String> = ids.iter().collect::<BTreeSet<_>>().into_iter().cloned().collect();
    let found = ctx.fetch(&source.key, &unique).await?;
    let missing: Vec<String> =
        unique.iter().zip(&found).filter(|(_, entry)| entry.is_none()).map(|(id, _)| id.clone()).collect();
    if !missing.is_empty() {
        return Err(Error::IdsNotFound { dlq: source.name.clone(), ids: missing });
    }
    found.into_iter().flatten().for_each(keep);
    Ok(())
}

/// Where each entry goes, and the entries that cannot be replayed (no origin
/// and no `--to`, no group) with why.
#[derive(Default)]
struct Plan {
    /// The entries to replay, in stream order.
    planned: Vec<Planned>,
    /// `(id, why)` of the entries that cannot be.
    unplannable: Vec<(String, String)>,
}

impl Plan {
    fn add(&mut self, keys: &Keys, to: Option<&str>, entry: DeadEntry) {
        let Some(target) = to.or(entry.origin()) else {
            self.unplannable.push((entry.id().to_owned(), "no dlq_stream to replay to; name one with --to".to_owned()));
            return;
        };
        let Some(group) = entry.group() else {
            self.unplannable.push((entry.id().to_owned(), "no dlq_group: no group to replay it for".to_owned()));
            return;
        };
        self.planned.push(Planned {
            id: entry.id().to_owned(),
            target: target.to_owned(),
            target_key: keys.key(target),
            group: group.to_owned(),
            origin: entry.origin().map(str::to_owned),
            event_type: entry.get(field::TYPE).map(str::to_owned),
        });
    }
}

/// Refuses to replay into a stream that lacks the group the entries are for:
/// nothing would ever process them (`target_group` makes every other group skip them).
async fn check_groups(ctx: &mut Ctx, planned: &[Planned]) -> Result<(), Error> {
    let mut wanted: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for item in planned {
        wanted.insert((&item.target, &item.group), &item.target_key);
    }
    let mut groups_of: HashMap<&str, Vec<String>> = HashMap::new();
    for ((target, group), key) in wanted {
        if !groups_of.contains_key(target) {
            let groups = ctx.groups(target, key).await?;
            groups_of.insert(target, groups);
        }
        let existing = groups_of.get(target).cloned().unwrap_or_default();
        if !existing.iter().any(|g| g == group) {
            return Err(Error::NoGroup { stream: target.to_owned(), group: group.to_owned(), existing });
        }
    }
    Ok(())
}

/// Warns (stderr) when `--to` sends entries somewhere other than where they came from.
fn warn_other_target(args: &ReplayArgs, planned: &[Planned]) {
    let Some(to) = &args.to else { return };
    let mut others: BTreeMap<&str, usize> = BTreeMap::new();
    for item in planned {
        if let Some(origin) = item.origin.as_deref().filter(|origin| origin != to) {
            *others.entry(origin).or_default() += 1;
        }
    }
    for (origin, count) in others {
        err_line(&format!("warning: replaying {count} entries into `{to}`, not their origin `{origin}`"));
    }
}

fn print_dry_run(
    args: &ReplayArgs,
    source: &Source,
    planned: &[Planned],
    unplannable: &[(String, String)],
) -> Result<(), Error> {
    if args.json {
        return out_json(&json!({
            "source": source.name,
            "dry_run": true,
            "planned": planned.len(),
            "entries": planned
                .iter()
                .map(|p| json!({"id": p.id, "target": p.target, "target_group": p.group, "type": p.event_type}))
                .collect::<Vec<_>>(),
            "failed": unplannable.iter().map(|(id, reason)| json!({"id": id, "reason": reason})).collect::<Vec<_>>(),
        }));
    }
    let rows: Vec<Vec<String>> = planned
        .iter()
        .map(|p| vec![p.id.clone(), p.target.clone(), p.group.clone(), p.event_type.clone().unwrap_or("-".into())])
        .collect();
    out_line(&format!("dry run: would replay {} entries from {}; nothing changed", planned.len(), source.name))?;
    if !rows.is_empty() {
        out(&table::render(&["ID", "TARGET", "TARGET GROUP", "TYPE"], &rows))?;
    }
    for (id, why) in unplannable {
        err_line(&format!("cannot replay: {id}: {why}"));
    }
    Ok(())
}
