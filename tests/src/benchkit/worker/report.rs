//! The worker section of BENCHMARKS.md: the facts of the run, the results
//! table with its targets, the runtime's summary line, the CPU lines, notes
//! on anything odd and the drivers' raw lines.

use super::outcome::Outcome;
use crate::benchkit::cpu_summary::foreign_summary;
use crate::benchkit::figures::{fixed, percent_of, ratio, verdict};

/// The runtime's target against the raw loop, in %.
const TARGET_RUNTIME_PCT_OF_RAW: f64 = 60.0;
/// BullMQ 5's no-op jobs/s (its own run), and how many times that the
/// runtime is meant to reach.
const BULLMQ_PER_S: u64 = 16350;
const BULLMQ_FACTOR: u64 = 5;
const TARGET_RUNTIME_PER_S: u64 = BULLMQ_PER_S * BULLMQ_FACTOR;
/// The relay's target rate, events/s.
const TARGET_RELAY_PER_S: u64 = 20000;
/// The latency scenario's p95 target, ms.
const TARGET_LATENCY_P95_MS: f64 = 20.0;

/// The other stacks' figures, printed after the section (not appended).
pub const WORKER_REFERENCES: &str = "Reference figures of other stacks (their own runs, not this machine):

| stack | scenario | figure |
|---|---|---:|
| BullMQ 5 (Node.js, Redis) | 100,000 no-op jobs, concurrency 50 | 16,350 jobs/s |
| Python, one consumer | `XREADGROUP COUNT 100` + `XACK` loop | 116,000 entries/s |

The runtime is meant to beat BullMQ at least 5×: ≥ 81,750 msgs/s.";

/// The sizes a run was asked for (`BENCH_WORKER_ENTRIES` and the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Entries raw and runtime drain.
    pub worker_entries: u64,
    /// Outbox rows the relay drains.
    pub relay_entries: u64,
    /// Events/s latency posts.
    pub latency_rate: u64,
    /// Seconds latency posts for.
    pub latency_seconds: u64,
}

/// Everything the section says.
#[derive(Debug, Clone)]
pub struct WorkerReport {
    /// `2026-11-26 17:14:45 UTC`.
    pub started: String,
    /// The short commit, `+dirty` when the tree differs.
    pub commit: String,
    /// `Linux ... x86_64, 2 CPUs, <model>`.
    pub machine: String,
    /// The load average at the start.
    pub load: String,
    /// The CPUs the CPU lines are in.
    pub cpus: usize,
    /// The Redis server's version and URL.
    pub redis_version: String,
    /// The Redis URL.
    pub redis_url: String,
    /// PostgreSQL's version (first word of `server_version`).
    pub pg_version: String,
    /// `SHOW autovacuum`.
    pub autovacuum: String,
    /// The bench database.
    pub db: String,
    /// Dead rows in outbox before latency's VACUUM.
    pub dead_before: String,
    /// Dead rows in outbox after latency (`None`: unknown).
    pub dead_after: Option<String>,
    /// config/default.toml's worker read_count, block_ms and relay batch_size.
    pub read_count: String,
    /// See `read_count`.
    pub block_ms: String,
    /// See `read_count`.
    pub batch_size: String,
    /// The sizes asked for.
    pub sizes: Sizes,
    /// The raw XREADGROUP + XACK loop.
    pub raw: Outcome,
    /// The worker runtime, no-op handler.
    pub runtime: Outcome,
    /// The relay draining an outbox backlog.
    pub relay: Outcome,
    /// api append → handler start.
    pub latency: Outcome,
}

