//! The `worker` command line: no command runs the worker; `audit` and
//! `republish` are the on-call commands. Usage and configuration errors are
//! one line on stderr and exit 2, unreachable services exit 3.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use xentri_core::Settings;
use xentri_core::human::parse_since;

use super::republish::{self, BATCH, Options};
use super::{AuditError, EXIT_FOUND, EXIT_OK, EXIT_USAGE, Since, Sources, audit, group_handler, report};

const ABOUT: &str = "The Xentri worker: outbox relay, consumer groups and jobs; `audit` and `republish` for on-call";

const AFTER_HELP: &str = "\
Without a command, runs every configured relay, group and job until SIGTERM or Ctrl-C.
config/ is read from the current directory; XENTRI_… variables, DATABASE_URL and REDIS_URL apply.";

const AUDIT_HELP: &str = "\
Each event the group takes (its type, on its stream) is one of: handled (its processed
record exists), pending (delivered, not yet acknowledged), dead-lettered (in the DLQ or an
archive, failed by this group), waiting (in the outbox, or on the stream not yet delivered
to the group), unverifiable (an event older than its processed records are kept, whose
record may have expired or been purged: worker.processed_ttl_secs for a Redis-store group,
worker.jobs.processed_retention_secs for a Postgres-store one), or missing: none of these, and
nothing will handle it unless it is republished (worker republish).

Examples:
  worker audit --group event_counts --since 2h
  worker audit --group jobs --since-seq 120000 --json | jq '.missing[].id'
  worker audit --group cache_invalidation --since 2026-11-26T10:00:00Z --limit 20

Exit codes:
  0  nothing missing
  1  events missing (or a service refused a command: see the error line)
  2  bad usage or configuration (a login PostgreSQL refuses included): nothing was read
  3  PostgreSQL or Redis unreachable";

const REPUBLISH_HELP: &str = "\
Runs the audit, then adds each missing event to its stream again as a new entry with
target_group set to the group: other groups skip it, and the group's processed records
keep its effect exactly once. Running it twice publishes nothing the second time.
Unverifiable events are not republished. From a terminal, more than 1000 events need --yes.

Examples:
  worker republish --group event_counts --since 2h --dry-run
  worker republish --group event_counts --since 2h
  worker republish --group jobs --since-seq 120000 --yes --json

Exit codes:
  0  every missing event republished (or nothing missing, or a dry run)
  1  some events could not be republished (or a service refused a command)
  2  bad usage or configuration (a login PostgreSQL refuses included), or more than 1000
     events without --yes: nothing published
  3  PostgreSQL or Redis unreachable (run it again: what was published is not repeated)";

/// The `worker` command line.
#[derive(Debug, Parser)]
#[command(name = "worker", about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do; none runs the worker.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// An on-call command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the events a group should have handled and has not
    #[command(after_help = AUDIT_HELP)]
    Audit(RangeArgs),
    /// Audit, then put the group's missing events back on its stream, targeted at it
    #[command(after_help = REPUBLISH_HELP)]
    Republish(RepublishArgs),
}

/// The group and the range of events to audit.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Consumer group: cache_invalidation, event_counts or jobs
    #[arg(long, value_name = "GROUP")]
    pub group: String,
    /// Where the range starts.
    #[command(flatten)]
    pub since: SinceArgs,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    /// List at most N missing events (the counts stay exact)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
}

/// Exactly one start of the range.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SinceArgs {
    /// Events with seq N or higher
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub since_seq: Option<i64>,
    /// Events that occurred at or after WHEN: RFC 3339, or a duration such as 2h (that long ago)
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
}

impl SinceArgs {
    /// The start as the library takes it.
    pub fn start(&self) -> Since {
        match (self.since_seq, self.since) {
            (_, Some(time)) => Since::Time(time),
            (seq, None) => Since::Seq(seq.unwrap_or(0)),
        }
    }
}

/// `republish`: the audit's arguments and how to publish.
#[derive(Debug, Args)]
pub struct RepublishArgs {
    /// The group and the range.
    #[command(flatten)]
    pub range: RangeArgs,
    /// List what would be republished; publish nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Republish more than 1000 events from a terminal
    #[arg(long)]
    pub yes: bool,
}

/// Parses `args` (the program name first). `Err` is the exit code once help
/// or a one-line usage error has been printed.
pub fn parse<I, T>(args: I) -> Result<Cli, ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args).map_err(|error| match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        _ => {
            err_line(&usage_error_line(&error));
            ExitCode::from(EXIT_USAGE)
        }
    })
}

/// clap's error as one line: what is wrong, without the usage block after it.
pub fn usage_error_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let what = rendered.split("\n\nUsage:").next().unwrap_or_default();
    let what = what.split("\n\nFor more information").next().unwrap_or_default();
    let line = what.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{line} (see --help)")
}

/// Runs an on-call command with the settings of `config/` and the
/// environment, and prints its outcome; returns the exit code.
pub async fn run(command: Command) -> ExitCode {
    let result = match Settings::load() {
        Ok(settings) => execute(command, settings).await,
        Err(error) => Err(AuditError::from(error)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            err_line(&format!("error: {error}"));
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs `command` with `settings`, printing to stdout (progress to stderr);
/// returns the exit code of a command that ran.
pub async fn execute(command: Command, settings: Settings) -> Result<u8, AuditError> {
    let range = match &command {
        Command::Audit(range) | Command::Republish(RepublishArgs { range, .. }) => range,
    };
    let handler = group_handler(&settings, &range.group)?;
    let sources = Sources::connect(settings).await?;
    let printed = match &command {
        Command::Audit(range) => {
            let audit = audit(&sources, handler.as_ref(), range.since.start(), range.limit).await?;
            let code = if audit.counts.missing > 0 { EXIT_FOUND } else { EXIT_OK };
            let text = if range.json { json_text(&report::json(&audit)) } else { report::text(&audit) };
            out(&text).map(|()| code)
        }
        Command::Republish(args) => {
            let options = Options { dry_run: args.dry_run, confirmed: args.yes || !std::io::stdin().is_terminal() };
            // A line about once a second on large runs, and the last one.
            let mut last_line = Instant::now();
            let progress = |done: u64, total: u64| {
                if total > BATCH as u64 && (done == total || last_line.elapsed() >= Duration::from_secs(1)) {
                    last_line = Instant::now();
                    err_line(&format!("republished {done} of {total}"));
                }
            };
            let outcome = republish::republish(
                &sources,
                handler.as_ref(),
                args.range.since.start(),
                args.range.limit,
                options,
                progress,
            )
            .await?;
            let code = if outcome.failed > 0 { EXIT_FOUND } else { EXIT_OK };
            let text = if args.range.json {
                json_text(&republish::json(&outcome))
            } else {
                format!("{}{}", report::text(&outcome.audit), republish::text(&outcome))
            };
            out(&text).map(|()| code)
        }
    };
    Ok(printed.unwrap_or_else(|error| {
        err_line(&format!("error: cannot write output: {error}"));
        EXIT_FOUND
    }))
}

fn json_text(value: &serde_json::Value) -> String {
    // Serialising a `Value` cannot fail; an empty document would show if it did.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes `text` to stdout. A closed pipe is not an error: the reader has
/// what it wanted (`worker audit … | head`).
fn out(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error),
        _ => Ok(()),
    }
}

/// Writes a line to stderr; if even that fails there is nowhere to say so.
fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
