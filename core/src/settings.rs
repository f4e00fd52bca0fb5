//! Typed settings, read once at start-up from layered configuration.
//!
//! Layers, later ones winning: `config/default.toml`, `config/$XENTRI_ENV.toml`,
//! environment variables `XENTRI_{SECTION}__{KEY}` (e.g. `XENTRI_API__PORT=9000`),
//! and the conventional `DATABASE_URL` and `REDIS_URL`. Nothing reads the
//! environment after [`Settings::load`] returns.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

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

/// `[dlq]`: archival of old dead letters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlqSettings {
    /// Dead letters older than this move to `dlq:archive:{dlq}:{date}`, seconds.
    pub archive_after_secs: u64,
    /// An archive key expires this long after its newest entry failed, seconds.
    pub archive_ttl_secs: u64,
    /// How often the worker archives, seconds.
    pub archive_interval_secs: u64,
}

/// `[alerts]`: DLQ growth and repeated correlation ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// How often the worker evaluates the alert conditions, seconds.
    pub evaluate_interval_secs: u64,
    /// The sliding window of the growth condition, seconds.
    pub window_secs: u64,
    /// A correlation id appearing this many times in one DLQ alerts.
    pub repeated_correlation_threshold: u32,
    /// Alertmanager's v2 alerts endpoint (e.g. `http://127.0.0.1:9093/api/v2/alerts`); unset: log and gauge only.
    pub webhook_url: Option<String>,
    /// A firing alert is sent again this often, seconds.
    pub resend_interval_secs: u64,
}

/// `[streams]`: the three families of SPEC.md "Streams".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsSettings {
    /// Entries every group has acknowledged are trimmed beyond this many per
    /// work stream; unacknowledged entries are never trimmed.
    pub work_cap: usize,
    /// Every appended event.
    pub events: FamilySettings,
    /// Background jobs.
    pub jobs: FamilySettings,
    /// Deliveries to systems outside the platform.
    pub sync: FamilySettings,
}

impl StreamsSettings {
    /// The settings of `family`.
    pub fn family(&self, family: crate::stream::Family) -> &FamilySettings {
        match family {
            crate::stream::Family::Events => &self.events,
            crate::stream::Family::Jobs => &self.jobs,
            crate::stream::Family::Sync => &self.sync,
        }
    }

    /// The family whose work stream is `stream`.
    pub fn family_of_work(&self, stream: &str) -> Option<crate::stream::Family> {
        crate::stream::Family::ALL.into_iter().find(|f| self.family(*f).work == stream)
    }
}

/// One stream family.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilySettings {
    /// Work stream key (before `redis.key_prefix`).
    pub work: String,
    /// Dead-letter stream key.
    pub dlq: String,
    /// More than this many dead letters within an hour raises an alert.
    pub alert_threshold: u32,
    /// The `severity` label of the alerts on this family's DLQ.
    pub alert_severity: Severity,
}

/// An alert's `severity` label, as Alertmanager routes on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look; pages no one.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The label value: `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// `[worker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Address of the worker's `/health` and `/metrics`.
    pub host: IpAddr,
    /// Port of the worker's `/health` and `/metrics`; 0 picks a free one.
    pub port: u16,
    /// Entries fetched per `XREADGROUP`.
    pub read_count: usize,
    /// How long one `XREADGROUP` blocks waiting for entries, ms.
    pub block_ms: u64,
    /// An entry pending this long on a consumer is reclaimed by another, ms.
    pub visibility_timeout_ms: u64,
    /// How often each group looks for entries to reclaim, ms.
    pub reclaim_interval_ms: u64,
    /// Deliveries (reclaims included) after which an entry is poison: DLQ.
    pub max_deliveries: u32,
    /// How long a Redis "processed" record is kept, seconds.
    pub processed_ttl_secs: u64,
    /// How long in-flight handlers may take to finish after a shutdown signal, ms.
    pub shutdown_grace_ms: u64,
    /// How often work streams are trimmed, ms.
    pub trim_interval_ms: u64,
    /// Retry of transient failures.
    pub retry: RetrySettings,
    /// The outbox relay.
    pub relay: RelaySettings,
    /// Scheduled jobs.
    pub jobs: JobsSettings,
    /// Restarts of the worker's tasks.
    pub supervisor: SupervisorSettings,
    /// Consumer groups by name; a built-in group runs when listed and enabled.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, GroupSettings>,
    /// Test hook, unset in every shipped profile: `point` or `point:n` parks
    /// the task that reaches the named point (the n-th time, default 1st) and
    /// logs `pause point reached`, so a crash test can SIGKILL the process at
    /// exactly that moment. The points are listed in the worker's `pause` module.
    #[serde(default)]
    pub pause_at: Option<String>,
    /// Test hook, unset in every shipped profile: tasks (`relay`,
    /// `lane.<group>`, comma-separated) that panic once when they first start,
    /// to show that the supervisor restarts them; `<task>:always` panics at
    /// every start, to show that the supervisor gives it up.
    #[serde(default)]
    pub panic_at: Option<String>,
}

