//! The PostgreSQL pool constructor.
//!
//! The pool connects lazily: a binary starts while PostgreSQL is away, answers
//! 503 for what needs it, and recovers by itself when it returns. Waiting for a
//! connection is bounded by `database.acquire_timeout_ms`.

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::settings::DatabaseSettings;

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL does not parse (the URL itself is not shown: it may hold a password).
    #[error("configuration error: invalid value for `database.url`: not a PostgreSQL URL")]
    InvalidUrl(#[source] sqlx::Error),
}

/// A lazily connecting pool with a bounded acquire timeout.
pub fn connect_lazy(settings: &DatabaseSettings, application_name: &str) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = settings.url.expose_secret().parse().map_err(DbError::InvalidUrl)?;
    // A session left idle inside a transaction holds back every reader's
    // commit horizon (see the event list) and its locks: end it.
    let options = options.application_name(application_name).options([("idle_in_transaction_session_timeout", "15s")]);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
        // No ping before every acquire (a round trip per request): a dead
        // connection fails its first query instead, is dropped, and the next
        // acquire opens a fresh one.
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

/// Whether `error` says PostgreSQL is away (not that the request, the event or
/// the code is wrong): no connection in time, a connection lost or refused, or
/// the server shutting down, starting up or full. Whatever the step it hit —
/// acquire, begin, a statement, commit — the api answers 503 and the worker
/// waits for the server instead of spending an entry's attempts.
pub fn unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: admin or crash shutdown,
            // cannot connect now (starting up, shutting down); 53300: too many
            // connections.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}
