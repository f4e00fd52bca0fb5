//! `POST /api/v1/events`, `GET /api/v1/events`, `GET /api/v1/events/{id}`.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use xentri_core::event::validate_id;
use xentri_core::store::{AppendOutcome, Position};
use xentri_core::{EventType, StoredEvent, TypeFilter};

use super::with_state;
use crate::auth::{Authenticator, Principal, authenticated};
use crate::edge::RequestContext;
use crate::events::{self, ListQuery};
use crate::idempotency::{self, IdempotencyKey, StoredResponse};
use crate::problem::{ApiError, FieldError, Problem, ProblemDocument, ProblemKind, respond};
use crate::state::AppState;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 1000;

// The body as the OpenAPI document states it and as `parse_new_event` builds
// it, checking every field and reporting every error at once.
/// A new event, as posted. Unknown fields are refused; every field error is
/// reported at once.
#[derive(Debug, ToSchema)]
#[schema(as = NewEvent)]
pub struct NewEventBody {
    /// `xentri.{boundedContext}[.{entity}].{action}.v{N}`, lower-case.
    #[schema(rename = "type", value_type = String, example = "xentri.soul.updated.v1")]
    pub event_type: EventType,
    /// Any JSON object.
    #[schema(value_type = Object)]
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// Groups the events of one operation; generated (UUID v7) when absent.
    #[schema(example = "order-42")]
    pub correlation_id: Option<String>,
    /// The event that caused this one.
    pub causation_id: Option<String>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Events in the order every read of the org agrees on: the writing
    /// transaction's, then `seq` (see Tailing in the README).
    pub data: Vec<StoredEvent>,
    /// Opaque cursor to pass as `after` for the next page, and to keep polling
    /// with when tailing; null only when nothing was returned and no `after`
    /// given.
    #[schema(example = "7351-1042")]
    pub next: Option<String>,
    /// Whether more events are available right now.
    pub has_more: bool,
}

/// The three routes.
pub fn routes(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    append(state.clone(), auth.clone())
        .or(list(state.clone(), auth.clone()))
        .unify()
        .or(get(state, auth))
        .unify()
        .boxed()
}

fn context() -> impl Filter<Extract = (RequestContext,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<RequestContext>().map(|ctx: Option<RequestContext>| {
        ctx.unwrap_or_else(|| RequestContext { trace: crate::trace::TraceContext::start(), lang: Default::default() })
    })
}

/// Appends an event.
#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    request_body(content = NewEventBody, content_type = "application/json"),
    params(
        ("Idempotency-Key" = String, Header, description = "Required. 1-255 visible ASCII characters, scoped to the org; a retry with the same key and request replays the stored answer (with `Idempotent-Replayed: true`)"),
        ("x-org-id" = Option<Uuid>, Header, description = "Act for this org instead of the token's active one; it must be one the token grants (`org_id` or `orgs`), else 403"),
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "Stored; the envelope as stored", body = StoredEvent),
        (status = 400, description = "Missing or malformed Idempotency-Key, or malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token; one `detail` whatever the cause", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "x-org-id names an org the token does not grant", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within `api.body_read_timeout_ms`; the connection is closed", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The first request with this key is still in flight", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`errors` lists them), or the key was used with another request", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 500, description = "An unexpected failure (logged with the trace id); nothing more is disclosed", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable, no user-token keys could be fetched yet, the api is shutting down, or it sheds load (`overloaded`); always with `Retry-After`", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub fn append(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "events")
        .and(warp::post())
        .and(authenticated(auth))
        .and(context())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .and(with_state(state))
        .then(append_event)
        .map(respond)
        .boxed()
}

/// Lists the caller's org's events.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(ListQuery, ("x-org-id" = Option<Uuid>, Header, description = "Act for this org instead of the token's active one; it must be one the token grants (`org_id` or `orgs`), else 403")),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "A page of events in seq order", body = EventPage),
        (status = 400, description = "A malformed or unknown query parameter, or limit above 1000", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token; one `detail` whatever the cause", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "x-org-id names an org the token does not grant", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 500, description = "An unexpected failure (logged with the trace id); nothing more is disclosed", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable, no user-token keys could be fetched yet, or the api sheds load (`overloaded`); always with `Retry-After`", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub fn list(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "events")
        .and(warp::get())
        .and(authenticated(auth))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with_state(state))
        .then(list_events)
        .map(respond)
        .boxed()
}

/// Fetches one event; another org's id is a 404, like a missing one.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events",
    params(("id" = Uuid, Path, description = "The event id"), ("x-org-id" = Option<Uuid>, Header, description = "Act for this org instead of the token's active one; it must be one the token grants (`org_id` or `orgs`), else 403")),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The event", body = StoredEvent),
        (status = 400, description = "The id is not a UUID", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token; one `detail` whatever the cause", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "x-org-id names an org the token does not grant", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such event in this org", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 500, description = "An unexpected failure (logged with the trace id); nothing more is disclosed", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable, no user-token keys could be fetched yet, or the api sheds load (`overloaded`); always with `Retry-After`", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub fn get(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "events" / String)
        .and(warp::get())
        .and(authenticated(auth))
        .and(with_state(state))
        .then(get_event)
        .map(respond)
        .boxed()
}