impl WorkerReport {
    /// The scenarios, in the order they ran.
    pub fn scenarios(&self) -> [(&'static str, &Outcome); 4] {
        [("raw", &self.raw), ("runtime", &self.runtime), ("relay", &self.relay), ("latency", &self.latency)]
    }
}

fn no_result(outcome: &Outcome) -> String {
    format!("no result: {}", outcome.error.as_deref().unwrap_or("?"))
}

/// The runtime's rate in % of raw's, as printed (one decimal).
fn runtime_pct_of_raw(r: &WorkerReport) -> String {
    fixed(percent_of(r.runtime.number("per_second").unwrap_or(0.0), r.raw.number("per_second").unwrap_or(0.0)), 1)
}

fn bullmq_times(r: &WorkerReport) -> String {
    fixed(r.runtime.number("per_second").unwrap_or(0.0) / BULLMQ_PER_S as f64, 2)
}

/// The results table, without a trailing newline.
pub fn table(r: &WorkerReport) -> String {
    let (raw, runtime, relay, latency) = (&r.raw, &r.runtime, &r.relay, &r.latency);
    let n = |o: &Outcome, key: &str| o.number(key).unwrap_or(0.0);
    let mut rows = vec!["| scenario | figure | target | met? |".to_owned(), "|---|---|---|---|".to_owned()];

    let fig = if raw.has(&["per_second"]) {
        format!("{} entries/s ({} s)", fixed(n(raw, "per_second"), 0), fixed(n(raw, "seconds"), 2))
    } else {
        no_result(raw)
    };
    rows.push(format!(
        "| raw: `XREADGROUP COUNT 100` + `XACK` loop, {} entries | {fig} | the limit, for the ratio (Python's loop: 116,000/s) | – |",
        r.sizes.worker_entries
    ));

    let (fig, met) = if runtime.has(&["per_second"]) {
        let mut fig = format!("{} msgs/s ({} s)", fixed(n(runtime, "per_second"), 0), fixed(n(runtime, "seconds"), 2));
        let met = if raw.has(&["per_second"]) {
            let pct = runtime_pct_of_raw(r);
            fig.push_str(&format!("; {pct} % of raw"));
            verdict(pct.parse::<f64>().unwrap_or(0.0) >= TARGET_RUNTIME_PCT_OF_RAW)
        } else {
            fig.push_str("; raw missing");
            "?"
        };
        (fig, met)
    } else {
        (no_result(runtime), "missed")
    };
    rows.push(format!(
        "| runtime: worker runtime, no-op handler, {} entries | {fig} | ≥ {TARGET_RUNTIME_PCT_OF_RAW} % of raw | {met} |",
        r.sizes.worker_entries
    ));

    let (fig, met) = if runtime.has(&["per_second"]) {
        (
            format!("{}× BullMQ's {BULLMQ_PER_S} jobs/s", bullmq_times(r)),
            verdict(n(runtime, "per_second") >= TARGET_RUNTIME_PER_S as f64),
        )
    } else {
        ("no result".to_owned(), "missed")
    };
    rows.push(format!(
        "| runtime against BullMQ 5 | {fig} | ≥ {TARGET_RUNTIME_PER_S} msgs/s ({BULLMQ_FACTOR}×) | {met} |"
    ));

    let (fig, met) = if relay.has(&["per_second"]) {
        let published = relay.text("published");
        let entries = relay.text("entries").unwrap_or_default();
        (
            format!(
                "{} events/s ({} s); published {} of {entries}",
                fixed(n(relay, "per_second"), 0),
                fixed(n(relay, "seconds"), 2),
                published.as_deref().unwrap_or("?")
            ),
            format!(
                "rate {}; all published {}",
                verdict(n(relay, "per_second") >= TARGET_RELAY_PER_S as f64),
                verdict(published.as_deref() == Some(entries.as_str()))
            ),
        )
    } else {
        (no_result(relay), "missed".to_owned())
    };
    rows.push(format!(
        "| relay: {}-row outbox backlog | {fig} | ≥ {TARGET_RELAY_PER_S} events/s; published = entries | {met} |",
        r.sizes.relay_entries
    ));

    let (fig, met) = if latency.has(&["p95_ms"]) {
        (
            format!(
                "p50 {} ms, p95 {} ms, p99 {} ms",
                fixed(n(latency, "p50_ms"), 2),
                fixed(n(latency, "p95_ms"), 2),
                fixed(n(latency, "p99_ms"), 2)
            ),
            verdict(n(latency, "p95_ms") <= TARGET_LATENCY_P95_MS),
        )
    } else if latency.has(&[]) {
        (
            format!("no latencies: {} events handled", latency.text("handled").unwrap_or_else(|| "0".to_owned())),
            "missed",
        )
    } else {
        (no_result(latency), "missed")
    };
    rows.push(format!(
        "| latency: api append → handler start, {} events/s for {} s | {fig} | p95 ≤ {TARGET_LATENCY_P95_MS} ms | {met} |",
        r.sizes.latency_rate, r.sizes.latency_seconds
    ));

    let (fig, met) = if latency.has(&["entries", "handled", "failed_posts"]) {
        let text = |key: &str| latency.text(key).unwrap_or_default();
        (
            format!(
                "{} handled of {} posted, {} posts failed; achieved {} events/s",
                text("handled"),
                text("entries"),
                text("failed_posts"),
                fixed(n(latency, "achieved_rate"), 1)
            ),
            verdict(n(latency, "handled") == n(latency, "entries") - n(latency, "failed_posts")),
        )
    } else {
        ("no result".to_owned(), "missed")
    };
    rows.push(format!("| latency: completeness | {fig} | handled = posted − failed | {met} |"));
    rows.join("\n")
}

/// The runtime's summary line (empty without a runtime result).
pub fn runtime_line(r: &WorkerReport) -> String {
    if !r.runtime.has(&["per_second"]) {
        return String::new();
    }
    let mut line =
        format!("The runtime drained **{} msgs/s**", fixed(r.runtime.number("per_second").unwrap_or(0.0), 0));
    if r.raw.has(&["per_second"]) {
        line.push_str(&format!(
            ", **{} %** of the raw loop (target ≥ {TARGET_RUNTIME_PCT_OF_RAW} %)",
            runtime_pct_of_raw(r)
        ));
    }
    line.push_str(&format!(
        ", **{}×** BullMQ 5 (target ≥ {BULLMQ_FACTOR}×, {TARGET_RUNTIME_PER_S} msgs/s).",
        bullmq_times(r)
    ));
    line
}

/// The benchmark's own CPU during one scenario, in CPUs on average: the
/// driver's from its rusage, the other own processes' from the sampler.
pub fn own_cpu(o: &Outcome) -> String {
    let mut out = format!(
        "stream_bench {} ({} s of CPU in {} s)",
        fixed(ratio(o.driver_cpu, o.driver_wall), 2),
        fixed(o.driver_cpu, 1),
        fixed(o.driver_wall, 1)
    );
    let wall = o.cpu.wall;
    if wall > 0.0 && o.cpu.own != "-" {
        for part in o.cpu.own.split(',') {
            let Some((label, secs)) = part.strip_suffix('s').and_then(|p| p.rsplit_once(':')) else { continue };
            if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit() || b == b'.') || label == "stream_bench" {
                continue;
            }
            out.push_str(&format!(", {label} {}", fixed(secs.parse::<f64>().unwrap_or(0.0) / wall, 2)));
        }
    }
    format!("{out}; machine idle {} %", o.cpu.idle_text())
}

