//! What the api and the worker do first, the same way: open their
//! PostgreSQL pool, apply migrations when `database.migrate_on_start` says
//! so, refuse to run where row-level security would not bind them, and open
//! their Redis pool.

use sqlx::PgPool;

use crate::Settings;
use crate::db::DbError;
use crate::migrate::MigrateError;
use crate::redis_pool::RedisPoolError;
use crate::roles::RoleError;

/// Why a service could not open its stores; each is one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum StoresError {
    /// `database.url` is not a PostgreSQL URL.
    #[error(transparent)]
    Database(#[from] DbError),
    /// `redis.url` is not a Redis URL.
    #[error(transparent)]
    Redis(#[from] RedisPoolError),
    /// Migrations could not be applied.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// Row-level security would not bind the login or a service role (the
    /// reason is the whole line: not a source, so it is not printed twice).
    #[error("refusing to run: {0}")]
    Roles(RoleError),
}

/// A service's pools, ready (connections are opened as they are needed).
pub struct Stores {
    /// PostgreSQL.
    pub db: PgPool,
    /// Redis, for short commands.
    pub redis: deadpool_redis::Pool,
}

/// Opens the stores of the service `application` (its PostgreSQL
/// `application_name`): the pool, then migrations when
/// `database.migrate_on_start`, then the row-level security check on the
/// login, then Redis.
pub async fn open_stores(settings: &Settings, application: &str) -> Result<Stores, StoresError> {
    let db = crate::db::connect_lazy(&settings.database, application)?;
    if settings.database.migrate_on_start {
        crate::migrate::apply(&settings.database).await?;
    }
    crate::db::check_roles_at_start(&settings.database, application).await.map_err(StoresError::Roles)?;
    let redis = crate::redis_pool::connect_lazy(&settings.redis)?;
    Ok(Stores { db, redis })
}
