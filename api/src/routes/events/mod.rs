//! `POST /api/v1/events`, `GET /api/v1/events`, `GET /api/v1/events/{id}`:
//! the warp filters and their handlers.
//!
//! What a request says is parsed in [`request`]; an append under its
//! idempotency key, with the retry when the key's claim races, is
//! [`idempotent`].

pub mod idempotent;
pub mod request;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use xentri_core::StoredEvent;

use self::idempotent::Appended;
use self::request::{ListQuery, NewEventBody, parse_list_query, parse_new_event, require_json};
use super::{context, json_response, replay, with_state};
use crate::auth::{Authenticator, Principal, authenticated};
use crate::edge::RequestContext;
use crate::events;
use crate::idempotency::{self, IdempotencyKey};
use crate::problem::{ApiError, Problem, ProblemDocument, ProblemKind, respond};
use crate::routes::openapi::headers::{IDEMPOTENCY_DESCRIPTION, OrgHeader};
use crate::routes::openapi::responses::{BodyLimit, Guarded, KeyInFlight, OrgGranted, ReadUnavailable};
use crate::state::AppState;

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Events in the order every read of the org agrees on: the writing
    /// transaction's, then `seq` (see Tailing in the README).
    pub data: Vec<StoredEvent>,
    /// Opaque cursor to pass as `after` for the next page, and to keep polling
    /// with when tailing; null only when nothing was returned and no `after`
    /// given. Written `{transaction}-{seq}`, two decimal numbers.
    #[schema(example = "7351-1042", pattern = "^[0-9]{1,20}-[0-9]{1,19}$")]
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

/// Appends an event.
#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    request_body(content = NewEventBody, content_type = "application/json"),
    params(
        ("Idempotency-Key" = String, Header, description = IDEMPOTENCY_DESCRIPTION),
        OrgHeader,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "Stored; the envelope as stored", body = StoredEvent),
        (status = 400, description = "Missing or malformed Idempotency-Key, malformed JSON, or a malformed x-org-id", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within `api.body_read_timeout_ms`; the connection is closed", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The Content-Type is not `application/json` (nor `application/*+json`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The body is not an object, or fields break their rules (`errors` lists them); or the key was used with another request", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable, no user-token keys could be fetched yet, the api is shutting down, or it sheds load (`overloaded`); always with `Retry-After`", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, BodyLimit, KeyInFlight,
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
///
/// Every query parameter may be given once; an unknown or repeated one is a
/// 400, like a malformed one.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(ListQuery, OrgHeader),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "A page of events in seq order", body = EventPage),
        (status = 400, description = "A query parameter that is malformed, unknown or given more than once (`errors` lists them), or a malformed x-org-id", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, ReadUnavailable,
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
    params(("id" = Uuid, Path, description = "The event id"), OrgHeader),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The event", body = StoredEvent),
        (status = 400, description = "The id is not a UUID, or x-org-id is malformed", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such event in this org", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, ReadUnavailable,
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
    let (canonical, fields) = parse_new_event(&body, &state.contracts)?;
    let hash = idempotency::request_hash("POST", "/api/v1/events", &canonical);
    let trace_id = crate::domain::request::trace_id(&context, &principal);
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
    match idempotent::append_or_replay(&state, &event, &key, &hash).await? {
        Appended::Stored(stored) => {
            let body = serde_json::to_string(&stored).map_err(|e| ApiError::Internal(e.into()))?;
            Ok(json_response(StatusCode::CREATED, body))
        }
        Appended::Replayed(stored) => Ok(replay(stored)),
    }
}

async fn list_events(
    principal: Result<Principal, ApiError>,
    raw_query: String,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let query = parse_list_query(&raw_query)?;
    let page = events::list(&state.db, principal.org_id, &query).await?;
    Ok(json_response(StatusCode::OK, page))
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
