//! The benches `scripts/bench` runs, once it has built the release binaries
//! (the logic is in [`xentri_e2e::benchkit`]):
//!
//! ```text
//! benchkit api                 the api beside the original stack and pgbench (BENCH_*)
//! benchkit burst               the api's memory under bursts of writes (BENCH_BURST_*)
//! benchkit worker              the worker's streams: raw loop, runtime, relay, latency (BENCH_*)
//! benchkit soak                the api and worker under a fixed-rate load (BENCH_SOAK_*)
//! benchkit dlq                 bulk replay of dead letters (BENCH_DLQ_*)
//! benchkit domain              the domain resources (BENCH_DOMAIN_*)
//! benchkit outage [DRILL...]   the recovery drills (postgres redis empty api spike)
//! benchkit sample OUT [PID...] the CPU other processes take, until SIGTERM (each
//!                              bench runs it beside its scenarios)
//! ```
//!
//! The benches run from the workspace root, read their settings from the
//! environment, print their figures and append a section to BENCHMARKS.md.
//! A bad argument or setting prints `benchkit: ...` and exits with status 2;
//! a missed target or a failed step (`==> error: ...`) exits with status 1.

use std::path::Path;
use std::process::ExitCode;

use xentri_e2e::benchkit::child::log;
use xentri_e2e::benchkit::env::Env;
use xentri_e2e::benchkit::{BenchkitError, api, burst, dlq, domain, outage, proc_sampler, soak, worker};

const USAGE: &str = "usage: benchkit api|burst|worker|soak|dlq|domain|outage [DRILL...]|sample OUT [PID...]";

fn usage(text: &str) -> BenchkitError {
    BenchkitError::Usage(format!("usage: benchkit {text}"))
}

/// `benchkit sample OUT [PID...]`: samples until SIGTERM, then writes its line.
fn sample(args: &[String]) -> Result<(), BenchkitError> {
    let Some((out, pids)) = args.split_first() else { return Err(usage("sample OUT [PID...]")) };
    let pids = pids
        .iter()
        .map(|p| p.parse().map_err(|_| BenchkitError::Usage(format!("PID must be a whole number, not {p:?}"))))
        .collect::<Result<Vec<u32>, _>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| BenchkitError::Spawn { what: "the sampler's runtime".to_owned(), source })?;
    runtime.block_on(proc_sampler::run(Path::new(out), &pids))
}

fn run(command: &str, args: &[String]) -> Result<(), BenchkitError> {
    let env = Env::from_process();
    let no_args = |name: &str| if args.is_empty() { Ok(()) } else { Err(usage(name)) };
    match command {
        "api" => no_args("api").and_then(|()| api::run(&env)),
        "burst" => no_args("burst").and_then(|()| burst::run(&env)),
        "worker" => no_args("worker").and_then(|()| worker::run(&env)),
        "soak" => no_args("soak").and_then(|()| soak::run(&env)),
        "dlq" => no_args("dlq").and_then(|()| dlq::run(&env)),
        "domain" => no_args("domain").and_then(|()| domain::run(&env)),
        "outage" => outage::run(args),
        "sample" => sample(args),
        _ => Err(BenchkitError::Usage(USAGE.to_owned())),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(command, rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ BenchkitError::Usage(_)) => {
            eprintln!("benchkit: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            log(format!("error: {error}"));
            ExitCode::from(1)
        }
    }
}
