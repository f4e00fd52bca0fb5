//! The soak's section of BENCHMARKS.md: the results table with its verdicts,
//! the notes on what went wrong, the per-minute lists, the CPU and log lines
//! and the generator's line, from the generator's JSON line and the facts the
//! run gathered around it.

use super::super::BenchkitError;
use super::super::cpu::CpuShare;
use super::super::figures::fixed;
use super::super::json_line::{soak_handled, soak_minutes, soak_raw};
use super::super::py::PyValue;
use super::lines::{foreign_summary, own_cpus};

/// Most RSS growth after the warm-up, in MiB/hour.
pub const MAX_GROWTH_MIB_H: f64 = 5.0;
/// Most rise of the last minute's p99 over the first minute's, in %.
pub const MAX_P99_RISE_PCT: f64 = 20.0;

/// The settings a soak ran with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoakSettings {
    /// Seconds of load.
    pub seconds: u64,
    /// Events per second, open loop.
    pub rate: u64,
    /// Orgs the events are spread over.
    pub orgs: u64,
    /// Most requests outstanding.
    pub in_flight: u64,
    /// Most seconds to wait for every event handled.
    pub drain_seconds: u64,
    /// First port tried for the worker's ops port.
    pub worker_port: u16,
    /// Seconds between VACUUMs of outbox when autovacuum is off (0: none).
    pub vacuum_every: u64,
    /// First port tried for the api.
    pub api_port: u16,
    /// The Redis server.
    pub redis_url: String,
}

/// What the run gathered besides the generator's line.
#[derive(Debug, Clone)]
pub struct SoakFacts {
    /// When the run started (UTC).
    pub started: String,
    /// The commit measured.
    pub commit: String,
    /// The machine.
    pub machine: String,
    /// The load average at the start.
    pub load: String,
    /// The CPUs online.
    pub cpus: usize,
    /// Redis's version.
    pub redis_version: String,
    /// PostgreSQL's version.
    pub pg_version: String,
    /// How outbox was vacuumed.
    pub vacuum_note: String,
    /// The database.
    pub db: String,
    /// Dead rows in outbox at the end.
    pub outbox_dead: String,
    /// Where the logs and samples are (`target/bench/soak`).
    pub dir: String,
    /// The `XENTRI_*` variables the api and worker ran with, space separated.
    pub overrides: String,
    /// The api's exit status after SIGTERM, or `killed`.
    pub api_exit: String,
    /// The worker's exit status after SIGTERM, or `killed`.
    pub worker_exit: String,
    /// What the CPU sampler measured over the run.
    pub cpu: CpuShare,
    /// The api log's summary lines (`benchkit apilog`), `e.g.` lines left out.
    pub apilog: String,
    /// One line per process on what it logged ([`super::lines::log_line`]).
    pub log_lines: Vec<String>,
    /// The events stream's consumer groups, `group: pending P, lag L; ...`.
    pub groups: String,
    /// The events stream's length, or `?`.
    pub stream_length: String,
    /// The Redis key prefix of the run.
    pub prefix: String,
    /// Keys under the prefix left after the clean-up.
    pub redis_left: u64,
}

/// The section and the verdicts that failed.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// The markdown, without a trailing newline.
    pub section: String,
    /// Its results table, without a trailing newline.
    pub table: String,
    /// The verdicts that did not pass (`api`, `worker`, `latency`, `lost`, `shutdown`).
    pub failed: Vec<&'static str>,
}

/// The generator's line, read as the report reads it.
struct Line {
    value: PyValue,
}

impl Line {
    fn at(&self, path: &str) -> Option<&PyValue> {
        let mut value = &self.value;
        for key in path.split('.') {
            value = value.get(key)?;
        }
        Some(value)
    }

    /// A field as Python's `str()`, empty for null or missing.
    fn text(&self, path: &str) -> String {
        match self.at(path) {
            None | Some(PyValue::Null) => String::new(),
            Some(value) => value.py_str(),
        }
    }

    /// A field as a number, 0 for anything else (as awk reads it).
    fn number(&self, path: &str) -> f64 {
        match self.at(path) {
            Some(PyValue::Int(n)) => *n as f64,
            Some(PyValue::Float(x)) => *x,
            Some(PyValue::Str(s)) => s.trim().parse().unwrap_or(0.0),
            _ => 0.0,
        }
    }

    /// A field with `digits` decimals.
    fn fixed(&self, path: &str, digits: usize) -> String {
        fixed(self.number(path), digits)
    }

    fn present(&self, path: &str) -> bool {
        !self.text(path).is_empty()
    }
}

