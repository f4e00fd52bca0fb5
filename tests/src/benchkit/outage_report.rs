//! The outage drills' JSON lines (`tests/examples/outage.rs`) as markdown:
//! one table row per drill (time to recovery, status-code counts, events
//! lost, duplicates, what failed), what the processes logged at WARN and
//! ERROR, then the spike's p99 per 1-second window (`outage-report`); and
//! the number of checks that did not hold (`outage-failed`).

use std::path::Path;

use super::BenchkitError;
use super::py::{PyValue, cut, fixed};

/// The drills of a `drills.jsonl` text: its lines that start with `{`.
pub fn parse_drills(text: &str, file: &str) -> Result<Vec<PyValue>, BenchkitError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.starts_with('{'))
        .map(|(n, line)| PyValue::parse(line, &format!("{file} line {}", n + 1)))
        .collect()
}

/// Reads and parses the drills of the file at `path`.
pub fn read_drills(path: &Path) -> Result<Vec<PyValue>, BenchkitError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| BenchkitError::Read { path: path.display().to_string(), source })?;
    parse_drills(&text, &path.display().to_string())
}

fn key<'a>(value: &'a PyValue, name: &str) -> Result<&'a PyValue, BenchkitError> {
    value.get(name).ok_or_else(|| BenchkitError::Shape(format!("a drill has no {name}")))
}

fn checks(drill: &PyValue) -> Result<&[PyValue], BenchkitError> {
    match key(drill, "checks")? {
        PyValue::List(items) => Ok(items),
        _ => Err(BenchkitError::Shape("a drill's checks are not a list".to_owned())),
    }
}

fn held(check: &PyValue) -> Result<bool, BenchkitError> {
    Ok(key(check, "held")?.truthy())
}

/// `f.get(name)` as an f-string prints it: `None` when missing.
fn shown(f: &PyValue, name: &str) -> String {
    f.get(name).map_or_else(|| "None".to_owned(), PyValue::py_str)
}

fn number(value: &PyValue) -> Result<f64, BenchkitError> {
    value.as_f64().ok_or_else(|| BenchkitError::Shape(format!("{} is not a number", value.py_repr())))
}

/// `1.25 s`, or `–` for a missing or null figure.
fn seconds(value: Option<&PyValue>) -> Result<String, BenchkitError> {
    match value {
        None | Some(PyValue::Null) => Ok("–".to_owned()),
        Some(v) => Ok(format!("{} s", fixed(number(v)?, 2))),
    }
}

/// `201 × 7200, 503 × 64 (slowest 0.120 s)` from an answers figure.
fn statuses(figure: Option<&PyValue>) -> Result<String, BenchkitError> {
    let Some(figure @ PyValue::Dict(_)) = figure else { return Ok("–".to_owned()) };
    let mut counts: Vec<(String, String)> = match figure.get("statuses") {
        Some(PyValue::Dict(items)) => items.iter().map(|(k, v)| (k.clone(), v.py_str())).collect(),
        None => Vec::new(),
        Some(_) => return Err(BenchkitError::Shape("statuses is not an object".to_owned())),
    };
    counts.sort();
    let text: Vec<String> = counts.iter().map(|(status, n)| format!("{status} × {n}")).collect();
    if text.is_empty() {
        return Ok("none".to_owned());
    }
    let slowest = figure.get("slowest_s").map_or(Ok(0.0), number)?;
    Ok(format!("{} (slowest {} s)", text.join(", "), fixed(slowest, 3)))
}

/// `text`, cut at 240 characters (the whole of it is in drills.log).
fn short(text: &str) -> String {
    if text.chars().count() <= 240 { text.to_owned() } else { format!("{} …", cut(text, 240)) }
}

fn recovery(name: &str, f: &PyValue) -> Result<String, BenchkitError> {
    let s = |n: &str| seconds(f.get(n));
    let v = |n: &str| shown(f, n);
    Ok(match name {
        "postgres stopped" => format!(
            "api {}, worker {} after PostgreSQL accepted connections again (outage {})",
            s("api_recovery_s")?,
            s("worker_recovery_s")?,
            s("outage_s")?
        ),
        "redis paused and stopped" => format!(
            "paused: backlog handled {} after the pause ended ({} events waiting in the outbox at its end); stopped: {} after Redis was back ({} waiting)",
            s("paused_recovery_s")?,
            v("paused_outbox_at_end"),
            s("stopped_recovery_s")?,
            v("stopped_outbox_at_end")
        ),
        "redis restarted empty" => format!(
            "groups recreated {} after Redis was back; `worker audit`: {} events of event_counts missing ({} relayed and unhandled at the kill, the rest in the worker's memory); `worker republish` put back {} (event_counts) and {} (cache_invalidation); all handled {} after it started",
            s("groups_recreated_s")?,
            v("missing_before_republish"),
            v("relayed_unhandled_at_kill"),
            v("republished_event_counts"),
            v("republished_cache_invalidation"),
            s("recovered_after_republish_s")?
        ),
        "api killed" => format!(
            "restarted api listening {} after start, first 201 {} after start; {} requests cut at the kill, {} of their keys had committed (replayed on retry)",
            s("api_start_s")?,
            s("api_recovery_s")?,
            v("in_flight_at_kill"),
            v("cut_keys_committed_before_the_kill")
        ),
        "spike" => {
            let empty = PyValue::Dict(Vec::new());
            let clients = f.get("clients").unwrap_or(&empty);
            format!(
                "{} → {} clients in {}, api.max_concurrent_requests {}; /health: {}",
                shown(clients, "from"),
                shown(clients, "to"),
                s("ramp_s")?,
                v("max_concurrent_requests"),
                statuses(f.get("health"))?
            )
        }
        _ => "–".to_owned(),
    })
}

