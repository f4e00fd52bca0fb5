//! `benchkit dlq`: bulk replay with the release dlq-tool. Seeds dead letters
//! in `jobs:dlq` under a key prefix of the run's own ([`super::dlq_seed`]),
//! times one `dlq-tool replay jobs:dlq --all --batch N --json` back to
//! `jobs:work`, checks every entry arrived once and appends the figure to
//! BENCHMARKS.md.
//!
//! Environment: `BENCH_DLQ_ENTRIES` (100000), `BENCH_DLQ_BATCH` (500),
//! `REDIS_URL` (redis://127.0.0.1:6379/0). Run from the workspace root, after
//! `cargo build --release -p dlq-tool --bins`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::child::log;
use super::env::Env;
use super::figures::{fixed, verdict};
use super::redis_sync::Redis;
use super::worker::redis_url;
use super::{BenchkitError, dlq_seed, record, release_binary};

/// Where the replay's output and log go.
const DIR: &str = "target/bench";
/// The replay's target rate, entries/s.
const TARGET_PER_S: f64 = 20000.0;
/// Dead letters sent to Redis per round trip while seeding.
const SEED_CHUNK: u64 = 1000;

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct DlqRun {
    /// When the section was written.
    pub at: String,
    /// The short commit, `+dirty` when the tree differs.
    pub commit: String,
    /// `Linux ... x86_64, 2 CPUs, <model>`.
    pub machine: String,
    /// `--batch`.
    pub batch: u64,
    /// Dead letters seeded.
    pub entries: u64,
    /// The replay's wall time, seconds.
    pub seconds: f64,
    /// Entries on jobs:work after it.
    pub moved: u64,
    /// Entries left in jobs:dlq after it.
    pub left: u64,
}

/// The section, without a trailing newline.
pub fn section(run: &DlqRun) -> String {
    // The rate is taken from the seconds as printed.
    let seconds = fixed(run.seconds, 3);
    let rate = fixed(run.entries as f64 / seconds.parse::<f64>().unwrap_or(0.0), 0);
    let met = verdict(rate.parse::<f64>().unwrap_or(0.0) >= TARGET_PER_S);
    format!(
        "## {at} — dlq — {commit}

- machine: {machine}
- `dlq-tool replay jobs:dlq --all --batch {batch}` (release), {entries} dead letters, whole process timed (reading, filtering, group check, replay)

| scenario | entries | seconds | entries/s | target |
|---|---:|---:|---:|---|
| bulk replay | {entries} | {seconds} | {rate} | ≥ 20,000/s: {met} |

After the run: {moved} entries on jobs:work (each once: the target held none before), {left} left in jobs:dlq.",
        at = run.at,
        commit = run.commit,
        machine = run.machine,
        batch = run.batch,
        entries = run.entries,
        moved = run.moved,
        left = run.left,
    )
}

/// Seeds `n` dead letters in `{prefix}jobs:dlq`, a thousand per round trip.
fn seed(redis: &mut Redis, prefix: &str, n: u64) -> Result<(), BenchkitError> {
    let payload = dlq_seed::payload();
    let key = format!("{prefix}jobs:dlq");
    for start in (0..n).step_by(SEED_CHUNK as usize) {
        let mut pipe = redis::pipe();
        for i in start..n.min(start + SEED_CHUNK) {
            let id = uuid::Uuid::new_v4().to_string();
            let org = uuid::Uuid::new_v4().to_string();
            pipe.cmd("XADD").arg(&key).arg("*").arg(dlq_seed::fields(i, &id, &org, &payload)).ignore();
        }
        redis.send_pipeline(&pipe)?;
    }
    Ok(())
}