async fn append_event(
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let key = IdempotencyKey::from_headers(&headers)?;
    require_json(&headers)?;
    let (canonical, fields) = parse_new_event(&body)?;
    let hash = idempotency::request_hash("POST", "/api/v1/events", &canonical);
    // A trace started here (no traceparent) yields to one the token carries.
    let trace_id = match (&context.trace.parent_span_id, &principal.trace_id) {
        (None, Some(carried)) => carried.clone(),
        _ => context.trace.trace_id.clone(),
    };
    // Serialised once: the text stored is the text answered.
    let payload = serde_json::value::to_raw_value(&fields.payload).map_err(|e| ApiError::Internal(e.into()))?;
    let event = xentri_core::NewEvent {
        id: Uuid::now_v7(),
        org_id: principal.org_id,
        event_type: fields.event_type,
        payload,
        actor: principal.actor.clone(),
        trace_id,
        correlation_id: fields.correlation_id.unwrap_or_else(|| Uuid::now_v7().to_string()),
        causation_id: fields.causation_id,
        // PostgreSQL keeps microseconds: the answer must equal what a read returns.
        occurred_at: Utc::now().trunc_subsecs(6),
    };
    // A second pass only when the key's answer expired between the append and
    // the read-back: the key can then be taken over.
    for _ in 0..2 {
        match events::append(&state.appender, &event, &key, &hash).await? {
            AppendOutcome::Appended(seq) => {
                let stored = event.clone().stored(seq);
                state.outbox.committed();
                metrics::counter!("events_appended_total").increment(1);
                tracing::debug!(event_id = %stored.id, seq = stored.seq, event_type = %stored.event_type, "event appended");
                let body = serde_json::to_string(&stored).map_err(|e| ApiError::Internal(e.into()))?;
                return Ok(json_response(StatusCode::CREATED, body));
            }
            AppendOutcome::KeyInFlight => return Err(idempotency::in_flight()),
            AppendOutcome::KeyAnswered => {
                let mut tx = state.db.begin(principal.org_id).await?;
                let stored = idempotency::stored(&mut tx, &key).await?;
                tx.finish_read();
                if let Some(stored) = stored {
                    return Ok(replay(stored.replay_for(&hash)?));
                }
            }
        }
    }
    Err(ApiError::Internal(anyhow::anyhow!("idempotency key kept changing")))
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = json_response(status, stored.body);
    response.headers_mut().insert(idempotency::REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(Problem::new(ProblemKind::UnsupportedMediaType, "The request body must be application/json").into())
    }
}

/// Parses and validates the body, collecting every field error at once.
fn parse_new_event(body: &[u8]) -> Result<(serde_json::Value, NewEventBody), ApiError> {
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
    match (event_type, payload) {
        (Some(event_type), Some(payload)) if errors.is_empty() => {
            Ok((value.clone(), NewEventBody { event_type, payload, correlation_id, causation_id }))
        }
        _ => Err(Problem::validation(errors).into()),
    }
}

fn field_error(field: &str, message: &str) -> FieldError {
    FieldError { field: field.to_owned(), message: message.to_owned() }
}

async fn list_events(
    principal: Result<Principal, ApiError>,
    raw_query: String,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let query = parse_list_query(&raw_query)?;
    let mut listed = events::list(&state.db, principal.org_id, &query).await?;
    let has_more = listed.len() as i64 > query.limit;
    listed.truncate(query.limit as usize);
    let next = listed.last().map(events::Listed::position).or(query.after).map(|p| p.cursor());
    let data = listed.into_iter().map(|l| l.event).collect();
    Ok(warp::reply::json(&EventPage { data, next, has_more }).into_response())
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
        Err(Problem { kind: ProblemKind::MalformedRequest, detail, errors }.into())
    }
}

async fn get_event(id: String, principal: Result<Principal, ApiError>, state: AppState) -> Result<Response, ApiError> {
    let principal = principal?;
    let Ok(id) = id.parse::<Uuid>() else {
        return Err(Problem::new(ProblemKind::MalformedRequest, "The event id must be a UUID").into());
    };
    let mut tx = state.db.begin(principal.org_id).await?;
    let found = events::get(&mut tx, id).await?;
    tx.finish_read();
    match found {
        Some(event) => Ok(warp::reply::json(&event).into_response()),
        None => Err(Problem::new(ProblemKind::NotFound, format!("Event {id} not found")).into()),
    }
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

    #[test]
    fn ids_in_events_are_checked() {
        assert!(parse_new_event(br#"{"type":"xentri.soul.updated.v1","payload":{},"correlation_id":"a b"}"#).is_err());
        assert!(parse_new_event(br#"{"type":"xentri.soul.updated.v1","payload":{}}"#).is_ok());
    }
}
