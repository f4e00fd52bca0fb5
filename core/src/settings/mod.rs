//! Typed settings, read once at start-up from layered configuration.
//!
//! Layers, later ones winning: `config/default.toml`, `config/$XENTRI_ENV.toml`,
//! environment variables `XENTRI_{SECTION}__{KEY}` (e.g. `XENTRI_API__PORT=9000`),
//! and the conventional `DATABASE_URL` and `REDIS_URL`. Nothing reads the
//! environment after [`Settings::load`] returns.

mod api;
mod cache;
mod stores;
mod streams;
mod telemetry;
mod worker;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use figment::Figment;
use figment::providers::{Format, Toml};

pub use api::*;
pub use cache::*;
pub use stores::*;
pub use streams::*;
pub use telemetry::*;
pub use worker::*;

/// Everything the binaries are configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The HTTP API.
    pub api: ApiSettings,
    /// PostgreSQL.
    pub database: DatabaseSettings,
    /// Redis.
    pub redis: RedisSettings,
    /// Token verification.
    pub auth: AuthSettings,
    /// Idempotency keys of mutating routes.
    pub idempotency: IdempotencySettings,
    /// Cached reads of the domain resources.
    pub cache: CacheSettings,
    /// Logs.
    pub telemetry: TelemetrySettings,
    /// Stream names, caps and DLQ alert thresholds.
    pub streams: StreamsSettings,
    /// The worker: relay, consumer groups, jobs.
    pub worker: WorkerSettings,
    /// Dead-letter archival.
    pub dlq: DlqSettings,
    /// DLQ alerts.
    pub alerts: AlertSettings,
}

/// A setting that is missing or invalid; its `Display` is the one line start-up
/// prints before it stops.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required key has no value in any layer.
    #[error("configuration error: missing key `{key}`")]
    Missing {
        /// Dotted key, e.g. `database.url`.
        key: String,
    },
    /// A key has a value that does not fit.
    #[error("configuration error: invalid value for `{key}`{origin}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `api.port`.
        key: String,
        /// Where the value came from, e.g. ` (from XENTRI_API__PORT)`.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key that no setting has (usually a typo).
    #[error("configuration error: unknown key `{key}`{origin}")]
    Unknown {
        /// Dotted key as written.
        key: String,
        /// Where it came from.
        origin: String,
    },
    /// The environment names a profile file that does not exist.
    #[error("configuration error: XENTRI_ENV={env} but {path} does not exist")]
    MissingProfile {
        /// The value of `XENTRI_ENV`.
        env: String,
        /// The file looked for.
        path: String,
    },
}

/// The profile read when `XENTRI_ENV` is not set: `config/local.toml`, for a
/// developer's machine (it sets the dev-token secret).
pub const LOCAL_PROFILE: &str = "local";

impl Settings {
    /// Reads `config/` under the current directory and the process environment;
    /// the profile is `$XENTRI_ENV`, or [`LOCAL_PROFILE`] when it is not set.
    pub fn load() -> Result<Self, ConfigError> {
        let env = std::env::var("XENTRI_ENV").ok().filter(|e| !e.is_empty());
        Self::load_from(Path::new("config"), Some(env.as_deref().unwrap_or(LOCAL_PROFILE)), std::env::vars())
    }

