//! The migrator over `migrations/`, embedded at compile time.
//!
//! Migrations create the service roles idempotently (roles are cluster-wide and
//! many test databases migrate at once), so applying them twice, or to two
//! databases in parallel, is safe.

use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;

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
}

/// Creates the configured database when it is missing, then applies pending
/// migrations. Idempotent.
pub async fn create_and_migrate(settings: &DatabaseSettings) -> Result<(), MigrateError> {
    let url = settings.url.expose_secret();
    if !sqlx::Postgres::database_exists(url).await.map_err(MigrateError::Create)? {
        match sqlx::Postgres::create_database(url).await {
            Ok(()) => tracing::info!("database created"),
            // Another process created it first.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(MigrateError::Create(e)),
        }
    }
    let pool = crate::db::connect_lazy(settings, "xentri-migrate")?;
    MIGRATOR.run(&pool).await.map_err(MigrateError::Apply)?;
    pool.close().await;
    tracing::info!("migrations applied");
    Ok(())
}
