//! The one error type of dlq-tool, and the exit code each kind of error maps to.
//!
//! Exit codes are part of the interface scripts rely on:
//! 0 done; 1 partly done or failed for another reason; 2 bad input, nothing
//! changed; 3 Redis unreachable.

use std::process::ExitCode;

/// Exit code: everything asked for was done.
pub const EXIT_DONE: u8 = 0;
/// Exit code: some entries failed (they are listed), or an unexpected Redis error.
pub const EXIT_PARTLY_DONE: u8 = 1;
/// Exit code: the input was refused before anything changed in Redis.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: Redis could not be reached (or stopped answering).
pub const EXIT_UNREACHABLE: u8 = 3;

/// Why a command did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `config/` or the environment holds an invalid setting.
    #[error(transparent)]
    Config(#[from] xentri_core::ConfigError),
    /// The DLQ named is neither configured nor a key in Redis.
    #[error("unknown DLQ `{name}` (configured: {configured})")]
    UnknownDlq {
        /// What was given.
        name: String,
        /// The configured DLQs, comma separated.
        configured: String,
    },
    /// The key exists but is not a configured DLQ.
    #[error("`{name}` is not a DLQ: {why}")]
    NotADlq {
        /// What was given.
        name: String,
        /// What it is instead.
        why: String,
    },
    /// A configured work stream named where a DLQ is expected; refused
    /// whatever the flags.
    #[error(
        "`{name}` is a work stream, not a DLQ (its DLQ is `{dlq}`): dlq-tool never purges, archives or replays \
         entries of a work stream"
    )]
    WorkStream {
        /// What was given.
        name: String,
        /// The DLQ of its family.
        dlq: String,
    },
    /// A stream some consumer group reads, given with `--stream-is-dlq`.
    #[error(
        "`{name}` is read by consumer group {}: it holds work, not dead letters, and dlq-tool never takes it \
         for a DLQ",
        groups.join(", ")
    )]
    ConsumedStream {
        /// What was given.
        name: String,
        /// The groups that read it.
        groups: Vec<String>,
    },
    /// The key exists but holds something other than a stream.
    #[error("`{name}` is a Redis {kind}, not a stream")]
    NotAStream {
        /// What was given.
        name: String,
        /// Its Redis type.
        kind: String,
    },
    /// An archive key that does not exist or does not name a DLQ's archive.
    #[error("archive `{key}` {why}")]
    BadArchive {
        /// What was given.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// Ids asked for explicitly that are not in the DLQ.
    #[error("not found in `{dlq}`: {}", ids.join(", "))]
    IdsNotFound {
        /// The DLQ (or archive) searched.
        dlq: String,
        /// The missing ids.
        ids: Vec<String>,
    },
    /// The replay target has no consumer group to take the entries.
    #[error(
        "`{stream}` has no consumer group `{group}` ({}): nothing would process the replayed entries; \
         pass --force to replay anyway",
        if existing.is_empty() { "it has no consumer group at all".to_owned() } else { format!("it has: {}", existing.join(", ")) }
    )]
    NoGroup {
        /// The target stream.
        stream: String,
        /// The group the entries are targeted at.
        group: String,
        /// The groups the stream has.
        existing: Vec<String>,
    },
    /// A destructive command without `--yes`.
    #[error("refusing to purge without --yes (try --dry-run first to see what would be deleted)")]
    MissingYes,
    /// Any other input that is refused: a bad id, a missing argument, a bad file.
    #[error("{0}")]
    BadInput(String),
    /// Redis did not answer (refused, timed out, dropped the connection).
    #[error("redis unreachable: {0}")]
    Unreachable(#[source] redis::RedisError),
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Redis(#[source] redis::RedisError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Unreachable(_) => EXIT_UNREACHABLE,
            Error::Redis(_) | Error::Output(_) => EXIT_PARTLY_DONE,
            Error::Config(_)
            | Error::UnknownDlq { .. }
            | Error::NotADlq { .. }
            | Error::WorkStream { .. }
            | Error::ConsumedStream { .. }
            | Error::NotAStream { .. }
            | Error::BadArchive { .. }
            | Error::IdsNotFound { .. }
            | Error::NoGroup { .. }
            | Error::MissingYes
            | Error::BadInput(_) => EXIT_BAD_INPUT,
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(error: redis::RedisError) -> Self {
        if is_unreachable(&error) { Error::Unreachable(error) } else { Error::Redis(error) }
    }
}

/// True when the error says Redis could not be reached rather than that it
/// refused a command.
pub fn is_unreachable(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_connection_refusal() || error.is_timeout() || error.is_connection_dropped()
}

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Everything asked for was done.
    Done,
    /// Some of it was done; the failures were printed.
    PartlyDone,
}

impl Completion {
    /// The process exit code.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Completion::Done => ExitCode::from(EXIT_DONE),
            Completion::PartlyDone => ExitCode::from(EXIT_PARTLY_DONE),
        }
    }
}
