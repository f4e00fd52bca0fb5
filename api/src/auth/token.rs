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

/// Parses `90s`, `15m`, `1h`, `7d` (or plain seconds).
pub fn parse_ttl(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number.checked_mul(60)?,
        "h" => number.checked_mul(3600)?,
        "d" => number.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_ttl("0s"), None);
        assert_eq!(parse_ttl("1y"), None);
        assert_eq!(parse_ttl("h"), None);
    }
}