/// `[worker.retry]`: exponential backoff with jitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// First delay, ms.
    pub base_ms: u64,
    /// Each delay is the previous times this.
    pub factor: f32,
    /// Largest delay, ms.
    pub max_ms: u64,
    /// Handler attempts before the entry is dead-lettered.
    pub max_attempts: u32,
    /// Randomise delays (recommended: keeps retries of many entries apart).
    pub jitter: bool,
}

/// `[worker.relay]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Run the relay in this worker.
    pub enabled: bool,
    /// Outbox rows published per round trip.
    pub batch_size: i64,
    /// Polling fallback when no notification arrives, ms.
    pub poll_interval_ms: u64,
}

/// `[worker.supervisor]`: a task that ends or panics is restarted after a
/// delay that doubles from `first_delay_ms` up to `max_delay_ms`; after
/// `max_restarts` restarts in a row (no run of `healthy_after_secs` between)
/// it is given up and the worker exits non-zero for its own supervisor
/// (systemd, Kubernetes) to restart it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSettings {
    /// First delay before a restart, ms.
    pub first_delay_ms: u64,
    /// Longest delay before a restart, ms.
    pub max_delay_ms: u64,
    /// A run this long resets the delay and the count, seconds.
    pub healthy_after_secs: u64,
    /// Restarts in a row before the task is given up.
    pub max_restarts: u32,
}

/// `[worker.jobs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    /// How often expired idempotency keys are purged, seconds.
    pub idempotency_purge_interval_secs: u64,
    /// How often processed records past their retention are purged, seconds.
    pub processed_purge_interval_secs: u64,
    /// How long a Postgres-store group's processed record (`processed_events`)
    /// is kept, seconds: a delivery of the event after that is handled again.
    /// At least a day, and longer than any redelivery (see
    /// [`WorkerSettings::redelivery_window`]).
    pub processed_retention_secs: u64,
    /// Most rows a purge deletes in one transaction (1 to 10,000).
    pub purge_chunk_rows: u32,
}

impl JobsSettings {
    /// The processed-record retention as a duration.
    pub fn processed_retention(&self) -> Duration {
        Duration::from_secs(self.processed_retention_secs)
    }
}

impl WorkerSettings {
    /// The longest an entry can keep being delivered after its first delivery:
    /// every delivery (`max_deliveries`, reclaims included) left pending for
    /// the visibility timeout and found by the next reclaim pass, plus the
    /// retry delays of its attempts. A processed record must outlive it.
    pub fn redelivery_window(&self) -> Duration {
        let per_delivery = self.visibility_timeout_ms.saturating_add(self.reclaim_interval_ms);
        let deliveries = per_delivery.saturating_mul(u64::from(self.max_deliveries));
        let retries = self.retry.max_ms.saturating_mul(u64::from(self.retry.max_attempts));
        Duration::from_millis(deliveries.saturating_add(retries))
    }
}

/// `[worker.groups.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// Run this group.
    pub enabled: bool,
    /// Handlers of this group running at once, per worker process.
    pub concurrency: usize,
}

/// `[api]`: where and how the HTTP API serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace_ms: u64,
    /// Tasks writing appends in batches (group commit), each holding at most
    /// one database connection at a time.
    pub append_writers: usize,
    /// Most appends written in one batch, one transaction.
    pub append_batch_max: usize,
    /// Most requests answered at once; past it a request is answered at once
    /// with a 503 `overloaded` problem and `Retry-After` instead of waiting in
    /// a queue without bound. `/health`, `/health/ready` and `/metrics` are
    /// never refused.
    pub max_concurrent_requests: usize,
    /// A request head (request line and headers) must arrive whole within
    /// this long of its first byte, else the connection is closed, in
    /// milliseconds.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive whole within this long of its head, else
    /// the request is answered 408 and the connection closed, in milliseconds.
    pub body_read_timeout_ms: u64,
    /// A connection with no request arriving or being answered is closed
    /// after this long, in milliseconds. Longer than the idle timeouts of load
    /// balancers and clients, so the api never closes a connection a client is
    /// just reusing.
    pub keep_alive_timeout_ms: u64,
    /// Most connections open at once. At the cap a new connection closes the
    /// one that has been without a request longest; when every connection is
    /// answering one, new connections wait in the listen backlog.
    pub max_connections: usize,
    /// How long a `/health/ready` answer is reused before PostgreSQL and Redis
    /// are pinged again, in milliseconds.
    pub readiness_cache_ms: u64,
}

