//! `benchkit api` (`./scripts/bench api`): the release api under wrk, beside
//! the original stack (Fastify 5 + Prisma 7, `../shared/peers/seed-stack`) run
//! the same way in the same run, the open-loop driver, two api processes at
//! once, and pgbench running our own statements and the calibration; the
//! figures and verdicts go to stdout and BENCHMARKS.md.
//!
//! Environment: `BENCH_DURATION` (30s), `BENCH_CONNECTIONS` (100),
//! `BENCH_THREADS` (2), `BENCH_PORT` (18080), `BENCH_EVENTS` (100000),
//! `BENCH_OPENLOOP_RATE` (1000), `BENCH_APPEND_CLIENTS` (90), `BENCH_PEER_DIR`.
//! Outputs, the api log and pgbench's per-transaction logs go to
//! `target/bench/`; the database `xentri_bench` is recreated at the start
//! and left behind for inspection.

mod figures;
mod report;
mod scenarios;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use self::figures::{ApiRun, Setup};
use super::BenchkitError;
use super::child::{Service, free_port, log, tail};
use super::env::Env;
use super::record::{self, API_REFERENCES, RunFacts};
use super::stage::{Stage, stop_api};

/// The bench database.
const DB: &str = "xentri_bench";

/// The run's settings, from the environment.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// wrk's duration as given (`30s`, `2m`).
    pub duration: String,
    /// The same in seconds.
    pub secs: u64,
    /// wrk connections and pgbench clients.
    pub connections: u32,
    /// wrk and pgbench threads.
    pub threads: u32,
    /// First port tried for the api.
    pub first_port: u16,
    /// Events in the database before the reads.
    pub events: u64,
    /// Open-loop requests per second.
    pub openloop_rate: u64,
    /// Clients of the append-against-calibration rounds.
    pub append_clients: u32,
}

/// Seconds in a wrk duration (`30`, `30s`, `2m`, `1h`).
pub fn duration_secs(text: &str) -> Option<u64> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    (secs >= 1).then_some(secs)
}

impl ApiSettings {
    /// From `BENCH_*` variables; a malformed one is a usage error.
    pub fn from_env(env: &Env) -> Result<ApiSettings, BenchkitError> {
        let duration = env.text("BENCH_DURATION", "30s");
        let secs = duration_secs(&duration).ok_or_else(|| {
            BenchkitError::Usage(format!("BENCH_DURATION must look like 30s, 2m or 1h (at least 1s), not {duration:?}"))
        })?;
        let settings = ApiSettings {
            duration,
            secs,
            connections: env.positive("BENCH_CONNECTIONS", 100)?,
            threads: env.positive("BENCH_THREADS", 2)?,
            first_port: env.positive("BENCH_PORT", 18080)?,
            events: env.whole("BENCH_EVENTS", 100_000)?,
            openloop_rate: env.positive("BENCH_OPENLOOP_RATE", 1000)?,
            append_clients: env.positive("BENCH_APPEND_CLIENTS", 90)?,
        };
        if settings.threads > settings.connections {
            return Err(BenchkitError::Usage("BENCH_THREADS must not exceed BENCH_CONNECTIONS".to_owned()));
        }
        Ok(settings)
    }
}

/// One run: its settings, files, database and the processes it started.
pub struct Bench {
    settings: ApiSettings,
    dir: PathBuf,
    helpers: PathBuf,
    peer_dir: PathBuf,
    stage: Stage,
    tokens: PathBuf,
    api_log: PathBuf,
    run_id: String,
    api: Option<(Service, u16)>,
}

impl Bench {
    /// The running api's pid and port.
    fn api(&self) -> Result<(u32, u16), BenchkitError> {
        self.api
            .as_ref()
            .map(|(api, port)| (api.pid(), *port))
            .ok_or_else(|| BenchkitError::Failed("the api is not running".to_owned()))
    }

    fn start_api(&mut self) -> Result<(), BenchkitError> {
        self.api = Some(self.stage.launch_api(self.settings.first_port, &self.api_log, &[])?);
        Ok(())
    }

    fn stop_api(&mut self) {
        if let Some((mut api, _)) = self.api.take() {
            stop_api(&mut api);
        }
    }

    /// The original stack, on the next free port after ours, alone on the
    /// machine while it is measured (ours is stopped meanwhile).
    fn start_peer(&self) -> Result<(Service, u16), BenchkitError> {
        let port = free_port(self.settings.first_port + 100, 100)?;
        let log_file = self.dir.join("peer.log");
        log(format!("starting the original stack on 127.0.0.1:{port} (log: {})", log_file.display()));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .map_err(|source| BenchkitError::Write { path: log_file.display().to_string(), source })?;
        let mut command = Command::new(self.peer_dir.join("run.sh"));
        command.arg("serve").env("PORT", port.to_string()).stdout(out);
        let mut peer = Service::spawn("the original stack", &mut command, &log_file, true)?;
        // Any HTTP answer (401 without a token) means it listens.
        peer.wait_ready(port, "/api/v1/events", true, Duration::from_secs(30))?;
        Ok((peer, port))
    }