/// The notes: failures, what the drivers logged, a rate not reached, other
/// Redis clients; one `- ` line each, without a trailing newline.
pub fn notes(r: &WorkerReport) -> String {
    let mut lines = Vec::new();
    for (name, o) in r.scenarios() {
        if let Some(error) = &o.error {
            lines.push(format!("- **{name}: {error}.**"));
        }
        if let Some(leftover) = &o.leftover {
            lines.push(format!("- {name}: what the killed driver left in Redis: {leftover}"));
        }
        if let Some(stderr) = &o.stderr {
            lines.push(format!("- {name}: the driver logged {stderr}"));
        }
        if o.redis_clients > 0 {
            lines.push(format!(
                "- {name}: {} other Redis client(s) connected at the start (redis-server CPU below includes their work)",
                o.redis_clients
            ));
        }
    }
    if r.latency.has(&["achieved_rate"]) {
        let achieved = r.latency.number("achieved_rate").unwrap_or(0.0);
        if achieved < r.sizes.latency_rate as f64 * 0.95 {
            lines.push(format!(
                "- **latency: the posts reached {} events/s, short of the {} asked for.**",
                fixed(achieved, 1),
                r.sizes.latency_rate
            ));
        }
    }
    if r.relay.has(&["published"]) {
        let published = r.relay.text("published").unwrap_or_default();
        let entries = r.relay.text("entries").unwrap_or_default();
        if published != entries {
            // `published` is the stream's XLEN when the outbox is empty.
            lines.push(format!(
                "- **relay: the stream held {published} entries when the outbox was empty, not {entries}.**"
            ));
        }
    }
    if r.autovacuum != "on" {
        lines.push(format!(
            "- autovacuum is off on this server: outbox (a queue: every row inserted, then deleted) keeps its dead rows \
             ({} after latency) until a manual VACUUM, and the relay's batch query slows down as they pile up.",
            r.dead_after.as_deref().unwrap_or("?")
        ));
    }
    lines.join("\n")
}

