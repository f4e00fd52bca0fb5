//! The bench's measuring helpers for `scripts/bench` and
//! `scripts/bench.d/*.sh` (the logic is in [`xentri_e2e::benchkit`]):
//!
//! ```text
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
//! benchkit worker                         the worker bench (xentri_e2e::benchkit::worker)
//! benchkit dlq                            the bulk-replay bench (xentri_e2e::benchkit::dlq)
//! ```
//!
//! The benches run from the workspace root, read their settings from the
//! environment, print their figures and append a section to BENCHMARKS.md.
//!
//! A bad argument, setting or input prints `benchkit: ...` and exits with
//! status 2; a bench step that fails (a scenario without a result, a replay
//! that lost entries) exits with status 1.

use std::path::Path;
use std::process::ExitCode;

use xentri_e2e::benchkit::{BenchkitError, apilog, dlq, dlq_seed, json_line, outage_report, proc_sampler, worker};

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

fn run(args: &[String]) -> Result<(), BenchkitError> {
    let Some((command, args)) = args.split_first() else {
        return Err(usage(
            "sample|apilog|outage-report|outage-failed|json-field|page-len|soak-minutes|soak-handled|soak-raw|dlq-seed|worker|dlq ...",
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
        "worker" => {
            let [] = args else { return Err(usage("worker")) };
            return worker::run();
        }
        "dlq" => {
            let [] = args else { return Err(usage("dlq")) };
            return dlq::run();
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
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("benchkit: {error}");
            // A failed bench step is the bench's verdict, not a usage error.
            ExitCode::from(if matches!(error, BenchkitError::Failed(_)) { 1 } else { 2 })
        }
    }
}
