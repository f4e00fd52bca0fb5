//! `benchkit burst` (`./scripts/bench api --burst`): whether the api's memory
//! follows its concurrency (bounded, given back) or grows. The release api
//! over a fresh database `xentri_burst`, written to by wrk in rounds of a
//! burst (500 connections, 10 s) and 20 s idle, then 10 s at 50
//! connections; its RSS after each step. A leak grows from round to round;
//! memory that follows concurrency peaks alike at every burst and comes back
//! down under the lighter load.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::child::{Bounded, log, run_bounded};
use super::env::Env;
use super::figures::fixed;
use super::stage::{Stage, stop_api};
use super::{BenchkitError, record};

/// The database the burst recreates.
const DB: &str = "xentri_burst";
/// Where wrk's outputs, the tokens and the api log go.
const DIR: &str = "target/bench/burst";
/// Each burst's peak within this share of the first's, in %.
pub const MAX_PEAK_RISE_PCT: f64 = 10.0;
/// Each light phase within this many MiB of the first light phase.
pub const MAX_LIGHT_RISE_MIB: f64 = 5.0;

/// The burst's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstSettings {
    /// Rounds of burst, idle and light load.
    pub rounds: u64,
    /// wrk connections in a burst.
    pub connections: u64,
    /// wrk connections in a light phase.
    pub light_connections: u64,
    /// wrk threads.
    pub threads: u64,
    /// First port tried for the api.
    pub port: u16,
}

impl BurstSettings {
    /// From `BENCH_BURST_ROUNDS` (3), `BENCH_BURST_CONNECTIONS` (500),
    /// `BENCH_BURST_LIGHT_CONNECTIONS` (50), `BENCH_THREADS` (2) and
    /// `BENCH_PORT` (18080).
    pub fn from_env(env: &Env) -> Result<BurstSettings, BenchkitError> {
        Ok(BurstSettings {
            rounds: env.positive("BENCH_BURST_ROUNDS", 3)?,
            connections: env.positive("BENCH_BURST_CONNECTIONS", 500)?,
            light_connections: env.positive("BENCH_BURST_LIGHT_CONNECTIONS", 50)?,
            threads: env.positive("BENCH_THREADS", 2)?,
            port: env.positive("BENCH_PORT", 18080)?,
        })
    }
}

/// One step of a round: its row and what it measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The api idle after its start, at this RSS (MiB, one decimal).
    Started(String),
    /// A burst: round, writes/s, RSS after it.
    Burst(u64, f64, String),
    /// 20 s idle after a burst, RSS after it.
    Idle(String),
    /// A light phase: writes/s, RSS after it.
    Light(f64, String),
}

/// An awk number: its leading numeric part, 0 for none.
fn awk_number(text: &str) -> f64 {
    text.trim().parse().unwrap_or(0.0)
}

/// Whether each burst peaks within [`MAX_PEAK_RISE_PCT`] of the first and
/// each light phase sits within [`MAX_LIGHT_RISE_MIB`] of the first.
pub fn bounded(steps: &[Step]) -> bool {
    let peaks: Vec<f64> =
        steps.iter().filter_map(|s| if let Step::Burst(_, _, r) = s { Some(awk_number(r)) } else { None }).collect();
    let lights: Vec<f64> =
        steps.iter().filter_map(|s| if let Step::Light(_, r) = s { Some(awk_number(r)) } else { None }).collect();
    let peak_bound = peaks.first().map(|p| p * (1.0 + MAX_PEAK_RISE_PCT / 100.0));
    let light_bound = lights.first().map(|l| l + MAX_LIGHT_RISE_MIB);
    peaks.iter().all(|p| peak_bound.is_none_or(|b| *p <= awk_printed(b)))
        && lights.iter().all(|l| light_bound.is_none_or(|b| *l <= awk_printed(b)))
}

/// A number as awk's `print` passes it on (`%.6g` unless whole), read back.
fn awk_printed(x: f64) -> f64 {
    if x.fract() == 0.0 { x } else { format!("{x:.5e}").parse().unwrap_or(x) }
}

/// The section for `steps`; `machine` is `uname -srm`.
pub fn render(
    started: &str,
    commit: &str,
    machine: &str,
    cpus: usize,
    settings: &BurstSettings,
    steps: &[Step],
) -> String {
    let rows: Vec<String> = steps
        .iter()
        .map(|step| match step {
            Step::Started(rss) => format!("| idle after start | – | {rss} |"),
            Step::Burst(n, rate, rss) => {
                format!("| burst {n}: 10 s at {} connections | {}/s | {rss} |", settings.connections, fixed(*rate, 0))
            }
            Step::Idle(rss) => format!("| then 20 s idle | – | {rss} |"),
            Step::Light(rate, rss) => {
                format!("| then 10 s at {} connections | {}/s | {rss} |", settings.light_connections, fixed(*rate, 0))
            }
        })
        .collect();
    format!(
        "## {started} — {commit} — api memory under bursts (`./scripts/bench api --burst`)

- machine: {machine}, {cpus} CPUs; release api, default settings, fresh database; wrk {threads} threads, `write.lua`

| step | writes | api RSS MiB |
|---|---:|---:|
{rows}

Every burst peaks within {MAX_PEAK_RISE_PCT} % of the first, and every light phase within {MAX_LIGHT_RISE_MIB} MiB of the first: **{verdict}** (memory that follows concurrency, bounded and given back; a leak would grow from round to round).",
        threads = settings.threads,
        rows = rows.join("\n"),
        verdict = if bounded(steps) { "PASS" } else { "FAIL" },
    )
}

