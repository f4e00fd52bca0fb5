//! `[database]` and `[redis]`: the pools.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// `[database]`: the PostgreSQL pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL; may hold a password, so it never prints.
    pub url: SecretString,
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before it fails with 503.
    pub acquire_timeout_ms: u64,
    /// Apply pending migrations when a binary starts.
    pub migrate_on_start: bool,
    /// Connection URL of the tables' owner, used only to create the database
    /// and apply migrations (`api migrate`, `migrate_on_start`); unset or
    /// empty: `url`. Must name the same server and database as `url`
    /// (migrating refuses otherwise). Never prints.
    pub migrate_url: Option<SecretString>,
    /// Test only: lets the api and the worker run on a login that bypasses
    /// row-level security (a superuser, `BYPASSRLS`, or an owner), as the test
    /// databases are reached. Only `config/test.toml` sets it; it is refused
    /// unless every listener is on a loopback address.
    pub test_allow_privileged_login: bool,
}

impl DatabaseSettings {
    /// The acquire timeout as a duration.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }

    /// The URL migrations run with: `migrate_url`, else `url`.
    pub fn owner_url(&self) -> &SecretString {
        self.migrate_url.as_ref().unwrap_or(&self.url)
    }
}

/// `[redis]`: the Redis pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Connection URL; may hold a password, so it never prints.
    pub url: SecretString,
    /// Pool size.
    pub pool_size: usize,
    /// Bound on waiting for, creating and using a pooled connection.
    pub timeout_ms: u64,
    /// Prefix put before every key this process touches (tests use one each).
    pub key_prefix: String,
}

impl RedisSettings {
    /// The pool timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}
