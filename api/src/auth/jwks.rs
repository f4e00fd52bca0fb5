//! The user-token signing keys: a JWKS read from a file or fetched from a URL,
//! and kept fresh.
//!
//! - A background task fetches the set again after a TTL (`auth.jwks_ttl_secs`,
//!   or the answer's `Cache-Control: max-age`), and replaces the cached keys
//!   whole: a key the provider withdrew stops verifying after that refresh.
//! - A failed fetch keeps the keys already had and is retried after 1 s, 2 s,
//!   4 s, … up to the TTL; a URL is first fetched at start-up this way, so a
//!   provider that is briefly away at start-up costs users about a second.
//! - A token with an unknown `kid` (a key rotated in since the last fetch)
//!   may cause a fetch, but only when none began in the last
//!   `auth.jwks_refetch_interval_secs`, so a flood of made-up `kid`s is not a
//!   flood of fetches.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

/// The delay before the first retry of a failed fetch; it doubles per failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Why keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// No key has this `kid` (or it is for another algorithm), even after a refetch.
    #[error("unknown signing key")]
    UnknownKey,
    /// No key set has been fetched yet (the first fetches failed).
    #[error("no signing keys fetched yet")]
    NotFetched,
    /// The file could not be read.
    #[error("cannot read the JWKS file {path}: {source}")]
    Read {
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The URL could not be fetched.
    #[error("cannot fetch the JWKS: {0}")]
    Fetch(#[from] reqwest::Error),
    /// The document is not a JWKS.
    #[error("the JWKS is not valid JSON Web Key Set JSON: {0}")]
    Parse(#[from] serde_json::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the JWKS HTTP client: {0}")]
    Client(String),
}

/// How often keys are fetched.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Keys are fetched again after this long, unless the answer's
    /// `Cache-Control: max-age` says otherwise.
    pub ttl: Duration,
    /// Least time between two fetches caused by unknown `kid`s.
    pub refetch_interval: Duration,
    /// The first retry delay after a failed fetch; doubles up to `ttl`.
    pub first_retry: Duration,
}

enum Source {
    File(PathBuf),
    Url { url: String, client: reqwest::Client },
}

type Keys = HashMap<String, (Algorithm, DecodingKey)>;

/// A fetched key set and how long it may be used.
struct Fetched {
    keys: Keys,
    /// `Cache-Control: max-age`, when the answer had one.
    max_age: Option<Duration>,
}

/// What the fetches have done so far; its lock also serialises them.
#[derive(Default)]
struct FetchState {
    /// When the last fetch began, whatever called for it.
    last_fetch: Option<Instant>,
    /// Whether any fetch has succeeded.
    fetched: bool,
}

struct Inner {
    source: Source,
    timing: Timing,
    /// Keys by `kid`, replaced whole on each successful fetch.
    keys: RwLock<Arc<Keys>>,
    state: tokio::sync::Mutex<FetchState>,
}

/// A cached key set, refreshed in the background while it is alive.
pub struct Jwks {
    inner: Arc<Inner>,
}

impl Jwks {
    /// Reads the file now (a missing or broken file stops start-up), then
    /// again every TTL.
    pub async fn from_file(path: PathBuf, timing: Timing) -> Result<Self, JwksError> {
        let jwks = Self::new(Source::File(path), timing);
        let ttl = {
            let mut state = jwks.inner.state.lock().await;
            jwks.inner.refresh(&mut state).await?
        };
        tokio::spawn(refresh_forever(Arc::downgrade(&jwks.inner), ttl));
        Ok(jwks)
    }

    /// Fetches in the background from now on, so start-up does not depend on
    /// the identity provider.
    pub fn from_url(url: String, timing: Timing) -> Result<Self, JwksError> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| JwksError::Client(e.to_string()))?;
        let jwks = Self::new(Source::Url { url, client }, timing);
        tokio::spawn(refresh_forever(Arc::downgrade(&jwks.inner), Duration::ZERO));
        Ok(jwks)
    }

    fn new(source: Source, timing: Timing) -> Self {
        let inner = Inner { source, timing, keys: RwLock::new(Arc::default()), state: Default::default() };
        Self { inner: Arc::new(inner) }
    }

    /// The key for `kid`, usable with `alg`.
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, JwksError> {
        let inner = &self.inner;
        if let Some(key) = inner.lookup(kid, alg) {
            return Ok(key);
        }
        let mut state = inner.state.lock().await;
        // Another request (or the refresher) may have fetched while we waited.
        if let Some(key) = inner.lookup(kid, alg) {
            return Ok(key);
        }
        if state.last_fetch.is_some_and(|at| at.elapsed() < inner.timing.refetch_interval) {
            return Err(if state.fetched { JwksError::UnknownKey } else { JwksError::NotFetched });
        }
        inner.refresh(&mut state).await?;
        inner.lookup(kid, alg).ok_or(JwksError::UnknownKey)
    }
}

