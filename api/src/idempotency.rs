//! Idempotency keys of mutating routes.
//!
//! The key is written in the same transaction as the mutation, so a key exists
//! exactly when its effect does; that transaction holds an advisory lock on
//! (org, key) until it ends, which tells a first request still in flight (409)
//! from a finished one. A finished one with the same request hash is replayed,
//! with another hash it is a 422. An append's key points at its event (the
//! answer is the event, which never changes); other answers are stored as
//! they were sent.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use uuid::Uuid;

use crate::db::OrgTx;
use crate::events;
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

/// What a live key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The hash of the request that stored it.
    pub request_hash: Vec<u8>,
    /// The answer to replay.
    pub response: StoredResponse,
}

impl StoredKey {
    /// The answer for a retry with `request_hash`: the stored one, or 422 for
    /// a different request under the same key.
    pub fn replay_for(self, request_hash: &[u8]) -> Result<StoredResponse, ApiError> {
        if self.request_hash == request_hash {
            Ok(self.response)
        } else {
            Err(Problem::new(
                ProblemKind::IdempotencyKeyReused,
                "This Idempotency-Key was used with a different request",
            )
            .into())
        }
    }
}

/// The problem for a key whose first request is still in flight.
pub fn in_flight() -> ApiError {
    Problem::new(
        ProblemKind::IdempotencyKeyInFlight,
        "A request with this Idempotency-Key is still being processed; retry shortly",
    )
    .into()
}

/// A key's row: request hash, status, stored body, the event it points at.
type KeyRow = (Vec<u8>, i16, Option<String>, Option<Uuid>);

/// Reads back the live answer under `key`, if there is one.
pub async fn stored(tx: &mut OrgTx, key: &IdempotencyKey) -> Result<Option<StoredKey>, ApiError> {
    let row: Option<KeyRow> =
        sqlx::query_as(xentri_core::sql::IDEMPOTENCY_ANSWER).bind(key.as_str()).fetch_optional(&mut **tx).await?;
    let Some((request_hash, status, body, event_id)) = row else {
        return Ok(None);
    };
    let body = match (body, event_id) {
        (Some(body), _) => body,
        (None, Some(event_id)) => {
            // The event is immutable: serialised again, it is the answer as first sent.
            let event = events::get(tx, event_id)
                .await?
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("idempotency key points at a missing event")))?;
            serde_json::to_string(&event).map_err(|e| ApiError::Internal(e.into()))?
        }
        (None, None) => return Err(ApiError::Internal(anyhow::anyhow!("idempotency key holds no answer"))),
    };
    let status = u16::try_from(status).unwrap_or(200);
    Ok(Some(StoredKey { request_hash, response: StoredResponse { status, body } }))
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
