//! What a request to the events routes says, parsed and checked: the body of
//! an append ([`NewEventBody`]) and the query of a list ([`ListQuery`]).
//!
//! These types are also what the OpenAPI document is generated from, so the
//! document states the rules these parsers enforce. Every field error is
//! collected and reported at once.

use chrono::{DateTime, Utc};
use http::HeaderMap;
use utoipa::ToSchema;
use xentri_core::contracts::Contracts;
use xentri_core::event::validate_id;
use xentri_core::store::Position;
use xentri_core::{EventType, TypeFilter};

use crate::problem::{ApiError, FieldError, Problem, ProblemKind};

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 1000;

/// A new event, as posted. Unknown fields are refused; every field error is
/// reported at once.
// `deny_unknown_fields` is read by utoipa only (the body is parsed by
// `parse_new_event`, not serde): it states `additionalProperties: false`.
#[derive(Debug, ToSchema)]
#[schema(as = NewEvent)]
#[serde(deny_unknown_fields)]
pub struct NewEventBody {
    /// `xentri.{boundedContext}[.{entity}].{action}.v{N}`: lower-case words of
    /// `a-z`, `0-9` and `_` that start with a letter, at most 255 characters.
    #[schema(rename = "type", value_type = String, example = "xentri.soul.updated.v1", max_length = 255,
        pattern = r"^xentri\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,2}\.v[1-9][0-9]*$")]
    pub event_type: EventType,
    /// Any JSON object, nested at most 126 levels deep (itself included):
    /// deeper is not read, a 400.
    #[schema(value_type = Object)]
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// Groups the events of one operation; generated (UUID v7) when absent or
    /// null. 1 to 128 characters of `A-Z a-z 0-9 . _ : -`.
    #[schema(example = "order-42", min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub correlation_id: Option<String>,
    /// The event that caused this one; absent or null when none. 1 to 128
    /// characters of `A-Z a-z 0-9 . _ : -`.
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub causation_id: Option<String>,
}

/// What to list: the list route's query parameters, as parsed
/// ([`parse_list_query`]) and as the OpenAPI document states them.
#[derive(Debug, Clone, Default, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Exact type, or every type under a prefix of whole words ending in `.*`
    /// (`xentri.soul.*`, `xentri.*`).
    // Its schema, one of two shapes, is `openapi::rules::type_filter`.
    #[param(rename = "type", value_type = Option<String>)]
    pub event_type: Option<TypeFilter>,
    /// Only events of this correlation id: 1 to 128 characters of
    /// `A-Z a-z 0-9 . _ : -`.
    #[param(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub correlation_id: Option<String>,
    /// Only events that occurred at or after this RFC 3339 time.
    pub since: Option<DateTime<Utc>>,
    /// Only events that occurred before this RFC 3339 time.
    pub until: Option<DateTime<Utc>>,
    /// The `next` cursor of a previous page: `{transaction}-{seq}`, two
    /// decimal numbers of at most 20 digits, the first at most
    /// 18446744073709551615, the second at most 9223372036854775807.
    // Its schema, with both bounds in its pattern, is `openapi::rules::cursor`.
    #[param(value_type = Option<String>)]
    pub after: Option<Position>,
    /// Page size, 1 to 1000 (default 50).
    #[param(value_type = Option<i64>, required = false, minimum = 1, maximum = 1000, default = 50)]
    pub limit: i64,
}

/// Refuses a body that is not JSON (`application/json` or `application/*+json`).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(Problem::new(ProblemKind::UnsupportedMediaType, "The request body must be application/json").into())
    }
}

/// Parses and validates the body, collecting every field error at once: the
/// envelope's fields, and the payload against its type's contract when the
/// type has one (each violation named by its pointer in the body,
/// `/payload/email`). Also returns the body as a JSON value, for the
/// request's hash.
pub fn parse_new_event(body: &[u8], contracts: &Contracts) -> Result<(serde_json::Value, NewEventBody), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Problem::new(ProblemKind::MalformedRequest, format!("The request body is not valid JSON: {e}")))?;
    let serde_json::Value::Object(object) = &value else {
        return Err(Problem::validation(vec![field_error("body", "must be a JSON object")]).into());
    };
    let mut errors = Vec::new();
    for key in object.keys() {
        if !matches!(key.as_str(), "type" | "payload" | "correlation_id" | "causation_id") {
            errors.push(field_error(key, "unknown field"));
        }
    }
    let event_type = match object.get("type") {
        None | Some(serde_json::Value::Null) => {
            errors.push(field_error("type", "is required"));
            None
        }
        Some(serde_json::Value::String(name)) => {
            EventType::parse(name).map_err(|e| errors.push(field_error("type", &e.message))).ok()
        }
        Some(_) => {
            errors.push(field_error("type", "must be a string"));
            None
        }
    };
    let payload = match object.get("payload") {
        Some(serde_json::Value::Object(map)) => Some(map.clone()),
        None | Some(serde_json::Value::Null) => {
            errors.push(field_error("payload", "is required"));
            None
        }
        Some(_) => {
            errors.push(field_error("payload", "must be a JSON object"));
            None
        }
    };
    let mut optional_id = |name: &'static str| match object.get(name) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(id)) => {
            validate_id(name, id).map_err(|e| errors.push(field_error(name, &e.message))).ok().map(|()| id.clone())
        }
        Some(_) => {
            errors.push(field_error(name, "must be a string"));
            None
        }
    };
    let correlation_id = optional_id("correlation_id");
    let causation_id = optional_id("causation_id");
    if let (Some(event_type), Some(payload)) = (&event_type, object.get("payload").filter(|p| p.is_object())) {
        errors.extend(payload_violations(contracts, event_type, payload));
    }
    match (event_type, payload) {
        (Some(event_type), Some(payload)) if errors.is_empty() => {
            Ok((value.clone(), NewEventBody { event_type, payload, correlation_id, causation_id }))
        }
        _ => Err(Problem::validation(errors).into()),
    }
}