/// A number as awk's `print` passes it on (`%.6g` unless whole), read back:
/// the thresholds the verdicts compare against.
fn awk_printed(x: f64) -> f64 {
    if x.fract() == 0.0 {
        return x;
    }
    format!("{x:.5e}").parse().unwrap_or(x)
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

/// The asked rate was held: within 1 %, everything sent, at most 1 % late.
fn rate_met(line: &Line, settings: &SoakSettings) -> bool {
    line.number("achieved_rate") >= awk_printed(settings.rate as f64 * 0.99)
        && line.text("unsent") == "0"
        && line.number("late") <= awk_printed(line.number("sent") / 100.0)
}

/// The event_counts group handled ≥ 99 % of the sent events while sending.
fn kept_up(line: &Line) -> bool {
    line.number("handled_while_sending") >= awk_printed(line.number("sent") * 0.99)
}

fn rss_row(line: &Line, name: &str) -> (String, bool) {
    let field = |key: &str| format!("{name}.{key}");
    let after = line.text(&field("samples_after_warmup"));
    let (mut fig, ok) = if line.present(&field("growth_mib_h")) {
        let mut fig = format!(
            "start {} MiB, after warm-up {} MiB, end {} MiB; growth **{} MiB/h** ± {} (least squares over {after} samples after the warm-up, ± its standard error; samples scatter {} MiB around the line); through each minute's lowest sample {} MiB/h",
            line.fixed(&field("start_mib"), 1),
            line.fixed(&field("warm_mib"), 1),
            line.fixed(&field("end_mib"), 1),
            line.fixed(&field("growth_mib_h"), 2),
            line.fixed(&field("growth_standard_error_mib_h"), 2),
            line.fixed(&field("scatter_mib"), 2),
            line.fixed(&field("floor_growth_mib_h"), 2),
        );
        if name == "api" {
            fig.push_str(&format!(
                "; api sockets open {}-{}",
                line.text("api_sockets.min"),
                line.text("api_sockets.max")
            ));
        }
        // The allocator's own counts (diagnostic): live bytes that grow are a
        // leak; resident bytes that grow over flat live bytes are kept for reuse.
        let live = format!("{name}_heap_allocated");
        let resident = format!("{name}_heap_resident");
        if line.present(&format!("{live}.growth_mib_h")) {
            fig.push_str(&format!(
                "; allocator: live {} → {} MiB, growth {} ± {} MiB/h; resident {} → {} MiB, growth {} MiB/h",
                line.fixed(&format!("{live}.warm_mib"), 1),
                line.fixed(&format!("{live}.end_mib"), 1),
                line.fixed(&format!("{live}.growth_mib_h"), 2),
                line.fixed(&format!("{live}.growth_standard_error_mib_h"), 2),
                line.fixed(&format!("{resident}.warm_mib"), 1),
                line.fixed(&format!("{resident}.end_mib"), 1),
                line.fixed(&format!("{resident}.growth_mib_h"), 2),
            ));
        }
        (fig, line.number(&field("growth_mib_h")) <= MAX_GROWTH_MIB_H)
    } else {
        let after = if after.is_empty() { "0".to_owned() } else { after };
        (format!("no growth figure ({after} samples after the warm-up)"), false)
    };
    if line.text(&field("gone")) == "True" {
        fig.push_str("; **the process was gone before the end**");
    }
    let row = format!("| {name} RSS | {fig} | ≤ {MAX_GROWTH_MIB_H} MiB/h after the warm-up | {} |", pass(ok));
    (row, ok)
}

fn latency_row(line: &Line) -> (String, bool) {
    let s = line.number("sending_seconds");
    // The last complete minute of sending (as the generator picks it).
    let last = (((s + 0.5) / 60.0).trunc() as i64 - 1).max(0);
    let first = format!(
        "first minute p50 {} / p95 {} / p99 {} ms",
        line.fixed("first_minute.p50_ms", 1),
        line.fixed("first_minute.p95_ms", 1),
        line.fixed("first_minute.p99_ms", 1)
    );
    let (fig, ok) = if line.present("first_minute.p99_ms") && !line.present("last_minute.p99_ms") {
        let fig = format!(
            "{first} ({} events handled); last (minute {last}): none of its events handled by the end of draining",
            line.text("first_minute.events")
        );
        (fig, false)
    } else if line.present("first_minute.p99_ms") {
        let (f99, l99) = (line.number("first_minute.p99_ms"), line.number("last_minute.p99_ms"));
        let rise = if f99 > 0.0 { 100.0 * (l99 - f99) / f99 } else { 0.0 };
        let fig = format!(
            "{first} ({} events); last (minute {last}) p50 {} / p95 {} / p99 {} ms ({} events); p99 {rise:+.1} %",
            line.text("first_minute.events"),
            line.fixed("last_minute.p50_ms", 1),
            line.fixed("last_minute.p95_ms", 1),
            line.fixed("last_minute.p99_ms", 1),
            line.text("last_minute.events"),
        );
        (fig, l99 <= awk_printed(f99 * (1.0 + MAX_P99_RISE_PCT / 100.0)))
    } else {
        ("no latencies".to_owned(), false)
    };
    let row = format!(
        "| latency: api send → event_counts handler | {fig} | last-minute p99 ≤ first-minute p99 + {MAX_P99_RISE_PCT} % | {} |",
        pass(ok)
    );
    (row, ok)
}

/// The results table (no trailing newline) and the verdicts that failed.
fn table(line: &Line, settings: &SoakSettings, facts: &SoakFacts) -> (String, Vec<&'static str>) {
    let mut failed = Vec::new();
    let mut rows = vec!["| scenario | figure | target | verdict |".to_owned(), "|---|---|---|---|".to_owned()];
    for name in ["api", "worker"] {
        let (row, ok) = rss_row(line, name);
        rows.push(row);
        if !ok {
            failed.push(name);
        }
    }
    let (row, latency_ok) = latency_row(line);
    rows.push(row);

    let lost = line.text("lost");
    let lost_ok = lost == "0";
    rows.push(format!(
        "| completeness | scheduled {}, sent {} ({} unsent when the time was up): {} × 201, {} other statuses, {} unanswered, {} late (> {} ms behind schedule); {} handled, **{lost} lost**; outbox {} rows after {} s of draining | lost = 0 (201 without an event_counts record) | {} |",
        line.text("scheduled"),
        line.text("sent"),
        line.text("unsent"),
        line.text("created"),
        line.text("non_201"),
        line.text("errors"),
        line.text("late"),
        line.text("late_after_ms"),
        line.text("handled"),
        line.text("outbox_left"),
        line.fixed("drain_waited_seconds", 1),
        pass(lost_ok),
    ));
    rows.push(format!(
        "| rate sustained: posting | {} events/s of {} asked (the schedule took {} s of {}); 201 answers p50 {} ms, p99 {} ms | {} events/s, all sent, ≤ 1 % late | {} |",
        line.fixed("achieved_rate", 1),
        settings.rate,
        line.fixed("sending_seconds", 1),
        settings.seconds,
        line.fixed("response_p50_ms", 1),
        line.fixed("response_p99_ms", 1),
        settings.rate,
        met(rate_met(line, settings)),
    ));
    rows.push(format!(
        "| rate sustained: event_counts handling | {} of {} sent events handled while sending: {} events/s | ≥ 99 % of the sent handled while sending | {} |",
        line.text("handled_while_sending"),
        line.text("sent"),
        line.fixed("handled_rate_while_sending", 1),
        met(kept_up(line)),
    ));
    let shutdown_ok = facts.api_exit == "0" && facts.worker_exit == "0";
    rows.push(format!(
        "| shutdown: SIGTERM | api exit {}, worker exit {} | both exit 0 | {} |",
        facts.api_exit,
        facts.worker_exit,
        pass(shutdown_ok)
    ));
    for (name, ok) in [("latency", latency_ok), ("lost", lost_ok), ("shutdown", shutdown_ok)] {
        if !ok {
            failed.push(name);
        }
    }
    (rows.join("\n"), failed)
}

fn notes(line: &Line, facts: &SoakFacts) -> Vec<String> {
    let mut notes = Vec::new();
    if line.text("non_201") != "0" {
        notes.push(format!("- **answers other than 201: {}**", line.text("statuses")));
    }
    if line.text("errors") != "0" {
        notes.push(format!("- **{} requests unanswered; first: {}**", line.text("errors"), line.text("first_error")));
    }
    if line.text("lost") != "0" {
        let groups = if facts.groups.is_empty() { "?" } else { facts.groups.as_str() };
        notes.push(format!(
            "- **{} events answered 201 had no event_counts record after {} s of draining**; then: {} rows in outbox; stream events:work {} entries long, consumer groups {groups} (lag: entries not yet delivered to the group; pending: delivered, not acknowledged). The latency figures cover the events handled by then only",
            line.text("lost"),
            line.fixed("drain_waited_seconds", 0),
            line.text("outbox_left"),
            facts.stream_length,
        ));
    }
    if line.text("stored") != line.text("created") {
        notes.push(format!(
            "- {} events stored, {} answered 201 (a request that timed out may still have committed); {} stored events without an event_counts record",
            line.text("stored"),
            line.text("created"),
            line.text("stored_unhandled"),
        ));
    }
    if facts.redis_left != 0 {
        notes.push(format!("- {} keys under {} left in Redis after the clean-up", facts.redis_left, facts.prefix));
    }
    notes
}

/// The section for the generator's JSON `raw` line.
pub fn render(raw: &str, settings: &SoakSettings, facts: &SoakFacts) -> Result<SoakReport, BenchkitError> {
    let line = Line { value: PyValue::parse(raw, "the soak line")? };
    let (table, failed) = table(&line, settings, facts);
    let rate_note = if rate_met(&line, settings) {
        String::new()
    } else {
        format!(
            "\n**The asked rate was not sustained**: {} events/s on average, {} of {} requests not sent when the {} s were up, {} of the {} sent more than {} ms behind schedule ({} waited for one of the {} in-flight slots; largest lag {} ms). The figures above are for the rate achieved.\n",
            line.fixed("achieved_rate", 1),
            line.text("unsent"),
            line.text("scheduled"),
            settings.seconds,
            line.text("late"),
            line.text("sent"),
            line.text("late_after_ms"),
            line.text("waited_for_slot"),
            settings.in_flight,
            line.fixed("max_lag_ms", 0),
        )
    };
    let notes = notes(&line, facts);
    let notes = if notes.is_empty() { String::new() } else { format!("\nNotes:\n\n{}\n", notes.join("\n")) };
    let overrides = if facts.overrides.is_empty() {
        String::new()
    } else {
        format!(", environment overrides: {}", facts.overrides)
    };
    let section = format!(
        "## {started} — {commit} — worker soak

- machine: {machine}; load average at start {load}
- Redis {redis_version} ({redis_url}); PostgreSQL {pg_version} ({vacuum_note}), database {db} created and migrated for the run; {outbox_dead} dead rows in outbox at the end
- processes: target/release/api and target/release/worker, config/default.toml (default log level, logs in {dir}/){overrides}; load generator tests/examples/soak.rs (release)
- load: open loop, {rate} events/s for {seconds} s, ~500-byte events, one Idempotency-Key each, {orgs} orgs in rotation, at most {in_flight} requests in flight
- latency: send (time in the payload) → `processed_at` of the event's `event_counts` record (the handler's transaction start; commit follows); RSS (VmRSS) every {rss_every} s, warm-up {warmup} s

{table}
{rate_note}
Latency per minute of sending (p50/p95/p99 ms, events sent in that minute and handled): {minutes}. Events handled per minute (by `processed_at`): {handled}. Over the whole run: p50 {p50}, p95 {p95}, p99 {p99}, max {max} ms.

{foreign}

CPU during the run, in CPUs of {cpus} (sampled every 0.5 s): {own}; machine idle {idle} %.

What the processes logged:

{apilog}
{log_lines}
{notes}
Raw line (per-minute lists omitted; RSS samples in {dir}/rss.tsv):

```
{raw_line}
```",
        started = facts.started,
        commit = facts.commit,
        machine = facts.machine,
        load = facts.load,
        redis_version = facts.redis_version,
        redis_url = settings.redis_url,
        pg_version = facts.pg_version,
        vacuum_note = facts.vacuum_note,
        db = facts.db,
        outbox_dead = facts.outbox_dead,
        dir = facts.dir,
        rate = settings.rate,
        seconds = settings.seconds,
        orgs = settings.orgs,
        in_flight = settings.in_flight,
        rss_every = line.text("rss_every_seconds"),
        warmup = line.fixed("warmup_seconds", 0),
        minutes = soak_minutes(raw)?,
        handled = soak_handled(raw)?,
        p50 = line.fixed("overall.p50_ms", 1),
        p95 = line.fixed("overall.p95_ms", 1),
        p99 = line.fixed("overall.p99_ms", 1),
        max = line.fixed("overall.max_ms", 0),
        foreign = foreign_summary("soak", &facts.cpu),
        cpus = facts.cpus,
        own = own_cpus(&facts.cpu),
        idle = facts.cpu.idle_text(),
        apilog = facts.apilog,
        log_lines = facts.log_lines.join("\n"),
        raw_line = soak_raw(raw)?,
    );
    Ok(SoakReport { section, table, failed })
}

#[cfg(test)]
mod tests;
