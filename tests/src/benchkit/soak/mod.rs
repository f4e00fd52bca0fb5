//! `benchkit soak` (`./scripts/bench worker --soak`): the release api and
//! worker as processes of their own over a fresh database `xentri_soak`; the
//! release load generator `tests/examples/soak.rs` posts events at a fixed
//! rate, samples both processes' RSS and measures api → relay →
//! event_counts latency; this module starts and stops everything and writes
//! the section ([`report`]).
//!
//! With the server's autovacuum off, a thread vacuums `outbox` (a queue)
//! every `BENCH_SOAK_VACUUM_EVERY` seconds in its stead.

pub mod lines;
pub mod report;
pub mod streams;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use self::report::{SoakFacts, SoakSettings};
use self::streams::groups_text;
use super::child::{Bounded, Ended, Service, file_len, free_port, log, run_bounded, tail};
use super::cpu::Sampler;
use super::env::Env;
use super::psql::Psql;
use super::redis_sync::{Redis, info_field};
use super::stage::Stage;
use super::{BenchkitError, apilog, record, release_binary};

/// The database the soak recreates.
const DB: &str = "xentri_soak";
/// Where its logs, samples and the generator's output go.
const DIR: &str = "target/bench/soak";
/// How long the api and the worker have to be ready, and to exit on SIGTERM.
const READY_WITHIN: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(30);

impl SoakSettings {
    /// From `BENCH_SOAK_*`, `BENCH_PORT` and `REDIS_URL`.
    pub fn from_env(env: &Env) -> Result<SoakSettings, BenchkitError> {
        Ok(SoakSettings {
            seconds: env.positive("BENCH_SOAK_SECONDS", 600)?,
            rate: env.positive("BENCH_SOAK_RATE", 2000)?,
            orgs: env.positive("BENCH_SOAK_ORGS", 20)?,
            in_flight: env.positive("BENCH_SOAK_IN_FLIGHT", 512)?,
            drain_seconds: env.positive("BENCH_SOAK_DRAIN_SECONDS", 120)?,
            worker_port: env.positive("BENCH_SOAK_WORKER_PORT", 19090)?,
            vacuum_every: env.whole("BENCH_SOAK_VACUUM_EVERY", 30)?,
            api_port: env.positive("BENCH_PORT", 18080)?,
            redis_url: env.text("REDIS_URL", "redis://127.0.0.1:6379/0"),
        })
    }
}

/// An exit status as the shell's `wait` gives it (128 + signal when killed
/// by one).
pub fn status_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).map_or_else(|| "?".to_owned(), |c| c.to_string())
}

fn ended_text(ended: Ended) -> String {
    match ended {
        Ended::Exited(status) => status_text(status),
        Ended::Killed => "killed".to_owned(),
    }
}

fn create(path: &Path) -> Result<File, BenchkitError> {
    File::create(path).map_err(|source| BenchkitError::Write { path: path.display().to_string(), source })
}

/// Removes the run's Redis keys when the run ends, however it ends.
struct KeysCleanup {
    redis_url: String,
    prefix: String,
}

impl Drop for KeysCleanup {
    fn drop(&mut self) {
        if let Ok(mut redis) = Redis::open(&self.redis_url) {
            let _ = redis.unlink_under(&self.prefix);
        }
    }
}

/// `VACUUM outbox` every `every` until the returned sender is dropped.
fn vacuum_every(psql: Psql, every: Duration) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
            let _ = psql.exec("VACUUM outbox");
        }
    });
    (stop, thread)
}

fn server(
    binary: &str,
    stage: &Stage,
    settings: &SoakSettings,
    prefix: &str,
    port_var: &str,
    port: u16,
) -> Result<Command, BenchkitError> {
    let mut command = Command::new(release_binary(binary)?);
    command
        .env_remove("XENTRI_ENV")
        .env("DATABASE_URL", stage.service_url())
        .env("DATABASE_MIGRATE_URL", stage.psql.owner_url())
        .env("REDIS_URL", &settings.redis_url)
        .env("XENTRI_REDIS__KEY_PREFIX", prefix)
        .env(port_var, port.to_string())
        .env("XENTRI_DATABASE__MIGRATE_ON_START", "false")
        .stdout(Stdio::null());
    Ok(command)
}

