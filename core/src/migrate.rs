//! The migrator over `migrations/`, embedded at compile time.
//!
//! Migrations create the service roles idempotently (roles are cluster-wide and
//! many test databases migrate at once), so applying them twice, or to two
//! databases in parallel, is safe.
//!
//! Migrations run as the owner (`database.migrate_url`, else `database.url`),
//! on a connection of their own: the services' pool logs in as a role that
//! owns nothing and could not create a table.

use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::settings::DatabaseSettings;

/// Every migration of the workspace, in order.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// PostgreSQL refused or could not be reached.
    #[error("cannot create the database: {0}")]
    Create(#[source] sqlx::Error),
    /// A migration failed.
    #[error("cannot apply migrations: {0}")]
    Apply(#[source] sqlx::migrate::MigrateError),
    /// The pool could not be built.
    #[error(transparent)]
    Pool(#[from] crate::db::DbError),
    /// `database.migrate_url` names another database than `database.url`
    /// (usually one of them overridden alone): migrating would change the
    /// wrong database.
    #[error(
        "configuration error: invalid value for `database.migrate_url`: names another server or database than \
         `database.url`; set both (DATABASE_URL and DATABASE_MIGRATE_URL), or migrate_url to \"\" to migrate with url"
    )]
    OtherDatabase,
}

/// Creates the configured database when it is missing, then applies pending
/// migrations, as the owner. Idempotent.
pub async fn create_and_migrate(settings: &DatabaseSettings) -> Result<(), MigrateError> {
    owner_options(settings)?;
    let url = settings.owner_url().expose_secret();
    if !sqlx::Postgres::database_exists(url).await.map_err(MigrateError::Create)? {
        match sqlx::Postgres::create_database(url).await {
            Ok(()) => tracing::info!("database created"),
            // Another process created it first.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(MigrateError::Create(e)),
        }
    }
    apply(settings).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Applies pending migrations as the owner (`database.migrate_on_start`).
pub async fn apply(settings: &DatabaseSettings) -> Result<(), MigrateError> {
    let options = owner_options(settings)?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.acquire_timeout())
        .connect_lazy_with(options.application_name("xentri-migrate"));
    let applied = MIGRATOR.run(&pool).await.map_err(MigrateError::Apply);
    pool.close().await;
    applied
}

/// How migrations connect: the owner URL, which must name the database of
/// `database.url`.
fn owner_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, MigrateError> {
    let owner: PgConnectOptions = settings
        .owner_url()
        .expose_secret()
        .parse()
        .map_err(|error| MigrateError::Pool(crate::db::DbError::InvalidMigrateUrl(error)))?;
    let services: PgConnectOptions = settings
        .url
        .expose_secret()
        .parse()
        .map_err(|error| MigrateError::Pool(crate::db::DbError::InvalidUrl(error)))?;
    let names = |o: &PgConnectOptions| (o.get_host().to_owned(), o.get_port(), o.get_database().map(str::to_owned));
    if names(&owner) != names(&services) {
        return Err(MigrateError::OtherDatabase);
    }
    Ok(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, migrate_url: Option<&str>) -> DatabaseSettings {
        DatabaseSettings {
            url: url.into(),
            max_connections: 1,
            acquire_timeout_ms: 100,
            migrate_on_start: false,
            migrate_url: migrate_url.map(Into::into),
            test_allow_privileged_login: false,
        }
    }

    #[tokio::test]
    async fn migrations_refuse_an_owner_url_of_another_database() {
        // Nothing listens on port 1: the refusal comes before any connection.
        let other =
            settings("postgres://xentri_service@127.0.0.1:1/elsewhere", Some("postgres://postgres@127.0.0.1:1/xentri"));
        assert!(matches!(create_and_migrate(&other).await, Err(MigrateError::OtherDatabase)));
        assert!(matches!(apply(&other).await, Err(MigrateError::OtherDatabase)));
        let same =
            settings("postgres://xentri_service@127.0.0.1:1/xentri", Some("postgres://postgres@127.0.0.1:1/xentri"));
        assert!(!matches!(apply(&same).await, Err(MigrateError::OtherDatabase)));
    }
}