impl ApiSettings {
    /// The shutdown grace period as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The header read timeout as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The body read timeout as a duration.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// The keep-alive idle timeout as a duration.
    pub fn keep_alive_timeout(&self) -> Duration {
        Duration::from_millis(self.keep_alive_timeout_ms)
    }

    /// How long a readiness answer is reused, as a duration.
    pub fn readiness_cache(&self) -> Duration {
        Duration::from_millis(self.readiness_cache_ms)
    }
}

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

/// A list given as a TOML array or as one comma-separated string (the form an
/// environment variable takes).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(deserializer)? {
        ListOrCommas::List(list) => list,
        ListOrCommas::Commas(text) => text.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
    })
}

impl AuthSettings {
    /// The dev-token secret, unless unset or empty (a production profile sets
    /// `dev_secret = ""` to switch dev tokens off over the default).
    pub fn dev_secret(&self) -> Option<&SecretString> {
        use secrecy::ExposeSecret;
        self.dev_secret.as_ref().filter(|s| !s.expose_secret().is_empty())
    }
}

impl RedisSettings {
    /// The pool timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// `[auth]`: how tokens are verified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret for local dev tokens. Set only by the local and test
    /// profiles; when absent dev tokens are refused, and while set the api
    /// refuses to listen on anything but a loopback address.
    pub dev_secret: Option<SecretString>,
    /// Expected `iss` of user tokens: then the claim must be present and equal.
    /// Required when a JWKS is configured.
    pub issuer: Option<String>,
    /// Expected `aud` of user tokens: then the claim must be present and include it.
    pub audience: Option<String>,
    /// Accepted `azp` (Clerk's authorized party, the origin a session token
    /// was made for) of user tokens; when not empty the claim must be present
    /// and one of these.
    /// From the environment: a comma-separated list or a TOML array.
    #[serde(default, deserialize_with = "list_or_commas")]
    pub authorized_parties: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 60).
    pub leeway_secs: u64,
    /// JWKS file with the user-token signing keys (RS256/ES256).
    pub jwks_path: Option<PathBuf>,
    /// JWKS URL with the user-token signing keys, e.g. Clerk's
    /// `https://<frontend-api>/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// Least time between two JWKS fetches caused by unknown `kid`s, in seconds.
    pub jwks_refetch_interval_secs: u64,
    /// How long fetched keys are used before they are fetched again in the
    /// background, in seconds, unless the JWKS answer's `Cache-Control: max-age`
    /// says otherwise. A key the provider withdrew stops verifying by then.
    pub jwks_ttl_secs: u64,
    /// Longest lifetime (`exp - iat`) a service token may have, in seconds.
    pub service_token_max_ttl_secs: u64,
    /// HS256 secret per service name: a service token has `kid` = its name and
    /// `sub` = `service:<name>`.
    #[serde(default)]
    pub services: std::collections::BTreeMap<String, SecretString>,
}

/// `[idempotency]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencySettings {
    /// How long a stored response is replayed for, in seconds.
    pub ttl_secs: u64,
}