/// The whole section, from its `## ` line to the raw lines' closing fence,
/// without a trailing newline.
pub fn section(r: &WorkerReport) -> String {
    let scenarios = r.scenarios();
    let shares: Vec<(&str, &crate::benchkit::cpu::CpuShare)> = scenarios.iter().map(|(n, o)| (*n, &o.cpu)).collect();
    let cpu_lines: Vec<String> = scenarios.iter().map(|(name, o)| format!("- {name}: {}", own_cpu(o))).collect();
    let notes = notes(r);
    let notes = if notes.is_empty() { String::new() } else { format!("\nNotes:\n\n{notes}") };
    let raw_lines: Vec<String> = scenarios
        .iter()
        .map(|(name, o)| match &o.json {
            Some(line) => line.clone(),
            None => format!("{name}: {}", o.error.as_deref().unwrap_or("no line")),
        })
        .collect();
    let s = &r.sizes;
    format!(
        "## {started} — {commit} — worker

- machine: {machine}; load average at start {load}
- Redis {redis_version} ({redis_url}); PostgreSQL {pg} (autovacuum {autovacuum}), database {db} created and migrated for the run; outbox vacuumed before latency ({dead_before} dead rows, the relay's backlog), {dead_after} dead rows after it
- driver: stream_bench (tests/examples/stream_bench.rs, release), one process per scenario; config/default.toml (worker read_count {read_count}, block_ms {block_ms}; relay batch_size {batch_size}) with the driver's overrides
- sizes: raw and runtime {worker} entries; relay {relay} outbox rows; latency {rate} events/s for {seconds} s

{table}

{runtime_line}

{foreign}

The benchmark's own CPU in each scenario, in CPUs of {cpus}, averaged over the driver's whole run (set-up included; Redis and PostgreSQL as sampled every 0.5 s):

{cpu_lines}
{notes}

Raw lines:

```
{raw_lines}
```",
        started = r.started,
        commit = r.commit,
        machine = r.machine,
        load = r.load,
        redis_version = r.redis_version,
        redis_url = r.redis_url,
        pg = r.pg_version,
        autovacuum = r.autovacuum,
        db = r.db,
        dead_before = r.dead_before,
        dead_after = r.dead_after.as_deref().unwrap_or("?"),
        read_count = r.read_count,
        block_ms = r.block_ms,
        batch_size = r.batch_size,
        worker = s.worker_entries,
        relay = s.relay_entries,
        rate = s.latency_rate,
        seconds = s.latency_seconds,
        table = table(r),
        runtime_line = runtime_line(r),
        foreign = foreign_summary(&shares),
        cpus = r.cpus,
        cpu_lines = cpu_lines.join("\n"),
        raw_lines = raw_lines.join("\n"),
    )
}

/// What the run prints on stdout at its end: the section, the other stacks'
/// figures and where the outputs are.
pub fn printed(section: &str, dir: &str) -> String {
    format!(
        "\n{section}\n\n{WORKER_REFERENCES}\n\n(appended to BENCHMARKS.md; outputs, driver logs and sampler lines in {dir}/)\n"
    )
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
