//! Why an audit or a republish did not finish, and the exit code each kind of
//! ending maps to. Exit codes are part of the interface scripts rely on.

use super::postgres;

/// Why an audit or a republish did not finish; each is one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The command line or the group asked for is refused (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A setting is missing or invalid (exit 2).
    #[error(transparent)]
    Config(#[from] xentri_core::ConfigError),
    /// More events would be republished than may go without `--yes` (exit 2).
    #[error(
        "refusing to republish {count} events without --yes (more than {limit}): \
         check them with --dry-run, then run again with --yes"
    )]
    NeedsConfirmation {
        /// Events that would be republished.
        count: usize,
        /// The most that go without confirmation.
        limit: usize,
    },
    /// PostgreSQL refused the login: role, password or database (exit 2).
    #[error("postgresql refused the login (check the user, password and database of DATABASE_URL): {0}")]
    PostgresLoginRefused(#[source] sqlx::Error),
    /// PostgreSQL could not be reached (exit 3).
    #[error("postgresql unreachable: {0}")]
    PostgresUnreachable(#[source] sqlx::Error),
    /// Redis could not be reached (exit 3).
    #[error("redis unreachable: {0}")]
    RedisUnreachable(#[source] redis::RedisError),
    /// PostgreSQL refused a statement (exit 1).
    #[error("postgresql error: {0}{hint}", hint = postgres::hint(.0))]
    Postgres(#[source] sqlx::Error),
    /// Redis refused a command or answered unexpectedly (exit 1).
    #[error("redis error: {0}")]
    Redis(#[source] redis::RedisError),
}

/// Exit code: nothing missing, or everything republished.
pub const EXIT_OK: u8 = 0;
/// Exit code: something is missing, some events could not be republished, or
/// a service refused a command (the stderr line says which).
pub const EXIT_FOUND: u8 = 1;
/// Exit code: usage or configuration error; nothing was changed.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: PostgreSQL or Redis unreachable.
pub const EXIT_UNREACHABLE: u8 = 3;

impl AuditError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AuditError::Usage(_)
            | AuditError::Config(_)
            | AuditError::NeedsConfirmation { .. }
            | AuditError::PostgresLoginRefused(_) => EXIT_USAGE,
            AuditError::PostgresUnreachable(_) | AuditError::RedisUnreachable(_) => EXIT_UNREACHABLE,
            AuditError::Postgres(_) | AuditError::Redis(_) => EXIT_FOUND,
        }
    }
}

impl From<sqlx::Error> for AuditError {
    fn from(error: sqlx::Error) -> Self {
        if postgres::is_refused_login(&error) {
            Self::PostgresLoginRefused(error)
        } else if postgres::is_unreachable(&error) {
            Self::PostgresUnreachable(error)
        } else {
            Self::Postgres(error)
        }
    }
}

impl From<redis::RedisError> for AuditError {
    fn from(error: redis::RedisError) -> Self {
        let unreachable =
            error.is_io_error() || error.is_connection_refusal() || error.is_timeout() || error.is_connection_dropped();
        if unreachable { Self::RedisUnreachable(error) } else { Self::Redis(error) }
    }
}