/// Seeds, replays, checks and appends; fails (exit status 1) when the
/// replay fails or did not move every entry exactly once.
pub fn run(env: &Env) -> Result<(), BenchkitError> {
    let entries: u64 = env.positive("BENCH_DLQ_ENTRIES", 100_000)?;
    let batch: u64 = env.positive("BENCH_DLQ_BATCH", 500)?;
    let dlq_tool = release_binary("dlq-tool")?;
    let url = redis_url(env);
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let prefix = format!("bench-dlq-{since_epoch}-{}:", std::process::id());
    let (work, dlq) = (format!("{prefix}jobs:work"), format!("{prefix}jobs:dlq"));
    std::fs::create_dir_all(DIR).map_err(|source| BenchkitError::Write { path: DIR.to_owned(), source })?;
    let mut redis = Redis::open(&url)?;
    redis.query::<()>(redis::cmd("XGROUP").arg("CREATE").arg(&work).arg("jobs").arg("0").arg("MKSTREAM"))?;
    log(format!("seeding {entries} dead letters"));
    seed(&mut redis, &prefix, entries)?;
    let seeded = redis.xlen(&dlq)?;
    if seeded != entries {
        return Err(BenchkitError::Failed(format!("seeded {seeded} of {entries}")));
    }

    log("replaying");
    let (out, err) = (Path::new(DIR).join("dlq-replay.json"), Path::new(DIR).join("dlq-replay.log"));
    let create = |path: &Path| {
        std::fs::File::create(path).map_err(|source| BenchkitError::Write { path: path.display().to_string(), source })
    };
    let started = Instant::now();
    let status = Command::new(dlq_tool)
        .args(["replay", "jobs:dlq", "--all", "--batch", &batch.to_string(), "--json"])
        .env_remove("XENTRI_ENV")
        .env("XENTRI_REDIS__KEY_PREFIX", &prefix)
        .env("REDIS_URL", &url)
        .stdin(Stdio::null())
        .stdout(create(&out)?)
        .stderr(create(&err)?)
        .status()
        .map_err(|source| BenchkitError::Spawn { what: "dlq-tool".to_owned(), source })?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(BenchkitError::Failed(format!("dlq-tool replay failed: see {}", err.display())));
    }
    let moved = redis.xlen(&work)?;
    let left = redis.xlen(&dlq)?;
    let run = DlqRun {
        at: record::RunFacts::now().started,
        commit: record::commit(),
        machine: record::machine(),
        batch,
        entries,
        seconds,
        moved,
        left,
    };
    let section = section(&run);
    record::append(&section)?;
    print!("\n{section}\n\n(appended to BENCHMARKS.md)\n");
    redis.query::<()>(redis::cmd("DEL").arg(&work).arg(&dlq))?;
    if moved != entries || left != 0 {
        return Err(BenchkitError::Failed(format!("replay moved {moved}, left {left}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BENCHMARKS.md, 2026-11-26 14:57:42, af4a978+dirty.
    const SECTION: &str = include_str!("fixtures/dlq_section.md");

    #[test]
    fn a_real_section_reads_byte_for_byte() {
        let run = DlqRun {
            at: "2026-11-26 14:57:42 UTC".to_owned(),
            commit: "af4a978+dirty".to_owned(),
            machine: "Linux 6.18.44-fc-v657 x86_64, 2 CPUs, AMD EPYC".to_owned(),
            batch: 500,
            entries: 100000,
            seconds: 2.4911,
            moved: 100000,
            left: 0,
        };
        assert_eq!(section(&run), SECTION.trim_end_matches('\n'));
    }

    #[test]
    fn a_slow_replay_misses_the_target() {
        let run = DlqRun {
            at: String::new(),
            commit: String::new(),
            machine: String::new(),
            batch: 10,
            entries: 1000,
            seconds: 0.2,
            moved: 999,
            left: 1,
        };
        let text = section(&run);
        assert!(text.contains("| bulk replay | 1000 | 0.200 | 5000 | ≥ 20,000/s: missed |"), "{text}");
        assert!(
            text.ends_with("999 entries on jobs:work (each once: the target held none before), 1 left in jobs:dlq.")
        );
    }
}
