//! `benchkit sample OUT [OWN_PID...]`: measures the CPU other work takes
//! while a scenario runs, until SIGTERM or SIGINT, then writes the line of
//! [`super::sampler::foreign_line`] to OUT.
//!
//! Every half second it reads utime + stime of every process in `/proc`. The
//! benchmark's own are the OWN_PIDs (listed apart as `NAME#n` when there are
//! several, n their place on the command line), wrk, pgbench, PostgreSQL
//! backends of the bench database (their process title names it) and
//! PostgreSQL's shared background processes; the sampler itself is left out.
//! Everything else (a cargo build, another database's sessions) competes
//! with the benchmark for the same cores. A process that starts and ends
//! between two samples is missed.
//!
//! Environment: `BENCH_SAMPLER_DB` names the bench database (default
//! `xentri_bench`); `BENCH_SAMPLER_OWN` adds process names (`comm`) that count
//! as the benchmark's, comma-separated.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use super::BenchkitError;
use super::sampler::{
    Measured, PostgresProcess, Sample, Snapshot, by_label, classify_postgres, foreign_line, idle_and_total, parse_stat,
};

/// How often `/proc` is read.
const EVERY: Duration = Duration::from_millis(500);
/// `AT_CLKTCK` in the auxiliary vector: the unit of `/proc/PID/stat` times.
const AT_CLKTCK: u64 = 17;

/// Who counts as the benchmark's own.
#[derive(Debug, Clone)]
pub struct Owners {
    /// The OWN_PIDs and their labels.
    pub pids: Vec<(u32, String)>,
    /// Process names that are the benchmark's.
    pub comms: HashSet<String>,
    /// The bench database.
    pub bench_db: String,
}

impl Owners {
    /// From the command line's pids and the environment.
    pub fn new(pids: &[u32]) -> Owners {
        let labelled = pids
            .iter()
            .enumerate()
            .map(|(n, pid)| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| super::py::strip(&c).to_owned())
                    .unwrap_or_else(|_| pid.to_string());
                (*pid, if pids.len() > 1 { format!("{comm}#{}", n + 1) } else { comm })
            })
            .collect();
        let mut comms: HashSet<String> = ["wrk", "pgbench"].into_iter().map(str::to_owned).collect();
        let extra = std::env::var("BENCH_SAMPLER_OWN").unwrap_or_default();
        comms.extend(extra.split(',').filter(|c| !c.is_empty()).map(str::to_owned));
        let bench_db = std::env::var("BENCH_SAMPLER_DB").ok().filter(|d| !d.is_empty());
        Owners { pids: labelled, comms, bench_db: bench_db.unwrap_or_else(|| "xentri_bench".to_owned()) }
    }
}

/// Every process in `/proc` but `me`, in directory order.
pub fn snapshot(owners: &Owners, me: u32) -> Snapshot {
    let mut found = Snapshot::default();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())).and_then(|n| n.parse().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(bytes) = std::fs::read(format!("/proc/{pid}/stat")) else { continue };
        let Some(stat) = parse_stat(&String::from_utf8_lossy(&bytes)) else { continue };
        let ticks = stat.ticks;
        let mine = |label: String| Sample { label, ticks, ours: true };
        if let Some((_, label)) = owners.pids.iter().find(|(p, _)| *p == pid) {
            found.processes.push((pid, mine(label.clone())));
            continue;
        }
        if owners.comms.contains(&stat.comm) {
            found.processes.push((pid, mine(stat.comm)));
            continue;
        }
        let mut label = stat.comm.clone();
        if stat.comm == "postgres" {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            let title = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            match classify_postgres(&title, &owners.bench_db) {
                PostgresProcess::Shared => {
                    found.processes.push((pid, mine("postgres(shared)".to_owned())));
                    continue;
                }
                PostgresProcess::Bench => {
                    found.processes.push((pid, mine(format!("postgres({})", owners.bench_db))));
                    continue;
                }
                PostgresProcess::Other(db) => label = format!("postgres({db})"),
            }
        }
        found.processes.push((pid, Sample { label, ticks, ours: false }));
    }
    found
}

/// Clock ticks per second of `/proc/PID/stat` (the kernel's `AT_CLKTCK`;
/// 100 where the auxiliary vector cannot be read).
pub fn ticks_per_second() -> i64 {
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else { return 100 };
    auxv.chunks_exact(16)
        .filter_map(|pair| {
            let key = u64::from_ne_bytes(pair.get(..8)?.try_into().ok()?);
            let value = u64::from_ne_bytes(pair.get(8..)?.try_into().ok()?);
            (key == AT_CLKTCK).then_some(value)
        })
        .next()
        .and_then(|v| i64::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(100)
}

/// The CPUs online (`/sys/devices/system/cpu/online`, as `nproc --all`
/// counts them), or the `cpuN` lines of `/proc/stat`.
pub fn cpus_online() -> usize {
    let from_sys = std::fs::read_to_string("/sys/devices/system/cpu/online").ok().and_then(|text| {
        super::py::strip(&text)
            .split(',')
            .map(|range| match range.split_once('-') {
                Some((a, b)) => Some(b.parse::<usize>().ok()?.checked_sub(a.parse::<usize>().ok()?)? + 1),
                None => range.parse::<usize>().ok().map(|_| 1),
            })
            .sum::<Option<usize>>()
    });
    from_sys.filter(|n| *n > 0).unwrap_or_else(|| {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        stat.lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count()
            .max(1)
    })
}

fn jiffies() -> Result<(i64, i64), BenchkitError> {
    let text = std::fs::read_to_string("/proc/stat")
        .map_err(|source| BenchkitError::Read { path: "/proc/stat".to_owned(), source })?;
    idle_and_total(&text).ok_or_else(|| BenchkitError::Shape("/proc/stat has no cpu line".to_owned()))
}

/// Samples until SIGTERM or SIGINT, then writes the line to `out`.
pub async fn run(out: &Path, pids: &[u32]) -> Result<(), BenchkitError> {
    let signals = |source| BenchkitError::Read { path: "signal handlers".to_owned(), source };
    let mut term = signal(SignalKind::terminate()).map_err(signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signals)?;
    let owners = Owners::new(pids);
    let me = std::process::id();
    let started = Instant::now();
    let first = snapshot(&owners, me);
    let (idle_start, total_start) = jiffies()?;
    let mut last = first.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => last.update(snapshot(&owners, me)),
            _ = term.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    // What ran since the last tick counts too.
    last.update(snapshot(&owners, me));
    let wall = started.elapsed().as_secs_f64();
    let (idle_end, total_end) = jiffies()?;
    let ticks = ticks_per_second();
    let measured = Measured {
        foreign: by_label(&first, &last, false, ticks),
        own: by_label(&first, &last, true, ticks),
        wall,
        cpus: cpus_online(),
        idle_jiffies: idle_end - idle_start,
        total_jiffies: total_end - total_start,
    };
    std::fs::write(out, foreign_line(&measured))
        .map_err(|source| BenchkitError::Write { path: out.display().to_string(), source })
}
