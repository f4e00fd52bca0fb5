//! `benchkit worker`: the worker's streams measured with the release driver
//! `tests/examples/stream_bench.rs`, one process per scenario, each printing
//! one JSON line: the raw `XREADGROUP COUNT 100` + `XACK` loop, the worker
//! runtime draining the same backlog, the relay draining an outbox backlog
//! and api append → handler start latency at a steady rate. The figures go
//! to stdout and, as a section ([`report`]), to BENCHMARKS.md.
//!
//! Environment: `BENCH_WORKER_ENTRIES` (200000), `BENCH_RELAY_ENTRIES`
//! (100000), `BENCH_LATENCY_RATE` (1000), `BENCH_LATENCY_SECONDS` (20),
//! `REDIS_URL` (redis://127.0.0.1:6379/0). Run from the workspace root, after
//! `cargo build --release -p api --bins` and `cargo build --release -p
//! xentri-e2e --example stream_bench --example benchkit`.

pub mod outcome;
pub mod report;
pub mod scenario;

use std::path::PathBuf;

use self::report::{Sizes, WorkerReport};
use self::scenario::Bench;
use super::child::log;
use super::env::Env;
use super::psql::Psql;
use super::redis_sync::{Redis, info_field};
use super::stage::Stage;
use super::{BenchkitError, record, release_binary};

/// The bench's database, dropped and recreated at the start of a run.
const DB: &str = "xentri_wbench";
/// Where the drivers' outputs, logs and sampler lines go.
const DIR: &str = "target/bench/worker";
/// The Redis server when `REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// The Redis server: `REDIS_URL`, or the local default.
pub fn redis_url(env: &Env) -> String {
    env.text("REDIS_URL", DEFAULT_REDIS_URL)
}

/// The sizes asked for in the environment.
pub fn sizes(env: &Env) -> Result<Sizes, BenchkitError> {
    Ok(Sizes {
        worker_entries: env.positive("BENCH_WORKER_ENTRIES", 200_000)?,
        relay_entries: env.positive("BENCH_RELAY_ENTRIES", 100_000)?,
        latency_rate: env.positive("BENCH_LATENCY_RATE", 1000)?,
        latency_seconds: env.positive("BENCH_LATENCY_SECONDS", 20)?,
    })
}

/// Dead rows in outbox, as PostgreSQL's statistics have them.
fn outbox_dead(psql: &Psql) -> Result<String, BenchkitError> {
    psql.value("SELECT coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'outbox'), 0)")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// Runs the four scenarios, prints the figures and appends the section;
/// fails (exit status 1) when a scenario gave no result, after appending.
pub fn run(env: &Env) -> Result<(), BenchkitError> {
    let sizes = sizes(env)?;
    let redis_url = redis_url(env);
    let driver = release_binary("examples/stream_bench")?;
    // The driver builds its settings from config/ and its own overrides.
    let overrides = env.overrides();
    if !overrides.is_empty() {
        log(format!("WARNING: {overrides} set, but the driver builds its settings without them"));
    }
    let psql = Psql::new(DB);
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir).map_err(|source| BenchkitError::Write { path: DIR.to_owned(), source })?;
    let facts = record::RunFacts::now();
    Stage::new(DB).recreate(&dir.join("migrate.log"))?;

    // The driver seeds and inspects across orgs as the owner, so it runs the
    // worker in-process on this login too (a test's leave, see stream_bench.rs).
    let mut bench = Bench {
        dir,
        driver,
        driver_env: vec![
            ("DATABASE_URL", psql.owner_url()),
            ("DATABASE_MIGRATE_URL", psql.owner_url()),
            ("REDIS_URL", redis_url.clone()),
        ],
        // The sampler counts these as the benchmark's own.
        sampler_env: vec![
            ("BENCH_SAMPLER_DB", DB.to_owned()),
            ("BENCH_SAMPLER_OWN", "stream_bench,redis-server".to_owned()),
        ],
        redis: Redis::open(&redis_url)?,
    };

    // Bounds for a hung driver, far below the targets' rates: the whole run,
    // set-up included, at 2,000 entries/s or 1,000 rows/s, plus a minute.
    let (w, r) = (sizes.worker_entries, sizes.relay_entries);
    let w_text = w.to_string();
    let raw = bench.run_stream("raw", "raw", 60 + w / 2000, &strings(&["raw", "--entries", &w_text]))?;
    let runtime = bench.run_stream("runtime", "noop", 60 + w / 2000, &strings(&["runtime", "--entries", &w_text]))?;
    let relay = bench.run_stream("relay", "", 60 + r / 1000, &strings(&["relay", "--entries", &r.to_string()]))?;
    // Rows a cut-short relay left would be published to the latency run's stream.
    if relay.json.is_none() {
        psql.exec("DELETE FROM outbox")?;
    }
    // The relay scenario leaves its backlog dead in outbox, and autovacuum may
    // be off: unvacuumed, the relay's batch query wades through those rows on
    // every batch and latency measures that instead of the steady state.
    let dead_before = outbox_dead(&psql)?;
    log(format!("VACUUM ANALYZE outbox ({dead_before} dead rows)"));
    psql.exec("VACUUM ANALYZE outbox")?;
    let (rate, seconds) = (sizes.latency_rate.to_string(), sizes.latency_seconds.to_string());
    let latency = bench.run_stream(
        "latency",
        "latency",
        sizes.latency_seconds + 180,
        &strings(&["latency", "--rate", &rate, "--seconds", &seconds]),
    )?;
    let dead_after = outbox_dead(&psql).ok();

    let setting =
        |section: &str, key: &str| record::default_setting(section, key).map_or_else(String::new, |v| v.to_string());
    let redis_info = bench.redis.info("server").unwrap_or_default();
    let report = WorkerReport {
        started: facts.started,
        commit: record::commit(),
        machine: record::machine(),
        load: facts.load,
        cpus: super::proc_sampler::cpus_online(),
        redis_version: info_field(&redis_info, "redis_version").unwrap_or_default(),
        redis_url,
        pg_version: psql.value("SHOW server_version")?.split(' ').next().unwrap_or_default().to_owned(),
        autovacuum: psql.value("SHOW autovacuum")?,
        db: DB.to_owned(),
        dead_before,
        dead_after,
        read_count: setting("worker", "read_count"),
        block_ms: setting("worker", "block_ms"),
        batch_size: setting("worker.relay", "batch_size"),
        sizes,
        raw,
        runtime,
        relay,
        latency,
    };
    let section = report::section(&report);
    record::append(&section)?;
    print!("{}", report::printed(&section, DIR));
    if report.scenarios().iter().any(|(_, o)| o.error.is_some()) {
        return Err(BenchkitError::Failed("some scenarios gave no result (see above)".to_owned()));
    }
    Ok(())
}
