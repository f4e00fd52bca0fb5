//! The user-token signing keys: a JWKS read from a file or fetched from a URL,
//! cached, and fetched again on an unknown `kid` at most once per interval
//! (keys rotate; a flood of made-up `kid`s must not become a flood of fetches).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Why keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// No key has this `kid` (or it is for another algorithm), even after a refetch.
    #[error("unknown signing key")]
    UnknownKey,
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

enum Source {
    File(PathBuf),
    Url { url: String, client: reqwest::Client },
}

type Keys = HashMap<String, (Algorithm, DecodingKey)>;

/// A cached key set.
pub struct Jwks {
    /// Where keys come from.
    source: Source,
    /// Keys by `kid`, replaced whole on each fetch.
    keys: RwLock<Arc<Keys>>,
    /// When keys were last fetched; also serialises fetches.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Least time between two fetches caused by unknown `kid`s.
    refetch_interval: Duration,
}

impl Jwks {
    /// Reads the file now: a missing or broken file stops start-up.
    pub async fn from_file(path: PathBuf, refetch_interval: Duration) -> Result<Self, JwksError> {
        let jwks = Self::new(Source::File(path), refetch_interval);
        let keys = jwks.fetch().await?;
        jwks.replace(keys);
        *jwks.last_fetch.lock().await = Some(Instant::now());
        Ok(jwks)
    }

    /// Fetches on first use, so start-up does not depend on the identity provider.
    pub fn from_url(url: String, refetch_interval: Duration) -> Result<Self, JwksError> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| JwksError::Client(e.to_string()))?;
        Ok(Self::new(Source::Url { url, client }, refetch_interval))
    }

    fn new(source: Source, refetch_interval: Duration) -> Self {
        Self { source, keys: RwLock::new(Arc::default()), last_fetch: tokio::sync::Mutex::new(None), refetch_interval }
    }

    /// The key for `kid`, usable with `alg`.
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, JwksError> {
        if let Some(key) = self.lookup(kid, alg) {
            return Ok(key);
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Another request may have fetched while we waited for the lock.
        if let Some(key) = self.lookup(kid, alg) {
            return Ok(key);
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            return Err(JwksError::UnknownKey);
        }
        *last_fetch = Some(Instant::now());
        let keys = self.fetch().await?;
        tracing::info!(keys = keys.len(), "jwks fetched");
        self.replace(keys);
        self.lookup(kid, alg).ok_or(JwksError::UnknownKey)
    }

    fn lookup(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().map(|k| k.clone()).unwrap_or_default();
        keys.get(kid).filter(|(key_alg, _)| *key_alg == alg).map(|(_, key)| key.clone())
    }

    fn replace(&self, keys: Keys) {
        if let Ok(mut current) = self.keys.write() {
            *current = Arc::new(keys);
        }
    }

    async fn fetch(&self) -> Result<Keys, JwksError> {
        let set: JwkSet = match &self.source {
            Source::File(path) => {
                let text =
                    tokio::fs::read(path).await.map_err(|source| JwksError::Read { path: path.clone(), source })?;
                serde_json::from_slice(&text)?
            }
            Source::Url { url, client } => client.get(url).send().await?.error_for_status()?.json().await?,
        };
        Ok(set.keys.iter().filter_map(usable).collect())
    }
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