/// `[telemetry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// A `tracing` filter directive, e.g. `info` or `info,sqlx=warn`.
    pub log_filter: String,
    /// `json` for machines, `pretty` for a terminal.
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
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
        if self.api.body_limit_bytes == 0 {
            return Err(invalid("api.body_limit_bytes", "must be at least 1"));
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
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn config_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
    }

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Settings::load_from(&config_dir(), None, vars)
    }

    #[test]
    fn defaults_load() {
        let settings = load(&[]).expect("default config loads");
        assert_eq!(settings.api.port, 8080);
    }

    /// The user and database a URL setting names.
    fn login(url: &SecretString) -> (String, Option<String>) {
        let options: sqlx::postgres::PgConnectOptions = url.expose_secret().parse().expect("a PostgreSQL URL");
        (options.get_username().to_owned(), options.get_database().map(str::to_owned))
    }

    #[test]
    fn the_run_profile_logs_in_as_the_service_role_and_migrates_as_the_owner() {
        let database = load(&[]).expect("defaults").database;
        assert_eq!(login(&database.url), (crate::roles::SERVICE_LOGIN.to_owned(), Some("xentri".to_owned())));
        let owner = database.migrate_url.as_ref().expect("the run profile has an owner URL for migrations");
        assert_eq!(login(owner), ("postgres".to_owned(), Some("xentri".to_owned())));
        assert!(!database.test_allow_privileged_login);

        let production = |vars: &[(&str, &str)]| {
            let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
            Settings::load_from(&config_dir(), Some("production"), vars)
        };
        let database = production(&[("DATABASE_URL", "postgres://xentri_service:pw@db.internal/xentri")])
            .expect("production loads")
            .database;
        assert!(database.migrate_url.is_none(), "production migrates only with DATABASE_MIGRATE_URL");
        assert_eq!(login(database.owner_url()).0, "xentri_service");
        assert!(!database.test_allow_privileged_login);
        let database = production(&[
            ("DATABASE_URL", "postgres://xentri_service:pw@db.internal/xentri"),
            ("DATABASE_MIGRATE_URL", "postgres://owner:hunter2@db.internal/xentri"),
        ])
        .expect("production loads");
        assert_eq!(login(database.database.owner_url()).0, "owner");
        assert!(!format!("{database:?}").contains("hunter2"));

        let test = Settings::load_from(&config_dir(), Some("test"), Vec::new()).expect("test profile").database;
        assert!(test.test_allow_privileged_login, "tests reach their databases as postgres");
        assert!(test.migrate_url.is_none(), "tests migrate with DATABASE_URL");
    }

    #[test]
    fn a_role_name_is_not_a_setting() {
        let err = load(&[("XENTRI_DATABASE__API_ROLE", "postgres")]).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "configuration error: unknown key `database.api_role` (from XENTRI_DATABASE__API_ROLE)"
        );
    }

    #[test]
    fn a_privileged_login_is_allowed_only_to_tests_on_loopback() {
        load(&[("XENTRI_DATABASE__TEST_ALLOW_PRIVILEGED_LOGIN", "true")]).expect("on loopback");
        for host in ["XENTRI_API__HOST", "XENTRI_WORKER__HOST"] {
            let err = load(&[("XENTRI_DATABASE__TEST_ALLOW_PRIVILEGED_LOGIN", "true"), (host, "0.0.0.0")])
                .expect_err("must fail");
            assert!(err.to_string().contains("`database.test_allow_privileged_login`"), "{err}");
        }
    }

    #[test]
    fn environment_overrides_files() {
        let settings = load(&[
            ("XENTRI_API__PORT", "9123"),
            ("DATABASE_URL", "postgres://u@h/db"),
            ("REDIS_URL", "redis://h:1/2"),
        ])
        .expect("overrides load");
        assert_eq!(settings.api.port, 9123);
        assert_eq!(settings.database.url.expose_secret(), "postgres://u@h/db");
        assert_eq!(settings.redis.url.expose_secret(), "redis://h:1/2");
    }

    #[test]
    fn invalid_value_names_key_and_origin() {
        let err = load(&[("XENTRI_API__PORT", "eighty")]).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "configuration error: invalid value for `api.port` (from XENTRI_API__PORT): \
             invalid type: found string \"eighty\", expected u16"
        );
    }

    #[test]
    fn missing_key_is_named() {
        let dir = std::env::temp_dir().join(format!("xentri-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let default = std::fs::read_to_string(config_dir().join("default.toml")).expect("default.toml");
        let without_url: String = default
            .lines()
            .filter(|line| !line.starts_with("url = \"postgres"))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(dir.join("default.toml"), without_url).expect("write");
        let err = Settings::load_from(&dir, None, Vec::new()).expect_err("must fail");
        assert_eq!(err.to_string(), "configuration error: missing key `database.url`");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load(&[("XENTRI_API__PROT", "1")]).expect_err("must fail");
        assert_eq!(err.to_string(), "configuration error: unknown key `api.prot` (from XENTRI_API__PROT)");
        let err = load(&[("XENTRI_PORT", "1")]).expect_err("must fail");
        assert!(err.to_string().starts_with("configuration error: unknown key `port`"), "{err}");
    }

    #[test]
    fn semantic_checks_name_their_key() {
        let err = load(&[("XENTRI_AUTH__LEEWAY_SECS", "120")]).expect_err("must fail");
        assert_eq!(err.to_string(), "configuration error: invalid value for `auth.leeway_secs`: must be at most 60");
    }

    #[test]
    fn purges_are_bounded_and_keep_processed_records_past_any_redelivery() {
        let settings = load(&[]).expect("default config loads");
        assert_eq!(settings.worker.jobs.processed_retention_secs, 7 * 86_400);
        assert!(settings.worker.jobs.processed_retention() > settings.worker.redelivery_window());
        let err = load(&[("XENTRI_WORKER__JOBS__PURGE_CHUNK_ROWS", "0")]).expect_err("must fail");
        assert!(err.to_string().contains("`worker.jobs.purge_chunk_rows`: must be from 1 to 10000"), "{err}");
        let err = load(&[("XENTRI_WORKER__JOBS__PURGE_CHUNK_ROWS", "100000")]).expect_err("must fail");
        assert!(err.to_string().contains("`worker.jobs.purge_chunk_rows`"), "{err}");
        let err = load(&[("XENTRI_WORKER__JOBS__PROCESSED_RETENTION_SECS", "3600")]).expect_err("must fail");
        assert!(err.to_string().contains("`worker.jobs.processed_retention_secs`: must be at least 86400"), "{err}");
        // Two days of retention against deliveries that can go on for longer.
        let err = load(&[
            ("XENTRI_WORKER__JOBS__PROCESSED_RETENTION_SECS", "172800"),
            ("XENTRI_WORKER__VISIBILITY_TIMEOUT_MS", "86400000"),
        ])
        .expect_err("must fail");
        assert!(err.to_string().contains("longer than the redelivery window (432055 s"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let settings = load(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).expect("loads");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("dev-secret"), "{debug}");
    }

    #[test]
    fn only_the_local_and_test_profiles_set_a_dev_secret() {
        assert!(load(&[]).expect("defaults").auth.dev_secret().is_none(), "default.toml sets no dev secret");
        let profile = |name: &str| {
            Settings::load_from(&config_dir(), Some(name), Vec::new())
                .expect("profile loads")
                .auth
                .dev_secret()
                .is_some()
        };
        assert!(profile(LOCAL_PROFILE));
        assert!(profile("test"));
        assert!(!profile("production"));
    }

    #[test]
    fn a_jwks_without_an_issuer_is_refused() {
        let err = load(&[("XENTRI_AUTH__JWKS_URL", "https://clerk.example.com/.well-known/jwks.json")])
            .expect_err("must fail");
        assert!(
            err.to_string().starts_with("configuration error: invalid value for `auth.issuer`: is required"),
            "{err}"
        );
        let err = load(&[("XENTRI_AUTH__JWKS_PATH", "config/jwks.json"), ("XENTRI_AUTH__ISSUER", "")])
            .expect_err("an empty issuer is no issuer");
        assert!(err.to_string().contains("`auth.issuer`"), "{err}");
        let settings = load(&[
            ("XENTRI_AUTH__JWKS_URL", "https://clerk.example.com/.well-known/jwks.json"),
            ("XENTRI_AUTH__ISSUER", "https://clerk.example.com"),
        ])
        .expect("with an issuer");
        assert_eq!(settings.auth.issuer.as_deref(), Some("https://clerk.example.com"));
    }

    #[test]
    fn authorized_parties_are_a_list_or_comma_separated() {
        let settings = load(&[("XENTRI_AUTH__AUTHORIZED_PARTIES", "https://a.example, https://b.example")])
            .expect("comma-separated");
        assert_eq!(settings.auth.authorized_parties, ["https://a.example", "https://b.example"]);
        let settings = load(&[("XENTRI_AUTH__AUTHORIZED_PARTIES", r#"["https://a.example"]"#)]).expect("a TOML array");
        assert_eq!(settings.auth.authorized_parties, ["https://a.example"]);
        assert!(load(&[]).expect("defaults").auth.authorized_parties.is_empty());
    }

    #[test]
    fn slow_client_timeouts_and_the_connection_cap_refuse_zero() {
        let api = load(&[]).expect("defaults").api;
        assert_eq!(api.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(api.max_connections, 1024);
        for key in [
            "XENTRI_API__HEADER_READ_TIMEOUT_MS",
            "XENTRI_API__BODY_READ_TIMEOUT_MS",
            "XENTRI_API__KEEP_ALIVE_TIMEOUT_MS",
            "XENTRI_API__MAX_CONNECTIONS",
        ] {
            let err = load(&[(key, "0")]).expect_err("zero is refused");
            assert!(err.to_string().contains("api."), "{key}: {err}");
        }
    }
}
