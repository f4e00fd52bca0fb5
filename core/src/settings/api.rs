//! `[api]`, `[auth]` and `[idempotency]`: how the HTTP API serves and whom
//! it trusts.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

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
    /// Largest accepted body of a bulk route (`POST
    /// /api/v1/sales/leads:import`, up to 1,000 leads), in bytes; at least
    /// `body_limit_bytes`.
    pub bulk_body_limit_bytes: usize,
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
