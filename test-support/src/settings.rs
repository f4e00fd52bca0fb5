//! Test [`Settings`]: the `test` profile of `config/`, the test's own
//! database and Redis key prefix, port 0, and fast worker timings where a test
//! asks for them.

use xentri_core::Settings;

use crate::services::{config_dir, redis_url};

/// A builder of test settings, as environment variables over a profile of
/// `config/` (later variables win).
#[derive(Debug, Clone)]
pub struct TestSettings {
    /// The profile over `default.toml` (`test` unless changed).
    profile: Option<String>,
    /// Variables, in the order they apply.
    vars: Vec<(String, String)>,
}

impl TestSettings {
    /// The `test` profile on `database_url` and `REDIS_URL`, with migrations
    /// not run on start (`#[sqlx::test]` has migrated the database) and
    /// every server on port 0.
    pub fn new(database_url: &str) -> Self {
        Self { profile: Some("test".to_owned()), vars: Vec::new() }
            .var("DATABASE_URL", database_url)
            .var("REDIS_URL", &redis_url())
            .var("XENTRI_DATABASE__MIGRATE_ON_START", "false")
            .var("XENTRI_API__PORT", "0")
            .var("XENTRI_WORKER__PORT", "0")
    }

    /// Keys under `prefix` (see [`crate::unique_key_prefix`]).
    pub fn key_prefix(self, prefix: &str) -> Self {
        self.var("XENTRI_REDIS__KEY_PREFIX", prefix)
    }

    /// Another profile over `default.toml`, or none.
    pub fn profile(mut self, profile: Option<&str>) -> Self {
        self.profile = profile.map(str::to_owned);
        self
    }

    /// The built-in groups (cache invalidation, event counts, jobs, site builds) switched
    /// off: the test runs only the handlers it brings.
    pub fn without_builtin_groups(self) -> Self {
        self.vars(&[
            ("XENTRI_WORKER__GROUPS__CACHE_INVALIDATION__ENABLED", "false"),
            ("XENTRI_WORKER__GROUPS__EVENT_COUNTS__ENABLED", "false"),
            ("XENTRI_WORKER__GROUPS__JOBS__ENABLED", "false"),
            ("XENTRI_WORKER__GROUPS__SITE_BUILDS__ENABLED", "false"),
        ])
    }

    /// Worker timings in tenths of a second: reads block 100 ms, reclaim every
    /// 100 ms after 400 ms of visibility, retries after 100 ms then ×3 without
    /// jitter, the relay polls every 50 ms; and the built-in groups off.
    pub fn fast_worker(self) -> Self {
        self.vars(&[
            ("XENTRI_WORKER__BLOCK_MS", "100"),
            ("XENTRI_WORKER__RECLAIM_INTERVAL_MS", "100"),
            ("XENTRI_WORKER__VISIBILITY_TIMEOUT_MS", "400"),
            ("XENTRI_WORKER__TRIM_INTERVAL_MS", "100"),
            ("XENTRI_WORKER__SHUTDOWN_GRACE_MS", "5000"),
            ("XENTRI_WORKER__RETRY__BASE_MS", "100"),
            ("XENTRI_WORKER__RETRY__FACTOR", "3"),
            ("XENTRI_WORKER__RETRY__JITTER", "false"),
            ("XENTRI_WORKER__RELAY__POLL_INTERVAL_MS", "50"),
        ])
        .without_builtin_groups()
    }

    /// One variable (`DATABASE_URL`, `REDIS_URL` or `XENTRI_SECTION__KEY`).
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Several variables, in order.
    pub fn vars(mut self, vars: &[(&str, &str)]) -> Self {
        self.vars.extend(vars.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        self
    }

    /// The settings; panics with the cause when they do not load.
    pub fn load(self) -> Settings {
        Settings::load_from(&config_dir(), self.profile.as_deref(), self.vars)
            .unwrap_or_else(|error| panic!("test settings load: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_settings_carry_the_database_the_prefix_and_fast_timings() {
        let settings = TestSettings::new("postgres://u@localhost:5432/d")
            .key_prefix("t-x:")
            .fast_worker()
            .var("XENTRI_WORKER__BLOCK_MS", "7")
            .load();
        assert_eq!(settings.redis.key_prefix, "t-x:");
        assert_eq!(settings.worker.block_ms, 7, "a later variable wins");
        assert_eq!(settings.worker.reclaim_interval_ms, 100);
        assert!(!settings.worker.retry.jitter);
    }
}