fn row(drill: &PyValue) -> Result<String, BenchkitError> {
    let name = key(drill, "drill")?.py_str();
    let f = key(drill, "figures")?;
    let all = checks(drill)?;
    let mut failed = Vec::new();
    for check in all {
        if !held(check)? {
            failed.push(check);
        }
    }
    let mut verdict = format!("{} of {} held", all.len() - failed.len(), all.len());
    if !failed.is_empty() {
        let what: Result<Vec<String>, BenchkitError> = failed
            .iter()
            .map(|c| Ok(format!("{} ({})", key(c, "what")?.py_str(), short(&key(c, "found")?.py_str()))))
            .collect();
        verdict.push_str(&format!(": **FAILED** {}", what?.join("; ")));
    }
    let mut codes = statuses(f.get("answers"))?;
    if name == "postgres stopped" {
        codes.push_str(&format!("; during the outage {}", statuses(f.get("answers_during_outage"))?));
    }
    if name == "spike" {
        codes = format!("writes {}; reads {}", statuses(f.get("writes"))?, statuses(f.get("reads"))?);
    }
    let or_dash = |n: &str| f.get(n).map_or_else(|| "–".to_owned(), PyValue::py_str);
    Ok(format!(
        "| {name} | {} | {codes} | {} | {} | {verdict} |\n",
        recovery(&name, f)?,
        or_dash("events_lost"),
        or_dash("duplicates")
    ))
}

fn logged(drill: &PyValue) -> Result<String, BenchkitError> {
    let empty = PyValue::Dict(Vec::new());
    let figures = key(drill, "figures")?;
    let logged = figures.get("logged").unwrap_or(&empty);
    let mut parts = Vec::new();
    for process in ["api", "worker"] {
        let lines: &[(String, PyValue)] = match logged.get(process) {
            Some(PyValue::Dict(items)) => items,
            None => &[],
            Some(_) => return Err(BenchkitError::Shape(format!("logged.{process} is not an object"))),
        };
        let mut counts = Vec::with_capacity(lines.len());
        for (_, n) in lines {
            counts.push(number(n)?);
        }
        // Most lines first; ties keep the document's order (a stable sort).
        let mut order: Vec<usize> = (0..lines.len()).collect();
        order.sort_by(|a, b| counts[*b].total_cmp(&counts[*a]));
        let sorted: Vec<String> =
            order.iter().map(|&i| format!("`{}` × {}", lines[i].0, lines[i].1.py_str())).collect();
        let text = if sorted.is_empty() { "nothing".to_owned() } else { sorted.join(", ") };
        parts.push(format!("{process}: {text}"));
    }
    Ok(format!("- {}: {}\n", key(drill, "drill")?.py_str(), parts.join("; ")))
}

fn spike_windows(drill: &PyValue) -> Result<String, BenchkitError> {
    let windows = match key(drill, "figures")?.get("per_second") {
        Some(PyValue::List(items)) => items.as_slice(),
        None => &[],
        Some(_) => return Err(BenchkitError::Shape("per_second is not a list".to_owned())),
    };
    let mut items = Vec::new();
    for w in windows {
        let rejected = match key(w, "statuses")? {
            PyValue::Dict(_) => key(w, "statuses")?.get("503").map_or_else(|| "0".to_owned(), PyValue::py_str),
            _ => return Err(BenchkitError::Shape("a window's statuses are not an object".to_owned())),
        };
        items.push(format!(
            "{}: {}, {}, {rejected}",
            key(w, "second")?.py_str(),
            key(w, "requests")?.py_str(),
            key(w, "p99_ms")?.py_str()
        ));
    }
    Ok(format!("\nSpike, per 1-second window of sending (second: requests, p99 ms, 503s): {}.\n", items.join("; ")))
}

/// The markdown of `drills`, each line ending with a newline.
pub fn report(drills: &[PyValue]) -> Result<String, BenchkitError> {
    let mut out = String::from(
        "| drill | time to recovery | status codes | events lost | duplicates | checks |\n|---|---|---|---:|---:|---|\n",
    );
    for drill in drills {
        out.push_str(&row(drill)?);
    }
    out.push_str("\nWhat the api and the worker logged at WARN and ERROR (lines per message):\n\n");
    for drill in drills {
        out.push_str(&logged(drill)?);
    }
    for drill in drills {
        if key(drill, "drill")?.py_str() == "spike" {
            out.push_str(&spike_windows(drill)?);
        }
    }
    Ok(out)
}

/// How many checks of `drills` did not hold.
pub fn failed_checks(drills: &[PyValue]) -> Result<usize, BenchkitError> {
    let mut failed = 0;
    for drill in drills {
        for check in checks(drill)? {
            if !held(check)? {
                failed += 1;
            }
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests;