impl Inner {
    fn lookup(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().map(|k| k.clone()).unwrap_or_default();
        keys.get(kid).filter(|(key_alg, _)| *key_alg == alg).map(|(_, key)| key.clone())
    }

    /// Fetches and replaces the keys; returns how long they may be used.
    async fn refresh(&self, state: &mut FetchState) -> Result<Duration, JwksError> {
        state.last_fetch = Some(Instant::now());
        let fetched = self.fetch().await?;
        tracing::info!(keys = fetched.keys.len(), "jwks fetched");
        if let Ok(mut current) = self.keys.write() {
            *current = Arc::new(fetched.keys);
        }
        state.fetched = true;
        Ok(fetched.max_age.unwrap_or(self.timing.ttl).max(Duration::from_secs(1)))
    }

    async fn fetch(&self) -> Result<Fetched, JwksError> {
        let (set, max_age): (JwkSet, _) = match &self.source {
            Source::File(path) => {
                let text =
                    tokio::fs::read(path).await.map_err(|source| JwksError::Read { path: path.clone(), source })?;
                (serde_json::from_slice(&text)?, None)
            }
            Source::Url { url, client } => {
                let response = client.get(url).send().await?.error_for_status()?;
                let max_age = response
                    .headers()
                    .get_all(reqwest::header::CACHE_CONTROL)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(max_age);
                let body = response.bytes().await?;
                (serde_json::from_slice(&body)?, max_age)
            }
        };
        Ok(Fetched { keys: set.keys.iter().filter_map(usable).collect(), max_age })
    }
}

/// Refreshes the keys every TTL, retrying failures after 1 s, 2 s, 4 s, … (up
/// to the TTL), until the [`Jwks`] is dropped.
async fn refresh_forever(inner: Weak<Inner>, first_delay: Duration) {
    let mut delay = first_delay;
    let mut failures: u32 = 0;
    loop {
        tokio::time::sleep(delay).await;
        let Some(inner) = inner.upgrade() else { return };
        let mut state = inner.state.lock().await;
        delay = match inner.refresh(&mut state).await {
            Ok(ttl) => {
                failures = 0;
                ttl
            }
            Err(error) => {
                let retry = retry_delay(inner.timing, failures);
                failures = failures.saturating_add(1);
                tracing::warn!(error = %error, retry_in_ms = retry.as_millis() as u64, "jwks fetch failed; keeping the keys already had");
                retry
            }
        };
    }
}

/// The delay before retrying after `failures` failures in a row (0 = first).
fn retry_delay(timing: Timing, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.min(20));
    timing.first_retry.saturating_mul(factor).min(timing.ttl.max(timing.first_retry))
}

/// `max-age=N` of one `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value
        .split(',')
        .find_map(|directive| {
            let (name, seconds) = directive.trim().split_once('=')?;
            name.trim().eq_ignore_ascii_case("max-age").then(|| seconds.trim().trim_matches('"').parse().ok()).flatten()
        })
        .map(Duration::from_secs)
}

/// A JWKS entry we can verify with: it has a `kid` and is an RSA key (RS256) or
/// a P-256 key (ES256). Anything else is skipped.
fn usable(jwk: &Jwk) -> Option<(String, (Algorithm, DecodingKey))> {
    let kid = jwk.common.key_id.clone()?;
    let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, (alg, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("public, max-age=3600"), Some(Duration::from_secs(3600)));
        assert_eq!(max_age("Max-Age = 5 , must-revalidate"), Some(Duration::from_secs(5)));
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn failed_fetches_are_retried_from_one_second_doubling_up_to_the_ttl() {
        let timing = Timing {
            ttl: Duration::from_secs(600),
            refetch_interval: Duration::from_secs(60),
            first_retry: FIRST_RETRY,
        };
        let delays: Vec<u64> = (0..12).map(|n| retry_delay(timing, n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(retry_delay(timing, u32::MAX), Duration::from_secs(600));
    }
}