/// The api's VmRSS in MiB with one decimal; empty when it cannot be read.
fn rss_mib(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or_else(String::new, |kib| fixed(kib / 1024.0, 1))
}

/// 10 s of writes by wrk at `connections`; the rate it reached.
fn wrk(
    name: &str,
    connections: u64,
    settings: &BurstSettings,
    port: u16,
    tokens: &Path,
    run_id: &str,
) -> Result<f64, BenchkitError> {
    let out = PathBuf::from(format!("{DIR}/burst-{name}.wrk.txt"));
    let file = std::fs::File::create(&out)
        .map_err(|source| BenchkitError::Write { path: out.display().to_string(), source })?;
    let copy = file.try_clone().map_err(|source| BenchkitError::Write { path: out.display().to_string(), source })?;
    let mut command = Command::new("wrk");
    command
        .env("BENCH_TOKENS", tokens)
        .env("BENCH_RUN_ID", format!("{run_id}-{name}"))
        .args(["-t", &settings.threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", "10s", "--timeout", "10s", "-s", "scripts/bench.d/write.lua"])
        .arg(format!("http://127.0.0.1:{port}/api/v1/events"))
        .stdout(file)
        .stderr(copy);
    let failed = || BenchkitError::Failed(format!("wrk failed, see {}", out.display()));
    match run_bounded("wrk", &mut command, Duration::from_secs(70), "-INT")? {
        Bounded::Finished(status) if status.success() => {}
        _ => return Err(failed()),
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(|rest| rest.trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect::<String>())
        .map_or(0.0, |n| awk_number(&n)))
}

fn uname() -> String {
    Command::new("uname")
        .arg("-srm")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Runs the burst rounds, appends the section and prints it; fails when the
/// memory grew from round to round.
pub fn run(env: &Env) -> Result<(), BenchkitError> {
    let settings = BurstSettings::from_env(env)?;
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir).map_err(|source| BenchkitError::Write { path: DIR.to_owned(), source })?;
    let tokens = dir.join("tokens.txt");
    let run_id = chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string();
    let facts = record::RunFacts::now();
    let stage = Stage::new(DB);
    stage.recreate(&dir.join("migrate.log"))?;
    stage.mint_tokens(&tokens)?;
    let (mut api, port) = stage.launch_api(settings.port, &dir.join("api.log"), &[])?;
    let mut steps = vec![Step::Started(rss_mib(api.pid()))];
    for n in 1..=settings.rounds {
        let rate = wrk(&format!("burst-{n}"), settings.connections, &settings, port, &tokens, &run_id)?;
        let peak = rss_mib(api.pid());
        log(format!("burst {n}: {} writes/s, api RSS {peak} MiB", fixed(rate, 0)));
        steps.push(Step::Burst(n, rate, peak));
        std::thread::sleep(Duration::from_secs(20));
        steps.push(Step::Idle(rss_mib(api.pid())));
        let rate = wrk(&format!("light-{n}"), settings.light_connections, &settings, port, &tokens, &run_id)?;
        let light = rss_mib(api.pid());
        log(format!("light {n}: {} writes/s, api RSS {light} MiB", fixed(rate, 0)));
        steps.push(Step::Light(rate, light));
    }
    stop_api(&mut api);
    let cpus = super::proc_sampler::cpus_online();
    let section = render(&facts.started, &record::commit(), &uname(), cpus, &settings, &steps);
    record::append(&section)?;
    println!("\n{section}\n\n(appended to BENCHMARKS.md; wrk outputs and the api log in {DIR}/)");
    if !bounded(&steps) {
        return Err(BenchkitError::Failed("burst: memory grew from round to round".to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The section BENCHMARKS.md holds for the burst run of 2026-11-30
    /// 01:47:33 UTC.
    const SECTION: &str = include_str!("fixtures/burst.md");

    fn settings() -> BurstSettings {
        BurstSettings { rounds: 3, connections: 500, light_connections: 50, threads: 2, port: 18080 }
    }

    fn steps() -> Vec<Step> {
        let mib = |s: &str| s.to_owned();
        vec![
            Step::Started(mib("20.4")),
            Step::Burst(1, 11635.2, mib("57.5")),
            Step::Idle(mib("66.2")),
            Step::Light(6984.9, mib("46.5")),
            Step::Burst(2, 10815.0, mib("63.1")),
            Step::Idle(mib("69.3")),
            Step::Light(7706.4, mib("48.0")),
            Step::Burst(3, 11638.0, mib("61.8")),
            Step::Idle(mib("61.8")),
            Step::Light(8089.0, mib("45.1")),
        ]
    }

    #[test]
    fn a_real_section_reads_as_before() {
        let section =
            render("2026-11-30 01:47:33 UTC", "25bfb73", "Linux 6.18.44-fc-v657 x86_64", 2, &settings(), &steps());
        assert_eq!(format!("{section}\n"), SECTION);
    }

    #[test]
    fn growth_from_round_to_round_fails() {
        let mut steps = steps();
        steps[4] = Step::Burst(2, 10815.0, "63.3".to_owned());
        assert!(!bounded(&steps), "63.3 > 57.5 × 1.1");
        steps[4] = Step::Burst(2, 10815.0, "63.2".to_owned());
        assert!(bounded(&steps));
        steps[6] = Step::Light(7706.4, "51.6".to_owned());
        assert!(!bounded(&steps), "51.6 > 46.5 + 5");
        assert!(render("s", "c", "m", 2, &settings(), &steps).contains("**FAIL**"));
    }
}