    /// Reads `dir/default.toml`, then `dir/{env}.toml` when `env` is given, then
    /// the given environment variables. Separated from [`Settings::load`] so tests
    /// can pass their own environment.
    pub fn load_from(
        dir: &Path,
        env: Option<&str>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::new().merge(Toml::file_exact(dir.join("default.toml")));
        if let Some(env) = env.filter(|e| !e.is_empty()) {
            let path: PathBuf = dir.join(format!("{env}.toml"));
            if !path.exists() {
                return Err(ConfigError::MissingProfile { env: env.to_owned(), path: path.display().to_string() });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        for (name, value) in vars {
            let key = match name.as_str() {
                "DATABASE_URL" => "database.url".to_owned(),
                "DATABASE_MIGRATE_URL" => "database.migrate_url".to_owned(),
                "REDIS_URL" => "redis.url".to_owned(),
                _ => match name.strip_prefix("XENTRI_") {
                    None | Some("ENV") => continue,
                    Some(rest) if rest.contains("__") => rest.to_ascii_lowercase().replace("__", "."),
                    Some(rest) => {
                        return Err(ConfigError::Unknown {
                            key: rest.to_ascii_lowercase(),
                            origin: format!(" (from {name}; use XENTRI_SECTION__KEY)"),
                        });
                    }
                },
            };
            figment = figment.merge(EnvVar { name, key, value });
        }
        figment.extract::<Settings>().map_err(from_figment)?.validated()
    }

    fn validated(mut self) -> Result<Self, ConfigError> {
        // An empty value switches a layered optional setting off again.
        self.alerts.webhook_url = self.alerts.webhook_url.filter(|u| !u.is_empty());
        self.worker.pause_at = self.worker.pause_at.filter(|p| !p.is_empty());
        self.worker.panic_at = self.worker.panic_at.filter(|p| !p.is_empty());
        self.auth.jwks_path = self.auth.jwks_path.filter(|p| !p.as_os_str().is_empty());
        self.auth.jwks_url = self.auth.jwks_url.filter(|u| !u.is_empty());
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: key.to_owned(),
            origin: String::new(),
            reason: reason.to_owned(),
        };
        use secrecy::ExposeSecret;
        self.database.migrate_url = self.database.migrate_url.take().filter(|u| !u.expose_secret().is_empty());
        if self.database.test_allow_privileged_login && !(self.api.host.is_loopback() && self.worker.host.is_loopback())
        {
            return Err(invalid(
                "database.test_allow_privileged_login",
                "is for tests only and refused unless api.host and worker.host are loopback addresses",
            ));
        }
        if self.api.append_writers == 0 {
            return Err(invalid("api.append_writers", "must be at least 1"));
        }
        if !(1..=1000).contains(&self.api.append_batch_max) {
            return Err(invalid("api.append_batch_max", "must be from 1 to 1000"));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.redis.pool_size == 0 {
            return Err(invalid("redis.pool_size", "must be at least 1"));
        }
        if self.auth.leeway_secs > 60 {
            return Err(invalid("auth.leeway_secs", "must be at most 60"));
        }
        if self.auth.jwks_path.is_some() && self.auth.jwks_url.is_some() {
            return Err(invalid("auth.jwks_url", "set either auth.jwks_path or auth.jwks_url, not both"));
        }
        if let Some(url) = &self.auth.jwks_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(invalid("auth.jwks_url", "must be an http(s) URL"));
        }
        self.auth.issuer = self.auth.issuer.take().filter(|i| !i.is_empty());
        self.auth.audience = self.auth.audience.take().filter(|a| !a.is_empty());
        self.auth.authorized_parties.retain(|p| !p.is_empty());
        if (self.auth.jwks_path.is_some() || self.auth.jwks_url.is_some()) && self.auth.issuer.is_none() {
            return Err(invalid(
                "auth.issuer",
                "is required with a JWKS: user tokens are accepted only from the configured issuer",
            ));
        }
        if self.auth.jwks_ttl_secs == 0 {
            return Err(invalid("auth.jwks_ttl_secs", "must be at least 1"));
        }
        let retry = &self.worker.retry;
        if retry.max_attempts == 0 {
            return Err(invalid("worker.retry.max_attempts", "must be at least 1"));
        }
        if !(retry.factor >= 1.0 && retry.factor.is_finite()) {
            return Err(invalid("worker.retry.factor", "must be a number of at least 1"));
        }
        if retry.max_ms < retry.base_ms {
            return Err(invalid("worker.retry.max_ms", "must be at least worker.retry.base_ms"));
        }
        if self.worker.max_deliveries == 0 {
            return Err(invalid("worker.max_deliveries", "must be at least 1"));
        }
        let jobs = &self.worker.jobs;
        if !(1..=10_000).contains(&jobs.purge_chunk_rows) {
            return Err(invalid("worker.jobs.purge_chunk_rows", "must be from 1 to 10000"));
        }
        // Too short a retention forgets processed events that can still be
        // delivered again, and their handlers' effects happen twice.
        if jobs.processed_retention() < Duration::from_secs(86_400)
            || jobs.processed_retention() <= self.worker.redelivery_window()
        {
            return Err(invalid(
                "worker.jobs.processed_retention_secs",
                &format!(
                    "must be at least 86400 (a day) and longer than the redelivery window ({} s: \
                     worker.max_deliveries x (visibility_timeout_ms + reclaim_interval_ms) + \
                     worker.retry.max_attempts x worker.retry.max_ms)",
                    self.worker.redelivery_window().as_secs()
                ),
            ));
        }
        if self.worker.read_count == 0 {
            return Err(invalid("worker.read_count", "must be at least 1"));
        }
        if self.worker.relay.batch_size < 1 {
            return Err(invalid("worker.relay.batch_size", "must be at least 1"));
        }
        for (name, group) in &self.worker.groups {
            if group.concurrency == 0 {
                return Err(invalid(&format!("worker.groups.{name}.concurrency"), "must be at least 1"));
            }
        }
        let names: Vec<&str> = crate::stream::Family::ALL
            .iter()
            .flat_map(|f| [self.streams.family(*f).work.as_str(), self.streams.family(*f).dlq.as_str()])
            .collect();
        if names.iter().any(|n| n.is_empty()) || names.iter().collect::<std::collections::HashSet<_>>().len() != 6 {
            return Err(invalid("streams", "the six work and DLQ stream names must be distinct and non-empty"));
        }
        if self.cache.soul_ttl_secs == 0 {
            return Err(invalid("cache.soul_ttl_secs", "must be at least 1"));
        }
        if self.cache.leads_list_ttl_secs == 0 {
            return Err(invalid("cache.leads_list_ttl_secs", "must be at least 1"));
        }
        if self.cache.site_ttl_secs == 0 {
            return Err(invalid("cache.site_ttl_secs", "must be at least 1"));
        }
        if self.api.body_limit_bytes == 0 {
            return Err(invalid("api.body_limit_bytes", "must be at least 1"));
        }
        if self.api.bulk_body_limit_bytes < self.api.body_limit_bytes {
            return Err(invalid("api.bulk_body_limit_bytes", "must be at least api.body_limit_bytes"));
        }
        // Zero would close every connection, or answer every body 408, at once.
        for (key, ms) in [
            ("api.header_read_timeout_ms", self.api.header_read_timeout_ms),
            ("api.body_read_timeout_ms", self.api.body_read_timeout_ms),
            ("api.keep_alive_timeout_ms", self.api.keep_alive_timeout_ms),
        ] {
            if ms < 100 {
                return Err(invalid(key, "must be at least 100"));
            }
        }
        if !(1..=1_000_000).contains(&self.api.max_connections) {
            return Err(invalid("api.max_connections", "must be from 1 to 1000000"));
        }
        Ok(self)
    }
}

/// One environment variable as a configuration layer, so an error can name it.
struct EnvVar {
    name: String,
    key: String,
    value: String,
}

impl figment::Provider for EnvVar {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        // Parsed the way figment parses environment values: "9000" is a number,
        // "true" a boolean, anything else a string.
        let value: figment::value::Value =
            self.value.parse().unwrap_or_else(|_| figment::value::Value::from(self.value.clone()));
        let dict = figment::util::nest(&self.key, value)
            .into_dict()
            .ok_or_else(|| figment::Error::from(format!("{} does not name a key", self.name)))?;
        Ok(figment::Profile::Default.collect(dict))
    }
}

fn from_figment(error: figment::Error) -> ConfigError {
    let error = error.into_iter().next().unwrap_or_else(|| figment::Error::from("unknown".to_owned()));
    let origin = error
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(figment::Source::File(path)) => format!(" (in {})", path.display()),
            _ => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    let join = |path: &[String], last: Option<&str>| {
        let mut parts: Vec<&str> = path.iter().map(String::as_str).collect();
        parts.extend(last);
        parts.join(".")
    };
    match &error.kind {
        figment::error::Kind::MissingField(field) => ConfigError::Missing { key: join(&error.path, Some(field)) },
        // figment already ends the path with the unknown field's name.
        figment::error::Kind::UnknownField(..) => ConfigError::Unknown { key: join(&error.path, None), origin },
        kind => ConfigError::Invalid { key: join(&error.path, None), origin, reason: kind.to_string() },
    }
}

#[cfg(test)]
mod tests;