    fn peer_step(&self, step: &str, log_file: Option<&Path>) -> Result<(), BenchkitError> {
        let mut command = Command::new(self.peer_dir.join("run.sh"));
        command.arg(step).stdin(Stdio::null());
        if let Some(path) = log_file {
            let file = std::fs::File::create(path)
                .map_err(|source| BenchkitError::Write { path: path.display().to_string(), source })?;
            let err =
                file.try_clone().map_err(|source| BenchkitError::Write { path: path.display().to_string(), source })?;
            command.stdout(file).stderr(err);
        }
        let status = command
            .status()
            .map_err(|source| BenchkitError::Spawn { what: format!("the original stack's {step}"), source })?;
        if status.success() {
            return Ok(());
        }
        let detail = log_file.map(|p| format!(":\n{}", tail(p, 20))).unwrap_or_default();
        Err(BenchkitError::Failed(format!("the original stack's {step} failed ({status}){detail}")))
    }
}

/// A whole-number setting of the api: its `XENTRI_*` variable, else
/// config/default.toml.
fn api_setting(env: &Env, var: &str, section: &str, key: &str) -> Result<u32, BenchkitError> {
    let value = match env.get(var) {
        Some(text) => text.parse().ok(),
        None => record::default_setting(section, key).and_then(|v| u32::try_from(v).ok()),
    };
    value.filter(|v| *v >= 1).ok_or_else(|| BenchkitError::Failed(format!("cannot tell the api's {section}.{key}")))
}

/// Runs the whole bench; the section goes to BENCHMARKS.md and stdout.
pub fn run(env: &Env) -> Result<(), BenchkitError> {
    let settings = ApiSettings::from_env(env)?;
    let pool = api_setting(env, "XENTRI_DATABASE__MAX_CONNECTIONS", "database", "max_connections")?;
    let append_writers = api_setting(env, "XENTRI_API__APPEND_WRITERS", "api", "append_writers")?;
    let dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&dir).map_err(|source| BenchkitError::Write { path: dir.display().to_string(), source })?;
    let facts = RunFacts::now();
    let mut bench = Bench {
        helpers: PathBuf::from("scripts/bench.d"),
        peer_dir: PathBuf::from(env.text("BENCH_PEER_DIR", "../shared/peers/seed-stack")),
        stage: Stage::new(DB),
        tokens: dir.join("tokens.txt"),
        api_log: dir.join("api.log"),
        run_id: chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string(),
        dir,
        settings,
        api: None,
    };
    bench.stage.recreate(&bench.dir.join("migrate.log"))?;
    bench.stage.mint_tokens(&bench.tokens)?;
    bench.start_api()?;
    let run = measure(&mut bench, facts, pool, append_writers, env.overrides())?;
    let section = report::section(&run);
    record::append(&section)?;
    println!(
        "\n{section}\n{API_REFERENCES}\n\n(appended to BENCHMARKS.md; outputs and the api log in {}/)",
        bench.dir.display()
    );
    Ok(())
}

