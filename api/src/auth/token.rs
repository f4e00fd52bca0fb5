//! Minting tokens: dev tokens for `api dev-token`, and service tokens (used by
//! our own services and the tests).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

use super::{Claims, DEV_ISSUER, DEV_KID};

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn claims(sub: String, org: Uuid, ttl: Duration) -> Claims {
    let iat = now();
    Claims { sub, exp: Some(iat + ttl.as_secs()), iat: Some(iat), org_id: Some(org.to_string()), ..Claims::default() }
}

/// A dev token for user `sub` in `org`, signed with the dev secret.
pub fn dev_token(secret: &str, org: Uuid, sub: &str, ttl: Duration) -> Result<String, MintError> {
    let mut claims = claims(sub.to_owned(), org, ttl);
    claims.iss = Some(DEV_ISSUER.to_owned());
    claims.org_role = Some("org:admin".to_owned());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(DEV_KID.to_owned());
    Ok(jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret.as_bytes()))?)
}

/// A service token for service `name` in `org`, signed with its secret.
pub fn service_token(secret: &str, name: &str, org: Uuid, ttl: Duration) -> Result<String, MintError> {
    let claims = claims(format!("service:{name}"), org, ttl);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(name.to_owned());
    Ok(jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret.as_bytes()))?)
}
