//! `benchkit outage [DRILL...]` (`./scripts/bench outage`): the recovery
//! drills of issue 14 in their full form with the release binaries, driven
//! by `tests/examples/outage.rs` (the same drills as `tests/outage.rs`),
//! each on a private PostgreSQL cluster and Redis server of its own; the
//! section's table is [`super::outage_report`]'s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::child::{log, output};
use super::outage_report::{failed_checks, read_drills, report};
use super::teed::run_teed;
use super::{BenchkitError, record, release_binary};

/// The drills the driver knows, in the order it runs them.
pub const DRILLS: [&str; 5] = ["postgres", "redis", "empty", "api", "spike"];
/// Where the drills' JSON lines and log go.
const DIR: &str = "target/bench/outage";
/// The most the drills may take.
const LIMIT: Duration = Duration::from_secs(1800);

/// What an outage section says besides the drills' table.
#[derive(Debug, Clone)]
pub struct OutageFacts {
    /// When the run started (UTC).
    pub started: String,
    /// The commit measured.
    pub commit: String,
    /// The machine.
    pub machine: String,
    /// The load average at the start.
    pub load: String,
    /// The version of the PostgreSQL the drills' clusters run.
    pub pg_version: String,
    /// The version of the Redis the drills' servers run.
    pub redis_version: String,
}

/// The section around the drills' `table` ([`report`]) with `failed` checks
/// that did not hold.
pub fn render(facts: &OutageFacts, table: &str, failed: usize) -> String {
    format!(
        "## {started} — {commit} — outage drills

- machine: {machine}; load average at start {load}
- each drill on a private PostgreSQL {pg} cluster (initdb per drill, max_connections 200, fsync off) and a private Redis {redis} server (no persistence; AOF `appendfsync everysec` in the Redis drill, so a stopped server comes back with its streams)
- processes: target/release/api and target/release/worker with the test profile (config/test.toml: warn-level logs), `database.acquire_timeout_ms` 500 for the api in the PostgreSQL drill; drills and clients: tests/src/drills/ and tests/src/load.rs driven by tests/examples/outage.rs (release)
- load: 10 writers, each key posted again after a 503 (honouring `Retry-After`, at most 1 s), a 409 or a dropped connection until it is answered; 1,000 events/s in all for the PostgreSQL and Redis drills, as fast as answered in the others; outages of 10 s, the api dead for 5 s; spike: 10 → 200 clients (half writing, half reading `GET /api/v1/events?limit=50`) within 10 s, held 10 s, `api.max_concurrent_requests` 64, `/health` probed every 100 ms
- lost: events answered 201 and not stored; duplicates: events beyond one per Idempotency-Key; every drill also checks each group handled each event once (processed records, the `event_counts` projection, `worker audit`)

{table}

Checks that did not hold: {failed}. Each drill's checks, figures and the processes' last log lines are in {DIR}/drills.log; one JSON document per drill in {DIR}/drills.jsonl.",
        started = facts.started,
        commit = facts.commit,
        machine = facts.machine,
        load = facts.load,
        pg = facts.pg_version,
        redis = facts.redis_version,
        table = table.trim_end_matches('\n'),
    )
}

/// The newest PostgreSQL installed under /usr/lib/postgresql, by version.
fn newest_postgres() -> Option<PathBuf> {
    let version = |name: &str| -> Vec<u64> { name.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| Path::new("/usr/lib/postgresql").join(name).join("bin").is_dir())
        .max_by_key(|name| version(name))
        .map(|name| Path::new("/usr/lib/postgresql").join(name).join("bin/postgres"))
}

/// `15.20` from `postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`.
fn version_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let Some((_, rest)) = text.split_once(marker) else { return "" };
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    &rest[..end]
}

fn versions() -> (String, String) {
    let pg = newest_postgres()
        .and_then(|postgres| output("postgres --version", Command::new(postgres).arg("--version")).ok())
        .map(|text| version_after(&text, "(PostgreSQL) ").to_owned())
        .unwrap_or_default();
    let redis = output("redis-server --version", Command::new("redis-server").arg("--version"))
        .map(|text| version_after(&text, " v=").to_owned())
        .unwrap_or_default();
    (pg, redis)
}

