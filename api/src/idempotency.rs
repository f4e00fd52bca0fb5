//! Idempotency keys of mutating routes.
//!
//! Within the request's own transaction: a transaction-scoped advisory lock on
//! (org, key) tells a first request still in flight (409) from a finished one;
//! a finished one with the same request hash is replayed, with another hash it
//! is a 422. The stored response is written in the same transaction as the
//! mutation, so a key exists exactly when its effect does.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::db::OrgTx;
use crate::problem::{ApiError, Problem, ProblemKind};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header set on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 255;

/// A validated `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Reads the header: required, 1-255 visible ASCII characters.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let value = headers.get(HEADER).ok_or_else(|| {
            Problem::new(ProblemKind::IdempotencyKeyRequired, "Header Idempotency-Key is required on this request")
        })?;
        let text = value.to_str().unwrap_or("").trim();
        if text.is_empty() || text.len() > MAX_KEY_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Problem::new(
                ProblemKind::MalformedRequest,
                format!("Header Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters"),
            )
            .into());
        }
        Ok(Self(text.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 over the method, the route template and the canonical JSON body
/// (keys sorted, no whitespace), so a retry with reformatted JSON still matches.
pub fn request_hash(method: &str, route: &str, canonical_body: &serde_json::Value) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(route.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_body.to_string().as_bytes());
    hasher.finalize().to_vec()
}

/// A response stored under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body, byte for byte.
    pub body: String,
}

/// Claims `key` for this transaction: `Ok(None)` to go ahead, `Ok(Some(_))` to
/// replay, or the 409/422 problem.
pub async fn claim(tx: &mut OrgTx, key: &IdempotencyKey, hash: &[u8]) -> Result<Option<StoredResponse>, ApiError> {
    // One round trip for the lock and the look-up. The look-up's snapshot may
    // predate a first request that commits while we take the lock; then the
    // key insert in `store` conflicts and the caller starts over, and the
    // second pass sees the stored answer.
    let (locked, stored_hash, status, body): (bool, Option<Vec<u8>>, Option<i16>, Option<String>) = sqlx::query_as(
        "SELECT pg_try_advisory_xact_lock(hashtextextended(current_setting('app.org_id') || ':' || $1, 0)),
                k.request_hash, k.response_status, k.response_body
         FROM (SELECT 1) AS one
         LEFT JOIN idempotency_keys k ON k.key = $1 AND k.expires_at > now()",
    )
    .bind(key.as_str())
    .fetch_one(&mut **tx)
    .await?;
    if !locked {
        return Err(Problem::new(
            ProblemKind::IdempotencyKeyInFlight,
            "A request with this Idempotency-Key is still being processed; retry shortly",
        )
        .into());
    }
    match (stored_hash, status, body) {
        (Some(stored_hash), Some(status), Some(body)) if stored_hash == hash => {
            Ok(Some(StoredResponse { status: u16::try_from(status).unwrap_or(200), body }))
        }
        (Some(_), _, _) => Err(Problem::new(
            ProblemKind::IdempotencyKeyReused,
            "This Idempotency-Key was used with a different request",
        )
        .into()),
        _ => Ok(None),
    }
}

/// Stores the response under `key`, replacing an expired entry. `false` when a
/// live entry exists after all (the caller rolls back and retries).
pub async fn store(
    tx: &mut OrgTx,
    key: &IdempotencyKey,
    hash: &[u8],
    response: &StoredResponse,
    ttl_secs: u64,
) -> Result<bool, ApiError> {
    let stored = sqlx::query(
        "INSERT INTO idempotency_keys (org_id, key, request_hash, response_status, response_body, expires_at)
         VALUES (current_setting('app.org_id')::uuid, $1, $2, $3, $4, now() + make_interval(secs => $5))
         ON CONFLICT (org_id, key) DO UPDATE
            SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
                response_body = EXCLUDED.response_body, created_at = now(), expires_at = EXCLUDED.expires_at
          WHERE idempotency_keys.expires_at <= now()",
    )
    .bind(key.as_str())
    .bind(hash)
    .bind(i16::try_from(response.status).unwrap_or(200))
    .bind(&response.body)
    .bind(ttl_secs as f64)
    .execute(&mut **tx)
    .await?;
    Ok(stored.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let mut headers = HeaderMap::new();
        assert!(IdempotencyKey::from_headers(&headers).is_err());
        headers.insert(HEADER, "abc-123".parse().expect("header"));
        assert_eq!(IdempotencyKey::from_headers(&headers).map(|k| k.0).ok(), Some("abc-123".to_owned()));
        headers.insert(HEADER, "has space".parse().expect("header"));
        assert!(IdempotencyKey::from_headers(&headers).is_err());
        headers.insert(HEADER, "x".repeat(256).parse().expect("header"));
        assert!(IdempotencyKey::from_headers(&headers).is_err());
    }

    #[test]
    fn hash_ignores_formatting_but_not_content() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1, "a":[1,2]}"#).expect("json");
        let b: serde_json::Value = serde_json::from_str(r#"{ "a":[1,2],"b":1 }"#).expect("json");
        let c: serde_json::Value = serde_json::from_str(r#"{"a":[2,1],"b":1}"#).expect("json");
        assert_eq!(request_hash("POST", "/x", &a), request_hash("POST", "/x", &b));
        assert_ne!(request_hash("POST", "/x", &a), request_hash("POST", "/x", &c));
        assert_ne!(request_hash("POST", "/x", &a), request_hash("POST", "/y", &a));
    }
}