fn measure(
    bench: &mut Bench,
    facts: RunFacts,
    pool: u32,
    append_writers: u32,
    overrides: String,
) -> Result<ApiRun, BenchkitError> {
    let psql = bench.stage.psql.clone();
    let writes = bench.run_wrk("writes", "write.lua", "/api/v1/events")?;
    let writes_stored = psql.count("SELECT count(*) FROM system_events")?;
    log(format!("writes: {} answers counted by wrk, {writes_stored} events stored", writes.requests));

    // The original stack's writes right after ours, with ours stopped.
    log(format!("stopping the api; setting up the original stack ({})", bench.peer_dir.display()));
    bench.stop_api();
    bench.peer_step("setup", Some(&bench.dir.join("peer-setup.log")))?;
    bench.peer_step("truncate", None)?;
    let (mut peer, peer_port) = bench.start_peer()?;
    let peer_writes = bench.run_peer_wrk("peer_writes", peer_port, "post.lua", "/api/v1/events")?;
    peer.stop(Duration::from_secs(10));
    bench.start_api()?;

    let events = bench.settings.events;
    log(format!("topping system_events up to {events} rows over {} orgs, then VACUUM ANALYZE", super::stage::ORGS));
    psql.script(&bench.helpers.join("seed.sql"), &[("target", &events.to_string())])?;
    psql.exec("VACUUM ANALYZE system_events")?;
    let reads_events = psql.count("SELECT count(*) FROM system_events")?;
    let reads_orgs = psql.count("SELECT count(DISTINCT org_id) FROM system_events")?;

    let before = bench.probe_page()?;
    let reads = bench.run_wrk("reads", "read.lua", "/api/v1/events?limit=50")?;
    let after = bench.probe_page()?;

    // Latency under moderate load, open loop, over the same events.
    let openloop = [bench.run_openloop("openloop_reads", "read")?, bench.run_openloop("openloop_writes", "write")?];
    // Two api processes writing at once against one: with the default
    // append_writers each, then with half as many each (the same total as
    // one). One process runs before and after the two-process runs: every
    // scenario writes ~200,000 events, so each runs over a larger table than
    // the one before, and the two-process runs are held against the mean.
    let writes_one = bench.run_wrk("writes_one", "write.lua", "/api/v1/events")?;
    let two_apis = bench.run_two_apis("two_apis", append_writers)?;
    let two_apis_split = bench.run_two_apis("two_apis_split", append_writers.div_ceil(2))?;
    let writes_one_after = bench.run_wrk("writes_one_after", "write.lua", "/api/v1/events")?;

    log("stopping the api; the original stack's reads over its own 100,000 events");
    bench.stop_api();
    bench.peer_step("seed-reads", None)?;
    let (mut peer, peer_port) = bench.start_peer()?;
    let peer_reads = bench.run_peer_wrk("peer_reads", peer_port, "get.lua", "/api/v1/events?limit=50")?;
    peer.stop(Duration::from_secs(10));

    // pgbench runs alone: the api's pool would hold connections pgbench
    // needs, and an idle api would still be measured as sharing the machine.
    let connections = bench.settings.connections;
    let pgbench_list = bench.run_pgbench("pgbench_list", connections, "list.sql")?;
    let pgbench = bench.run_pgbench("pgbench", connections, "append.sql")?;
    // Context for the ratio: the api funnels its connections into its pool,
    // so PostgreSQL sees at most that many sessions from it.
    let pgbench_pool = bench.run_pgbench("pgbench_pool", pool, "append.sql")?;
    // How this machine compares with the one the reference figures come from.
    psql.exec(CALIBRATION_TABLE)?;
    let calibration = bench.run_pgbench("calibration", connections, "calibrate.sql")?;
    // One-append transactions through append_events against the calibration,
    // at the same concurrency, alternating twice (machines drift within a
    // run); the event row alone in the calibration's shape shows what the
    // event table itself costs.
    let clients = bench.settings.append_clients;
    let round = |n: u32| -> Result<[figures::Pgbench; 3], BenchkitError> {
        Ok([
            bench.run_pgbench(&format!("append_{n}"), clients, "append.sql")?,
            bench.run_pgbench(&format!("calibration_{n}"), clients, "calibrate.sql")?,
            bench.run_pgbench(&format!("event_{n}"), clients, "event_only.sql")?,
        ])
    };
    let rounds = [round(1)?, round(2)?];

    let s = &bench.settings;
    let setup = Setup {
        started: facts.started,
        commit: record::commit(),
        machine: record::machine(),
        load: facts.load,
        pg_version: psql.value("SHOW server_version")?.split(' ').next().unwrap_or("").to_owned(),
        pg_max_connections: psql.value("SHOW max_connections")?,
        pg_shared_buffers: psql.value("SHOW shared_buffers")?,
        pool,
        append_writers,
        overrides,
        duration: s.duration.clone(),
        secs: s.secs,
        connections: s.connections,
        threads: s.threads,
        openloop_rate: s.openloop_rate,
    };
    Ok(ApiRun {
        setup,
        writes_stored,
        reads_events,
        reads_orgs,
        writes,
        peer_writes,
        reads,
        peer_reads,
        pages: [before, after],
        openloop,
        writes_one: [writes_one, writes_one_after],
        two_apis,
        two_apis_split,
        pgbench_list,
        pgbench,
        pgbench_pool,
        calibration,
        rounds,
    })
}

/// Single-row inserts under forced row-level security: the calibration's
/// table (the kind of run the reference figures quote for their machine).
const CALIBRATION_TABLE: &str = "CREATE TABLE bench_rls_insert (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id     uuid        NOT NULL,
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE bench_rls_insert ENABLE ROW LEVEL SECURITY;
ALTER TABLE bench_rls_insert FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON bench_rls_insert
    USING (org_id = current_setting('app.org_id', true)::uuid)
    WITH CHECK (org_id = current_setting('app.org_id', true)::uuid);
GRANT INSERT ON bench_rls_insert TO xentri_api;";

#[cfg(test)]
mod tests;