/// Checks the drill names: each one of [`DRILLS`].
pub fn check_drills(drills: &[String]) -> Result<(), BenchkitError> {
    match drills.iter().find(|d| !DRILLS.contains(&d.as_str())) {
        Some(other) => Err(BenchkitError::Usage(format!(
            "no drill {other:?}; usage: benchkit outage [postgres] [redis] [empty] [api] [spike]"
        ))),
        None => Ok(()),
    }
}

/// Runs `drills` (none: all five), appends the section and prints it; fails
/// when a check did not hold.
pub fn run(drills: &[String]) -> Result<(), BenchkitError> {
    check_drills(drills)?;
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir).map_err(|source| BenchkitError::Write { path: DIR.to_owned(), source })?;
    let facts = record::RunFacts::now();
    let named = if drills.is_empty() { DRILLS.join(" ") } else { drills.join(" ") };
    log(format!("outage drills: {named} (figures in {DIR}/)"));
    let jsonl = dir.join("drills.jsonl");
    let out = std::fs::File::create(&jsonl)
        .map_err(|source| BenchkitError::Write { path: jsonl.display().to_string(), source })?;
    // E2E_PROFILE: the drills start target/release/{api,worker}.
    let mut driver = Command::new(release_binary("examples/outage")?);
    driver.env("E2E_PROFILE", "release").args(drills).stdout(out);
    let rc = run_teed("the outage drills", &mut driver, LIMIT, &dir.join("drills.log"))?;
    if std::fs::metadata(&jsonl).map_or(0, |m| m.len()) == 0 {
        return Err(BenchkitError::Failed(format!("the drills printed nothing (status {rc}), see {DIR}/drills.log")));
    }
    let (pg_version, redis_version) = versions();
    let parsed = read_drills(&jsonl)?;
    let failed = failed_checks(&parsed)?;
    let facts = OutageFacts {
        started: facts.started,
        commit: record::commit(),
        machine: record::machine(),
        load: facts.load,
        pg_version,
        redis_version,
    };
    let section = render(&facts, &report(&parsed)?, failed);
    record::append(&section)?;
    println!("\n{section}\n\n(appended to BENCHMARKS.md)");
    if rc != "0" {
        return Err(BenchkitError::Failed(format!("outage drills: {failed} checks did not hold (status {rc})")));
    }
    log("outage drills PASSED");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The section BENCHMARKS.md holds for the drill of 2026-11-30 18:42:26 UTC.
    const SECTION: &str = include_str!("fixtures/outage.md");

    #[test]
    fn a_real_section_reads_as_before() {
        let (_, rest) = SECTION.split_once("\n\n| drill").unwrap();
        let (table, _) = rest.split_once("\n\nChecks that did not hold").unwrap();
        let facts = OutageFacts {
            started: "2026-11-30 18:42:26 UTC".to_owned(),
            commit: "4d05917".to_owned(),
            machine: "Linux 6.18.44-fc-v657 x86_64, 2 CPUs, Intel(R) Xeon(R) Processor".to_owned(),
            load: "3.93 7.13 6.78".to_owned(),
            pg_version: "15.20".to_owned(),
            redis_version: "7.0.15".to_owned(),
        };
        assert_eq!(format!("{}\n", render(&facts, &format!("| drill{table}\n"), 0)), SECTION);
    }

    #[test]
    fn versions_are_read_from_the_programs_words() {
        assert_eq!(version_after("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n", "(PostgreSQL) "), "15.20");
        assert_eq!(version_after("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc", " v="), "7.0.15");
        assert_eq!(version_after("nothing", " v="), "");
    }

    #[test]
    fn only_known_drills_are_taken() {
        assert!(check_drills(&["empty".to_owned(), "api".to_owned()]).is_ok());
        assert!(matches!(check_drills(&["disk".to_owned()]), Err(BenchkitError::Usage(_))));
    }
}