/// The payload's violations of its type's contract (none for a type without
/// one), each named by its pointer in the request body.
fn payload_violations(contracts: &Contracts, event_type: &EventType, payload: &serde_json::Value) -> Vec<FieldError> {
    match contracts.check_payload(event_type.as_str(), payload) {
        Ok(()) => Vec::new(),
        Err(violations) => violations
            .into_iter()
            .map(|v| FieldError { field: format!("/payload{}", v.pointer), message: v.message })
            .collect(),
    }
}

/// Parses the list's query string: unknown, repeated or malformed parameters
/// are a 400 listing each.
pub fn parse_list_query(raw: &str) -> Result<ListQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| Problem::new(ProblemKind::MalformedRequest, "The query string is malformed"))?;
    let mut query = ListQuery { limit: DEFAULT_LIMIT, ..ListQuery::default() };
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, value) in pairs {
        let field = format!("query.{name}");
        if !seen.insert(name.clone()) {
            errors.push(field_error(&field, "is given more than once"));
            continue;
        }
        match name.as_str() {
            "limit" => match value.parse::<i64>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => query.limit = limit,
                _ => errors.push(field_error(&field, &format!("must be an integer from 1 to {MAX_LIMIT}"))),
            },
            "after" => match Position::parse_cursor(&value) {
                Ok(after) => query.after = Some(after),
                Err(_) => errors.push(field_error(&field, "must be a cursor returned as next")),
            },
            "type" => match TypeFilter::parse(&value) {
                Ok(filter) => query.event_type = Some(filter),
                Err(e) => errors.push(field_error(&field, &e.message)),
            },
            "correlation_id" => match validate_id("correlation_id", &value) {
                Ok(()) => query.correlation_id = Some(value),
                Err(e) => errors.push(field_error(&field, &e.message)),
            },
            "since" | "until" => match DateTime::parse_from_rfc3339(&value) {
                Ok(at) if name == "since" => query.since = Some(at.with_timezone(&Utc)),
                Ok(at) => query.until = Some(at.with_timezone(&Utc)),
                Err(_) => errors.push(field_error(&field, "must be an RFC 3339 time, e.g. 2026-11-26T10:00:00Z")),
            },
            _ => errors.push(field_error(&field, "unknown parameter")),
        }
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        Err(Problem { kind: ProblemKind::MalformedRequest, detail, errors, transitions: None }.into())
    }
}

fn field_error(field: &str, message: &str) -> FieldError {
    FieldError { field: field.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_errors_are_all_reported() {
        let Err(ApiError::Problem(problem)) = parse_list_query("limit=5000&after=x&color=red&since=yesterday") else {
            panic!("must fail");
        };
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["query.limit", "query.after", "query.color", "query.since"]);
        assert!(parse_list_query("limit=1000&type=xentri.soul.*").is_ok());
        assert!(parse_list_query("limit=1&limit=2").is_err());
    }

    fn contracts() -> Contracts {
        Contracts::load().expect("the embedded contracts compile")
    }

    #[test]
    fn payloads_nest_at_most_126_levels_as_the_document_states() {
        let body = |depth: usize| {
            let inner = format!("{}{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
            format!(r#"{{"type":"xentri.bench.sample.v1","payload":{{"a":{inner}}}}}"#)
        };
        assert!(parse_new_event(body(126).as_bytes(), &contracts()).is_ok());
        assert!(parse_new_event(body(127).as_bytes(), &contracts()).is_err());
    }

    #[test]
    fn ids_in_events_are_checked() {
        let with_id = br#"{"type":"xentri.bench.sample.v1","payload":{},"correlation_id":"a b"}"#;
        assert!(parse_new_event(with_id, &contracts()).is_err());
        assert!(parse_new_event(br#"{"type":"xentri.bench.sample.v1","payload":{}}"#, &contracts()).is_ok());
    }

    #[test]
    fn a_payload_that_breaks_its_contract_is_refused_with_every_violation_and_envelope_error() {
        let body = br#"{"type":"xentri.lead.created.v1","payload":{"lead_id":"x","email":42},"causation_id":"a b"}"#;
        let Err(ApiError::Problem(problem)) = parse_new_event(body, &contracts()) else {
            panic!("must fail");
        };
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"causation_id"), "{fields:?}");
        assert!(fields.contains(&"/payload/lead_id"), "{fields:?}");
        assert!(fields.contains(&"/payload/email"), "{fields:?}");
        assert!(fields.contains(&"/payload"), "missing fields are the payload's own violation: {fields:?}");
    }
}
