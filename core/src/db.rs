//! The PostgreSQL pool constructor.
//!
//! The pool connects lazily: a binary starts while PostgreSQL is away, answers
//! 503 for what needs it, and recovers by itself when it returns. Waiting for a
//! connection is bounded by `database.acquire_timeout_ms`.
//!
//! Every new connection is checked before it is used ([`crate::roles::check`]):
//! a login or a service role that row-level security would not bind makes the
//! connection fail, so the pool never serves one. [`check_roles_at_start`] runs
//! the same check once at start-up, so a binary refuses to start on such a
//! login when PostgreSQL is there to tell.

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::settings::DatabaseSettings;

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL does not parse (the URL itself is not shown: it may hold a password).
    #[error("configuration error: invalid value for `database.url`: not a PostgreSQL URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// The migration URL does not parse (not shown either).
    #[error("configuration error: invalid value for `database.migrate_url`: not a PostgreSQL URL")]
    InvalidMigrateUrl(#[source] sqlx::Error),
}

/// A lazily connecting pool with a bounded acquire timeout, whose connections
/// pass the role check before they are used.
pub fn connect_lazy(settings: &DatabaseSettings, application_name: &str) -> Result<PgPool, DbError> {
    let options = connect_options(settings, application_name)?;
    let allow_privileged_login = settings.test_allow_privileged_login;
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
        // No ping before every acquire (a round trip per request): a dead
        // connection fails its first query instead, is dropped, and the next
        // acquire opens a fresh one.
        .test_before_acquire(false)
        // A refused connection is closed and the acquire fails (503): the
        // pool logs the reason ("error returned from after_connect").
        .after_connect(move |conn, _| {
            Box::pin(async move {
                crate::roles::check(conn, allow_privileged_login).await.map_err(|error| match error {
                    crate::roles::RoleError::Query(error) => error,
                    refused => sqlx::Error::Configuration(Box::new(refused)),
                })
            })
        })
        .connect_lazy_with(options))
}

/// How the pool connects: `database.url` as this binary.
fn connect_options(settings: &DatabaseSettings, application_name: &str) -> Result<PgConnectOptions, DbError> {
    let options: PgConnectOptions = settings.url.expose_secret().parse().map_err(DbError::InvalidUrl)?;
    // A session left idle inside a transaction holds back every reader's
    // commit horizon (see the event list) and its locks: end it.
    Ok(options.application_name(application_name).options([("idle_in_transaction_session_timeout", "15s")]))
}

/// Opens a transaction as the service role `role`, scoped to `org_id` when
/// given (`app.org_id`, which row-level security reads), in one round trip:
/// the one way the api and the worker begin a transaction on their pools.
pub async fn begin_as(
    pool: &PgPool,
    role: &str,
    org_id: Option<uuid::Uuid>,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin_with(crate::sql::begin_as(role, org_id)).await
}

/// Moves an open transaction to another org.
pub async fn switch_org(conn: &mut sqlx::PgConnection, org_id: uuid::Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(crate::sql::SET_ORG).bind(org_id.to_string()).execute(conn).await.map(|_| ())
}

/// Runs the role check on a connection of its own, once, at start-up. A
/// refusal is an error the binary stops with; so is a login PostgreSQL
/// refuses (wrong password, no such role or database). When PostgreSQL is away
/// it is only logged: the binary starts, and the pool checks every connection
/// once PostgreSQL is back.
pub async fn check_roles_at_start(
    settings: &DatabaseSettings,
    application_name: &str,
) -> Result<(), crate::roles::RoleError> {
    use sqlx::Connection;
    let options = connect_options(settings, application_name).map_err(|error| match error {
        DbError::InvalidUrl(error) | DbError::InvalidMigrateUrl(error) => crate::roles::RoleError::Query(error),
    })?;
    let connected = tokio::time::timeout(settings.acquire_timeout(), sqlx::PgConnection::connect_with(&options)).await;
    let mut conn = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) if !unavailable(&error) => return Err(crate::roles::RoleError::Query(error)),
        Ok(Err(_)) | Err(_) => {
            tracing::warn!("postgres unavailable at start-up; the database roles are checked on every new connection");
            return Ok(());
        }
    };
    let checked = crate::roles::check(&mut conn, settings.test_allow_privileged_login).await;
    let _ = conn.close().await;
    match checked {
        Err(crate::roles::RoleError::Query(error)) if unavailable(&error) => {
            tracing::warn!("postgres unavailable at start-up; the database roles are checked on every new connection");
            Ok(())
        }
        checked => checked,
    }
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
