//! The benches and their measuring helpers for `scripts/bench` (the logic
//! is in [`xentri_e2e::benchkit`]):
//!
//! ```text
//! benchkit api                            the api beside the original stack and pgbench (BENCH_*)
//! benchkit soak                           the api and worker under a fixed-rate load (BENCH_SOAK_*)
//! benchkit burst                          the api's memory under bursts of writes (BENCH_BURST_*)
//! benchkit domain                         the domain resources (BENCH_DOMAIN_*)
//! benchkit outage [DRILL...]              the recovery drills (postgres redis empty api spike)
//! benchkit sample OUT [OWN_PID...]        CPU of foreign and own processes until SIGTERM
//! benchkit apilog LOG START END           the api log's bytes START..END summarised
//! benchkit outage-report DRILLS.jsonl     the drills as markdown
//! benchkit outage-failed DRILLS.jsonl     how many checks did not hold
//! benchkit json-field [--null TEXT] [--strict] LINE PATH
//!                                         one value of a JSON line (PATH: a.b.c)
//! benchkit page-len BODY                  how many items `data` of a page holds
//! benchkit soak-minutes|soak-handled|soak-raw LINE
//!                                         the soak line's lists, or the line without them
//! benchkit dlq-seed PREFIX N              N dead letters as RESP for redis-cli --pipe
//! ```
//!
//! A bad argument, setting or input prints `benchkit: ...` and exits with status 2.
//! A bench appends its section to BENCHMARKS.md and prints it; it exits with
//! status 1 when a verdict fails or a step of it does (`==> error: ...`).

use std::path::Path;
use std::process::ExitCode;

use xentri_e2e::benchkit::child::log;
use xentri_e2e::benchkit::env::Env;
use xentri_e2e::benchkit::{
    BenchkitError, api, apilog, burst, dlq_seed, domain, json_line, outage, outage_report, proc_sampler, soak,
};

fn usage(text: &str) -> BenchkitError {
    BenchkitError::Usage(format!("usage: benchkit {text}"))
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, BenchkitError> {
    text.parse().map_err(|_| BenchkitError::Usage(format!("{what} must be a whole number, not {text:?}")))
}

fn one<'a>(args: &'a [String], text: &str) -> Result<&'a str, BenchkitError> {
    match args {
        [only] => Ok(only),
        _ => Err(usage(text)),
    }
}

fn json_field(args: &[String]) -> Result<String, BenchkitError> {
    let text = "json-field [--null TEXT] [--strict] LINE PATH";
    let (mut null_text, mut missing, mut rest) = (String::new(), json_line::Missing::AsNull, Vec::new());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--null" => null_text = args.next().ok_or_else(|| usage(text))?.clone(),
            "--strict" => missing = json_line::Missing::Fail,
            _ => rest.push(arg.as_str()),
        }
    }
    let [line, path] = rest[..] else { return Err(usage(text)) };
    json_line::field(line, path, &null_text, missing)
}

/// A whole bench, when `command` names one: `None` otherwise.
fn bench(command: &str, args: &[String]) -> Option<Result<(), BenchkitError>> {
    let env = Env::from_process();
    let no_args = |text: &str| if args.is_empty() { Ok(()) } else { Err(usage(text)) };
    Some(match command {
        "api" => no_args("api").and_then(|()| api::run(&env)),
        "soak" => no_args("soak").and_then(|()| soak::run(&env)),
        "burst" => no_args("burst").and_then(|()| burst::run(&env)),
        "domain" => no_args("domain").and_then(|()| domain::run(&env)),
        "outage" => outage::run(args),
        _ => return None,
    })
}

fn run(args: &[String]) -> Result<(), BenchkitError> {
    let Some((command, args)) = args.split_first() else {
        return Err(usage(
            "api|soak|burst|domain|outage|sample|apilog|outage-report|outage-failed|json-field|page-len|soak-minutes|soak-handled|soak-raw|dlq-seed ...",
        ));
    };
    let output = match command.as_str() {
        "sample" => {
            let Some((out, pids)) = args.split_first() else { return Err(usage("sample OUT [OWN_PID...]")) };
            let pids = pids.iter().map(|p| number(p, "OWN_PID")).collect::<Result<Vec<u32>, _>>()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| BenchkitError::Read { path: "the runtime".to_owned(), source })?;
            runtime.block_on(proc_sampler::run(Path::new(out), &pids))?;
            return Ok(());
        }
        "apilog" => {
            let [log, start, end] = args else { return Err(usage("apilog LOG START END")) };
            apilog::run(Path::new(log), number(start, "START")?, number(end, "END")?)?
        }
        "outage-report" => {
            outage_report::report(&outage_report::read_drills(Path::new(one(args, "outage-report DRILLS.jsonl")?))?)?
        }
        "outage-failed" => {
            let drills = outage_report::read_drills(Path::new(one(args, "outage-failed DRILLS.jsonl")?))?;
            format!("{}\n", outage_report::failed_checks(&drills)?)
        }
        "json-field" => format!("{}\n", json_field(args)?),
        "page-len" => format!("{}\n", json_line::page_len(one(args, "page-len BODY")?)?),
        "soak-minutes" => format!("{}\n", json_line::soak_minutes(one(args, "soak-minutes LINE")?)?),
        "soak-handled" => format!("{}\n", json_line::soak_handled(one(args, "soak-handled LINE")?)?),
        "soak-raw" => format!("{}\n", json_line::soak_raw(one(args, "soak-raw LINE")?)?),
        "dlq-seed" => {
            let [prefix, n] = args else { return Err(usage("dlq-seed PREFIX N")) };
            let n = number(n, "N")?;
            let stdout = std::io::stdout();
            dlq_seed::write_seed(&mut std::io::BufWriter::new(stdout.lock()), prefix, n)
                .map_err(|source| BenchkitError::Write { path: "standard output".to_owned(), source })?;
            return Ok(());
        }
        other => return Err(BenchkitError::Usage(format!("benchkit: no subcommand {other:?}"))),
    };
    use std::io::Write as _;
    std::io::stdout()
        .write_all(output.as_bytes())
        .map_err(|source| BenchkitError::Write { path: "standard output".to_owned(), source })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some((command, rest)) = args.split_first()
        && let Some(ran) = bench(command, rest)
    {
        return match ran {
            Ok(()) => ExitCode::SUCCESS,
            Err(error @ BenchkitError::Usage(_)) => {
                eprintln!("benchkit: {error}");
                ExitCode::from(2)
            }
            Err(error) => {
                log(format!("error: {error}"));
                ExitCode::from(1)
            }
        };
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("benchkit: {error}");
            ExitCode::from(2)
        }
    }
}
