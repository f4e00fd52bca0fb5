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
