//! What every bench section opens with (when it ran, on which machine and
//! commit) and BENCHMARKS.md itself: its header, written once, and the
//! sections appended to it.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use super::BenchkitError;

/// The file the figures are appended to, at the workspace root.
pub const BENCHMARKS: &str = "BENCHMARKS.md";

/// The original stack's reference figures (their machine, not this one).
pub const API_REFERENCES: &str = "Reference figures of the original stack (same scenarios):

| stack | writes/s | writes p95 ms | reads/s | reads p95 ms |
|---|---:|---:|---:|---:|
| Fastify 5 + Prisma 7 + pg | 1,269 | 113 | 583 | 232 |
| Fastify 5 + plain pg | 2,721 | 54 | 1,165 | 110 |
| pgbench, single-row insert transactions under forced RLS | 5,971 | – | – | – |";

/// How the worker's figures are produced (the header's second part).
pub const WORKER_HOW: &str = "`./scripts/bench worker` (sections marked \"worker\") runs the release driver
`tests/examples/stream_bench.rs` (`cargo build --release -p xentri-e2e
--example stream_bench`), one process per scenario, against the local Redis and
a fresh, migrated database `xentri_wbench`; each scenario prints one JSON line:

- **raw**: a minimal `XREADGROUP COUNT 100` + `XACK` loop, one consumer,
  draining 200,000 pre-filled entries: the limit Redis and one connection set;
- **runtime**: the worker runtime in one process, default settings, a no-op
  handler, draining the same backlog; targets ≥ 60 % of raw and ≥ 81,750
  msgs/s (5× BullMQ 5's 16,350 jobs/s);
- **relay**: the outbox relay publishing a 100,000-row outbox backlog; targets
  ≥ 20,000 events/s and every row published;
- **latency**: events posted to the api (running inside the driver, with the
  worker) at a steady 1,000/s for 20 s, each timed from its `occurred_at`
  (taken just before the api's transaction) to its handler's start;
  targets p95 ≤ 20 ms and every accepted event handled. `outbox` is vacuumed
  before it: the relay scenario leaves its backlog there as dead rows.

The rates leave set-up (pre-filling Redis, seeding the outbox) out. The driver,
Redis and PostgreSQL share the machine's cores; the CPU line of each section
says how they split them. Reference figures: BullMQ 5 (Node.js, Redis), 100,000
no-op jobs at concurrency 50: 16,350 jobs/s; a Python `XREADGROUP COUNT 100` +
`XACK` loop with one consumer: 116,000 entries/s.";

const HOW: &str = r#"# Benchmarks

Figures from `./scripts/bench api` and `./scripts/bench worker`, newest last;
each run appends a section.

How they are produced: on one machine, against 127.0.0.1, the release api
(`cargo build --release -p api --bins`, default settings, log level `info`
writing one JSON line per request to a file) over a fresh database
`xentri_bench`, driven by wrk (`scripts/bench.d/*.lua`) with 100 connections,
2 threads, 30 s per scenario:

- **a) writes**: `POST /api/v1/events`, ~500-byte body, a new `Idempotency-Key`
  per request, tokens of 100 orgs in rotation;
- **b) reads**: `GET /api/v1/events?limit=50` over at least 100,000 events in
  the same 100 orgs (topped up with SQL after the writes, then `VACUUM ANALYZE`);
- **pgbench**: the write route's statement, one append per transaction
  (`scripts/bench.d/append.sql`: one `append_events` call with one item, `-M prepared`), at
  the same concurrency where `max_connections` allows, with the api stopped:
  what PostgreSQL alone does one append at a time. The api writes appends that
  wait together in one transaction (group commit), so it can exceed this;
  then again with as many clients as the api's pool has connections, for context;
- **calibration**: pgbench running single-row insert transactions under
  forced RLS (`scripts/bench.d/calibrate.sql`), the kind of run the reference
  figures quote for their machine (5,971/s). Its ratio scales the original
  stack's figures to this machine, for the 3× (writes) and 5× (reads)
  comparison; the figures as quoted are printed beside.

wrk, the api and PostgreSQL share the machine's cores. Latencies are
client-side (wrk); "in-api latency" is what the api logged for the same
requests (`benchkit apilog`, tests/src/benchkit/). Targets: writes p95 ≤ 25 ms and ≥ 60 %
of pgbench's rate; reads p95 ≤ 15 ms; no non-2xx answer.
"#;

/// The header of a new BENCHMARKS.md.
pub fn header() -> String {
    format!("{HOW}\n{API_REFERENCES}\n\n{WORKER_HOW}\n")
}

/// When a run started and how loaded the machine was then.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// `2026-11-30 18:25:06 UTC`.
    pub started: String,
    /// The first three fields of /proc/loadavg.
    pub load: String,
}

impl RunFacts {
    /// Taken now.
    pub fn now() -> RunFacts {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        RunFacts {
            started: chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            load: load.split(' ').take(3).collect::<Vec<_>>().join(" "),
        }
    }
}

/// `Linux 6.1.0 x86_64, 2 CPUs, <model name>`.
pub fn machine() -> String {
    let uname = Command::new("uname")
        .arg("-srm")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.trim_start().strip_prefix(':')))
        .map_or("", str::trim);
    format!("{uname}, {} CPUs, {model}", super::proc_sampler::cpus_online())
}

/// The short commit the working tree is at, `+dirty` when anything but
/// BENCHMARKS.md differs from it (untracked files count).
pub fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else { return "unknown".to_owned() };
    match git(&["status", "--porcelain", "--", ".", ":(exclude)BENCHMARKS.md"]) {
        Some(changes) if !changes.is_empty() => format!("{head}+dirty"),
        _ => head,
    }
}

/// Appends `section` to BENCHMARKS.md (after a blank line), writing the
/// header first when the file does not exist yet.
pub fn append(section: &str) -> Result<(), BenchkitError> {
    let path = Path::new(BENCHMARKS);
    let write = |source| BenchkitError::Write { path: BENCHMARKS.to_owned(), source };
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(write)?;
    if new {
        file.write_all(header().as_bytes()).map_err(write)?;
    }
    file.write_all(format!("\n{}\n", section.trim_end_matches('\n')).as_bytes()).map_err(write)
}

/// A whole-number setting of config/default.toml: `key` in `[section]`.
pub fn default_setting(section: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("config/default.toml").ok()?;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside
            && let Some((name, value)) = line.split_once('=')
            && name.trim() == key
        {
            let value = value.split('#').next().unwrap_or("").trim();
            return value.parse().ok();
        }
    }
    None
}
