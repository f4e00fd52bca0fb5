//! What a mutating request of a domain resource brings besides its body: the
//! caller, its `Idempotency-Key` with the request's hash, and the trace and
//! correlation ids every event it appends carries.

use http::HeaderMap;
use uuid::Uuid;
use xentri_core::event::validate_id;

use crate::auth::Principal;
use crate::edge::RequestContext;
use crate::idempotency::{self, IdempotencyKey};
use crate::problem::{ApiError, FieldError, Problem, ProblemKind};

/// The request header that groups the events of one flow; echoed on answers.
/// Generated (UUID v7) when absent.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// A mutating request, read from its headers.
#[derive(Debug, Clone)]
pub struct Mutating {
    /// Who asks, for which org.
    pub principal: Principal,
    /// Its `Idempotency-Key`.
    pub key: IdempotencyKey,
    /// The request's hash, stored with the key.
    pub request_hash: Vec<u8>,
    /// The W3C trace id its events carry.
    pub trace_id: String,
    /// The correlation id its events carry.
    pub correlation_id: String,
}

impl Mutating {
    /// Reads a mutating request on `route` (`method` and path template):
    /// `Idempotency-Key` required, `x-correlation-id` checked. The hash covers
    /// the method, the route, the canonical body and `If-Match`, so the same
    /// key with another body or another precondition is another request (422).
    pub fn read(
        principal: Principal,
        context: &RequestContext,
        headers: &HeaderMap,
        method: &str,
        route: &str,
        canonical_body: &serde_json::Value,
    ) -> Result<Self, ApiError> {
        let key = IdempotencyKey::from_headers(headers)?;
        let correlation_id = correlation_id(headers)?;
        let if_match = headers.get(http::header::IF_MATCH).and_then(|v| v.to_str().ok());
        let hashed = serde_json::json!({"body": canonical_body, "if_match": if_match});
        let request_hash = idempotency::request_hash(method, route, &hashed);
        let trace_id = trace_id(context, &principal);
        Ok(Self { principal, key, request_hash, trace_id, correlation_id })
    }

    /// The org the request acts for.
    pub fn org_id(&self) -> Uuid {
        self.principal.org_id
    }
}

/// The trace id a request's events carry: the request's, unless the edge
/// started it (no `traceparent`) and the token carries one (service tokens
/// propagate theirs).
pub fn trace_id(context: &RequestContext, principal: &Principal) -> String {
    match (&context.trace.parent_span_id, &principal.trace_id) {
        (None, Some(carried)) => carried.clone(),
        _ => context.trace.trace_id.clone(),
    }
}

/// The request's `x-correlation-id` (1 to 128 characters of
/// `A-Z a-z 0-9 . _ : -`), or a new UUID v7.
pub fn correlation_id(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(CORRELATION_HEADER) else {
        return Ok(Uuid::now_v7().to_string());
    };
    let text = value.to_str().unwrap_or("").trim();
    validate_id("correlation_id", text).map_err(|e| {
        let mut problem =
            Problem::new(ProblemKind::MalformedRequest, format!("Header {CORRELATION_HEADER} {}", e.message));
        problem.errors.push(FieldError { field: format!("header.{CORRELATION_HEADER}"), message: e.message });
        ApiError::from(problem)
    })?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids() {
        let mut headers = HeaderMap::new();
        assert!(correlation_id(&headers).is_ok_and(|id| id.parse::<Uuid>().is_ok()), "generated when absent");
        headers.insert(CORRELATION_HEADER, "flow-42".parse().expect("header"));
        assert_eq!(correlation_id(&headers).ok().as_deref(), Some("flow-42"));
        headers.insert(CORRELATION_HEADER, "a b".parse().expect("header"));
        assert!(correlation_id(&headers).is_err());
    }
}
