//! The command line: every command, option and help text.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::filter::FilterArgs;
use crate::time::parse_duration;

const TOP_EXAMPLES: &str = "\
Examples:
  dlq-tool stats
  dlq-tool list jobs:dlq --since 2h --error-match 'timeout'
  dlq-tool show jobs:dlq 1732600000000-0
  dlq-tool replay jobs:dlq 1732600000000-0
  dlq-tool replay jobs:dlq --all --type 'xentri.soul.*' --dry-run
  dlq-tool archive jobs:dlq --older-than 24h
  dlq-tool purge jobs:dlq --older-than 7d --yes

DLQs are the configured ones (streams.*.dlq in config/, XENTRI_STREAMS__… variables);
config/ is read from the current directory, REDIS_URL and XENTRI_REDIS__KEY_PREFIX apply.
A configured work stream (streams.*.work) is never taken for a DLQ, whatever the flags:
replay, archive and purge never take entries out of it.

Exit codes:
  0  done
  1  partly done: the ids that failed are printed with the reason
  2  bad input (unknown DLQ, id not found, invalid filter, missing --yes, …): nothing changed
  3  Redis unreachable";

const LIST_EXAMPLES: &str = "\
Examples:
  dlq-tool list jobs:dlq
  dlq-tool list events:dlq --type 'xentri.soul.*' --since 2h --count 100
  dlq-tool list events:dlq --error-match '(?i)timeout' --json | jq '.entries[].id'";

const SHOW_EXAMPLES: &str = "\
Examples:
  dlq-tool show jobs:dlq 1732600000000-0
  dlq-tool show jobs:dlq 1732600000000-0 --json | jq .fields.payload";

const REPLAY_EXAMPLES: &str = "\
Each entry moves atomically: it is on the target stream or still in the DLQ, never
neither, never both. The replayed entry has no dlq_* fields and carries target_group
(the group that failed), so only that group processes it again. Replaying an id that
is already gone (another operator replayed it) is reported, not an error. The target
is never trimmed.

Examples:
  dlq-tool replay jobs:dlq 1732600000000-0 1732600000001-0
  dlq-tool replay jobs:dlq --all --dry-run
  dlq-tool replay jobs:dlq --all --error-match 'connection refused' --batch 500 --rate 1000
  dlq-tool replay jobs:dlq --all --ids-from ids.txt
  dlq-tool replay --from-archive dlq:archive:jobs:dlq:2026-11-26 1732600000000-0";

const ARCHIVE_EXAMPLES: &str = "\
Entries older than the cut-off move, atomically each, to dlq:archive:{dlq}:{date}
(date: the UTC day the entry failed), which expires dlq.archive_ttl_secs after its
newest entry failed.

Examples:
  dlq-tool archive jobs:dlq
  dlq-tool archive jobs:dlq --older-than 6h --dry-run";

const ARCHIVES_EXAMPLES: &str = "\
Examples:
  dlq-tool archives jobs:dlq
  dlq-tool replay --from-archive dlq:archive:jobs:dlq:2026-11-26 --all";

const PURGE_EXAMPLES: &str = "\
Deleted entries are gone for good: archive them instead if in doubt.

Examples:
  dlq-tool purge jobs:dlq 1732600000000-0 --yes
  dlq-tool purge jobs:dlq --older-than 7d --type 'xentri.test.*' --dry-run
  dlq-tool purge jobs:dlq --older-than 7d --type 'xentri.test.*' --yes";

const STATS_EXAMPLES: &str = "\
For every configured DLQ: depth, age of the oldest entry, dead letters in the last
alert window against the DLQ's alert threshold, the most frequent errors and the
correlation ids seen more than once.

Examples:
  dlq-tool stats
  dlq-tool stats --json | jq '.dlqs[] | select(.alerting)'";

const TAIL_EXAMPLES: &str = "\
Examples:
  dlq-tool tail jobs:dlq
  dlq-tool tail events:dlq --json | jq -c '{id, type, error}'";