/// Runs the soak, appends its section to BENCHMARKS.md and prints it; fails
/// when a verdict fails (or a step does).
pub fn run(env: &Env) -> Result<(), BenchkitError> {
    let settings = SoakSettings::from_env(env)?;
    let overrides = env.overrides();
    if !overrides.is_empty() {
        log(format!("WARNING: {overrides} set: the api and worker run with them"));
    }
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir).map_err(|source| BenchkitError::Write { path: DIR.to_owned(), source })?;
    let prefix = format!(
        "soak-{}-{}:",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        std::process::id()
    );
    let facts = record::RunFacts::now();

    let stage = Stage::new(DB);
    stage.recreate(&dir.join("migrate.log"))?;
    let _keys = KeysCleanup { redis_url: settings.redis_url.clone(), prefix: prefix.clone() };

    let api_port = free_port(settings.api_port, 100)?;
    let worker_port = free_port(settings.worker_port, 100)?;
    // Default log level and format (telemetry.log_filter untouched): logging
    // is part of what is measured.
    log(format!("starting the api on 127.0.0.1:{api_port} and the worker (ops port {worker_port}); logs in {DIR}/"));
    let api_log = dir.join("api.log");
    let worker_log = dir.join("worker.log");
    let mut command = server("api", &stage, &settings, &prefix, "XENTRI_API__PORT", api_port)?;
    let mut api = Service::spawn("the api", &mut command, &api_log, false)?;
    let mut command = server("worker", &stage, &settings, &prefix, "XENTRI_WORKER__PORT", worker_port)?;
    let mut worker = Service::spawn("the worker", &mut command, &worker_log, false)?;
    api.wait_ready(api_port, "/health/ready", false, READY_WITHIN)?;
    worker.wait_ready(worker_port, "/health", false, READY_WITHIN)?;

    let autovacuum = stage.psql.value("SHOW autovacuum")?;
    let mut vacuum = None;
    let vacuum_note = if autovacuum != "on" && settings.vacuum_every > 0 {
        let note = format!(
            "autovacuum off on this server: the script ran `VACUUM outbox` every {} s in its stead",
            settings.vacuum_every
        );
        log(&note);
        vacuum = Some(vacuum_every(stage.psql.clone(), Duration::from_secs(settings.vacuum_every)));
        note
    } else if autovacuum != "on" {
        "autovacuum off on this server and outbox not vacuumed (BENCH_SOAK_VACUUM_EVERY=0): its dead rows pile up"
            .to_owned()
    } else {
        "autovacuum on".to_owned()
    };

    let sampler = Sampler::start(
        &dir.join("soak.foreign"),
        &[api.pid(), worker.pid()],
        &[("BENCH_SAMPLER_DB", DB), ("BENCH_SAMPLER_OWN", "soak,redis-server")],
    )?;
    log(format!(
        "soak: {} events/s for {} s over {} orgs, at most {} in flight",
        settings.rate, settings.seconds, settings.orgs, settings.in_flight
    ));
    let out = dir.join("soak.json");
    let generator_log = dir.join("soak.log");
    let limit = Duration::from_secs(settings.seconds * 3 + settings.drain_seconds + 300);
    let mut generator = Command::new(release_binary("examples/soak")?);
    generator
        .env_remove("XENTRI_ENV")
        .env("DATABASE_URL", stage.psql.owner_url())
        .args(["--url", &format!("http://127.0.0.1:{api_port}")])
        .args(["--api-pid", &api.pid().to_string(), "--worker-pid", &worker.pid().to_string()])
        .args(["--rate", &settings.rate.to_string(), "--seconds", &settings.seconds.to_string()])
        .args(["--orgs", &settings.orgs.to_string(), "--in-flight", &settings.in_flight.to_string()])
        .args(["--drain-seconds", &settings.drain_seconds.to_string()])
        .arg("--rss-out")
        .arg(dir.join("rss.tsv"))
        .args(["--api-metrics", &format!("http://127.0.0.1:{api_port}/api/v1/metrics")])
        .args(["--worker-metrics", &format!("http://127.0.0.1:{worker_port}/metrics")])
        .stdout(create(&out)?)
        .stderr(create(&generator_log)?);
    let rc = match run_bounded("the soak generator", &mut generator, limit, "-TERM")? {
        Bounded::Finished(status) => status_text(status),
        Bounded::TimedOut => "124".to_owned(),
    };
    let cpu = sampler.stop();
    log(format!(
        "soak: other processes used {} % of the machine's CPU meanwhile (CPU time: {})",
        cpu.foreign_text(),
        if cpu.foreign_top.is_empty() { "?" } else { cpu.foreign_top.as_str() }
    ));
    if let Some((stop, thread)) = vacuum.take() {
        drop(stop);
        let _ = thread.join();
    }
    let outbox_dead = stage
        .psql
        .value("SELECT coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'outbox'), 0)")?;
    // Where unhandled events would be: queued (outbox, stream) or gone.
    let mut redis = Redis::open(&settings.redis_url)?;
    let stream = format!("{prefix}events:work");
    let groups = redis.xinfo_groups(&stream).map(|groups| groups_text(&groups)).unwrap_or_default();
    let stream_length = redis.xlen(&stream).map_or_else(|_| "?".to_owned(), |n| n.to_string());

    log("stopping the api and the worker (SIGTERM)");
    let api_exit = ended_text(api.stop(STOP_GRACE));
    let worker_exit = ended_text(worker.stop(STOP_GRACE));
    redis.unlink_under(&prefix)?;
    let redis_left = redis.keys_matching(&format!("{prefix}*"))?.len() as u64;

    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let line = text.lines().rev().find(|l| l.starts_with('{')).map(str::to_owned);
    let Some(line) = line.filter(|_| rc == "0") else {
        eprintln!("{}", tail(&generator_log, 20));
        return Err(BenchkitError::Failed(format!(
            "the load generator failed (status {rc}), see {DIR}/soak.log; nothing appended"
        )));
    };

    let pg_version = stage.psql.value("SHOW server_version")?;
    let apilog = apilog::run(&api_log, 0, file_len(&api_log))?
        .lines()
        .filter(|l| !l.starts_with("  e.g. "))
        .map(|l| format!("- api: {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut log_lines = Vec::new();
    for (name, path) in [("api", &api_log), ("worker", &worker_log)] {
        let file =
            File::open(path).map_err(|source| BenchkitError::Read { path: path.display().to_string(), source })?;
        log_lines.push(
            lines::log_line(name, BufReader::new(file))
                .map_err(|source| BenchkitError::Read { path: path.display().to_string(), source })?,
        );
    }
    let facts = SoakFacts {
        started: facts.started,
        commit: record::commit(),
        machine: record::machine(),
        load: facts.load,
        cpus: super::proc_sampler::cpus_online(),
        redis_version: info_field(&redis.info("server")?, "redis_version").unwrap_or_default(),
        pg_version: pg_version.split(' ').next().unwrap_or("").to_owned(),
        vacuum_note,
        db: DB.to_owned(),
        outbox_dead,
        dir: DIR.to_owned(),
        overrides,
        api_exit,
        worker_exit,
        cpu,
        apilog,
        log_lines,
        groups,
        stream_length,
        prefix,
        redis_left,
    };
    let report = report::render(&line, &settings, &facts)?;
    std::fs::write(dir.join("table.md"), format!("{}\n", report.table))
        .map_err(|source| BenchkitError::Write { path: format!("{DIR}/table.md"), source })?;
    record::append(&report.section)?;
    println!(
        "\n{}\n\n(appended to BENCHMARKS.md; logs, RSS samples and the generator output in {DIR}/)",
        report.section
    );
    if !report.failed.is_empty() {
        return Err(BenchkitError::Failed(format!("soak FAILED: {}", report.failed.join(" "))));
    }
    log("soak PASSED");
    Ok(())
}
