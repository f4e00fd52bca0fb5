//! `benchkit domain` (`./scripts/bench domain`): the domain resources under
//! load with the release binaries. The measuring, the verdicts and the table
//! are `tests/examples/domain.rs`; this runs it (bounded, its stderr shown
//! and kept) and appends its table to BENCHMARKS.md in a section.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::child::log;
use super::env::Env;
use super::teed::run_teed;
use super::{BenchkitError, record, release_binary};

/// Where the driver's table, figures and log go.
const DIR: &str = "target/bench/domain";
/// The most the driver may take.
const LIMIT: Duration = Duration::from_secs(1800);

/// What a domain section says besides the driver's table.
#[derive(Debug, Clone)]
pub struct DomainFacts {
    /// When the run started (UTC).
    pub started: String,
    /// The commit measured.
    pub commit: String,
    /// The machine.
    pub machine: String,
    /// The load average at the start.
    pub load: String,
}

/// The section around the driver's `table` (its trailing newlines dropped).
pub fn render(facts: &DomainFacts, table: &str) -> String {
    format!(
        "## {} — {} — domain resources

- machine: {}; load average at start {}
- processes: target/release/worker and two target/release/api (one with `cache.enabled = false`, same database and Redis) with the test profile (config/test.toml: warn-level logs); driver tests/examples/domain.rs (release) on the same machine
- staleness: each change of an approved Soul (editing, `PUT`, review_pending, approved in turn), then `GET /api/v1/soul` on the cached api until it answers the change's version: time from the change's 200 to that answer; closed loop: one connection per client, back to back; open loop: latency from when each request was due (2 s warm-up not counted)

{}",
        facts.started,
        facts.commit,
        facts.machine,
        facts.load,
        table.trim_end_matches('\n')
    )
}

/// Runs the domain bench (`BENCH_DOMAIN_UPDATES`, `BENCH_DOMAIN_RATE`),
/// appends its section and prints it; fails when a target was missed.
pub fn run(env: &Env) -> Result<(), BenchkitError> {
    let updates = env.positive("BENCH_DOMAIN_UPDATES", 1000_u64)?.to_string();
    let rate = env.positive("BENCH_DOMAIN_RATE", 2000_u64)?.to_string();
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir).map_err(|source| BenchkitError::Write { path: DIR.to_owned(), source })?;
    let facts = record::RunFacts::now();
    log("domain: Soul staleness, cached reads (closed and open loop, cache on and off), lead imports");
    let table_path = dir.join("table.md");
    let table_file = std::fs::File::create(&table_path)
        .map_err(|source| BenchkitError::Write { path: table_path.display().to_string(), source })?;
    let mut driver = Command::new(release_binary("examples/domain")?);
    driver
        .env("E2E_PROFILE", "release")
        .args(["--updates", &updates, "--rate", &rate])
        .arg("--json")
        .arg(dir.join("domain.json"))
        .stdout(table_file);
    let rc = run_teed("the domain driver", &mut driver, LIMIT, &dir.join("domain.log"))?;
    let table = std::fs::read_to_string(&table_path).unwrap_or_default();
    if rc != "0" || table.is_empty() {
        return Err(BenchkitError::Failed(format!("the domain bench failed (status {rc}), see {DIR}/domain.log")));
    }
    let facts =
        DomainFacts { started: facts.started, commit: record::commit(), machine: record::machine(), load: facts.load };
    let section = render(&facts, &table);
    record::append(&section)?;
    println!("\n{section}\n\n(appended to BENCHMARKS.md; raw figures in {DIR}/domain.json)");
    if table.contains("| FAIL |") {
        return Err(BenchkitError::Failed("domain: a target was missed".to_owned()));
    }
    log("domain PASSED");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The section BENCHMARKS.md holds for the domain run of 2026-11-30
    /// 15:56:40 UTC, its hand-written note on the uncommitted change left out.
    const SECTION: &str = include_str!("fixtures/domain.md");

    #[test]
    fn a_real_section_reads_as_before() {
        let table = SECTION.split_once("\n\n| scenario").map(|(_, t)| format!("| scenario{t}")).unwrap();
        let facts = DomainFacts {
            started: "2026-11-30 15:56:40 UTC".to_owned(),
            commit: "0cabbca+dirty".to_owned(),
            machine: "Linux 6.18.44-fc-v657 x86_64, 2 CPUs, AMD EPYC".to_owned(),
            load: "0.43 2.72 3.37".to_owned(),
        };
        assert_eq!(format!("{}\n", render(&facts, &format!("{table}\n\n"))), SECTION);
        assert!(render(&facts, "| a |\n").ends_with("answer; closed loop: one connection per client, back to back; open loop: latency from when each request was due (2 s warm-up not counted)\n\n| a |"));
    }
}