/// `dlq-tool`: the on-call CLI for dead-letter queues.
#[derive(Debug, Parser)]
#[command(
    name = "dlq-tool",
    version,
    about = "Inspect, replay, archive and purge Xentri dead letters, safely",
    after_help = TOP_EXAMPLES
)]
pub struct Cli {
    /// Accept an unconfigured stream that no consumer group reads as a DLQ (never a work stream)
    #[arg(long, global = true)]
    pub stream_is_dlq: bool,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List dead letters (oldest first) as a table, or as JSON
    #[command(after_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// Show one dead letter with all its fields
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
    /// Put dead letters back on their stream, for the group that failed them
    #[command(
        after_help = REPLAY_EXAMPLES,
        override_usage = "dlq-tool replay <DLQ> <ID>... [OPTIONS]\n       \
                          dlq-tool replay <DLQ> --all [FILTERS] [OPTIONS]\n       \
                          dlq-tool replay --from-archive <KEY> <ID>...|--all [OPTIONS]"
    )]
    Replay(ReplayArgs),
    /// Move old dead letters to expiring archive streams
    #[command(after_help = ARCHIVE_EXAMPLES)]
    Archive(ArchiveArgs),
    /// List a DLQ's archive keys with their entry counts and TTLs
    #[command(after_help = ARCHIVES_EXAMPLES)]
    Archives(ArchivesArgs),
    /// Delete dead letters for good (needs --yes)
    #[command(after_help = PURGE_EXAMPLES)]
    Purge(PurgeArgs),
    /// Depth, age, alert state and top errors of every configured DLQ
    #[command(after_help = STATS_EXAMPLES)]
    Stats(StatsArgs),
    /// Follow new dead letters as they arrive, until Ctrl-C
    #[command(after_help = TAIL_EXAMPLES)]
    Tail(TailArgs),
}

/// `list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The DLQ, e.g. `jobs:dlq`
    pub dlq: String,
    /// Show at most N entries
    #[arg(long, short = 'n', value_name = "N", default_value_t = 50)]
    pub count: usize,
    /// Which entries
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The DLQ, e.g. `jobs:dlq`
    pub dlq: String,
    /// The entry id in the DLQ
    pub id: String,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

/// `replay`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The DLQ (with --from-archive: the first id)
    #[arg(value_name = "DLQ")]
    pub dlq: Option<String>,
    /// Entry ids to replay
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Replay from this archive key (as `archives` lists it) instead of a DLQ
    #[arg(long, value_name = "KEY")]
    pub from_archive: Option<String>,
    /// Replay every entry (that the filters select)
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Entries per round trip
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// At most R entries per second
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Which entries (with --all)
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Print what would move, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Replay into STREAM instead of each entry's origin (`dlq_stream`)
    #[arg(long, value_name = "STREAM")]
    pub to: Option<String>,
    /// Replay even into a stream without the entry's consumer group
    #[arg(long)]
    pub force: bool,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

/// `archive`
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The DLQ, e.g. `jobs:dlq`
    pub dlq: String,
    /// Archive entries that failed longer ago than this (default: dlq.archive_after_secs, 24h)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Entries per round trip
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// Print what would move, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

/// `archives`
#[derive(Debug, Args)]
pub struct ArchivesArgs {
    /// The DLQ, e.g. `jobs:dlq`
    pub dlq: String,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

/// `purge`
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The DLQ, e.g. `jobs:dlq`
    pub dlq: String,
    /// Entry ids to delete
    #[arg(value_name = "ID", required_unless_present = "older_than")]
    pub ids: Vec<String>,
    /// Delete entries that failed longer ago than this (and match the filters)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "ids")]
    pub older_than: Option<Duration>,
    /// Which entries (with --older-than)
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Really delete
    #[arg(long)]
    pub yes: bool,
    /// Print what would be deleted, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Entries per round trip
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

/// `stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

/// `tail`
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The DLQ, e.g. `jobs:dlq`
    pub dlq: String,
    /// Print one JSON object per line
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
