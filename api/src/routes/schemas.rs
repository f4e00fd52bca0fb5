//! `GET /api/v1/schemas` and `GET /api/v1/schemas/{type}`: the event
//! contracts (JSON Schema 2020-12) the api checks payloads against, for
//! consumers that build against them.

use std::sync::Arc;

use http::HeaderValue;
use serde::Serialize;
use utoipa::ToSchema;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use super::with_state;
use crate::auth::{Authenticator, Principal, authenticated};
use crate::problem::{ApiError, Problem, ProblemDocument, ProblemKind, respond};
use crate::routes::openapi::headers::OrgHeader;
use crate::routes::openapi::responses::{Guarded, OrgGranted};
use crate::state::AppState;

/// The media type of one schema (draft 2020-12).
pub const SCHEMA_JSON: &str = "application/schema+json";

/// One event type's contract, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaEntry {
    /// The event type.
    #[serde(rename = "type")]
    #[schema(rename = "type", example = "xentri.lead.created.v1")]
    pub event_type: String,
    /// `N` of the type's `.vN`.
    #[schema(example = 1, minimum = 1)]
    pub version: u32,
    /// Where its schema is served.
    #[schema(example = "/api/v1/schemas/xentri.lead.created.v1")]
    pub url: String,
}

/// Every contract.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaList {
    /// The payload schema of every event type that has one, by type. A type
    /// not listed is accepted with any JSON object as its payload.
    pub data: Vec<SchemaEntry>,
    /// Where the schema of a stored event (the envelope) is served.
    #[schema(example = "/api/v1/schemas/envelope")]
    pub envelope: String,
    /// Where the schema of `POST /api/v1/events`' body is served.
    #[schema(example = "/api/v1/schemas/new-event")]
    pub new_event: String,
}

/// Both routes.
pub fn routes(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    list(state.clone(), auth.clone()).or(get(state, auth)).unify().boxed()
}

/// Lists the event contracts.
#[utoipa::path(get, path = "/api/v1/schemas", tag = "schemas",
    params(OrgHeader),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Every contract: the envelope's, the new event's and each event type's", body = SchemaList),
        (status = 400, description = "x-org-id is malformed", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "No user-token keys could be fetched yet, or the api sheds load (`overloaded`); always with `Retry-After`", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted,
    ))]
pub fn list(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "schemas")
        .and(warp::get())
        .and(authenticated(auth))
        .and(with_state(state))
        .then(list_schemas)
        .map(respond)
        .boxed()
}

/// Serves one contract as written: an event type's payload schema, or
/// `envelope`, or `new-event`.
#[utoipa::path(get, path = "/api/v1/schemas/{type}", tag = "schemas",
    params(
        ("type" = String, Path, description = "An event type listed by `GET /api/v1/schemas`, or `envelope`, or `new-event`"),
        OrgHeader,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The JSON Schema (draft 2020-12)", body = Object, content_type = "application/schema+json"),
        (status = 400, description = "x-org-id is malformed", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No contract of that name", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "No user-token keys could be fetched yet, or the api sheds load (`overloaded`); always with `Retry-After`", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted,
    ))]
pub fn get(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "schemas" / String)
        .and(warp::get())
        .and(authenticated(auth))
        .and(with_state(state))
        .then(get_schema)
        .map(respond)
        .boxed()
}

/// Where contract `name` is served.
fn url(name: &str) -> String {
    format!("/api/v1/schemas/{name}")
}

async fn list_schemas(principal: Result<Principal, ApiError>, state: AppState) -> Result<Response, ApiError> {
    principal?;
    let contracts = &state.contracts;
    let data = contracts
        .events()
        .map(|schema| SchemaEntry {
            event_type: schema.name().to_owned(),
            version: schema.version().unwrap_or(1),
            url: url(schema.name()),
        })
        .collect();
    let list =
        SchemaList { data, envelope: url(contracts.envelope().name()), new_event: url(contracts.new_event().name()) };
    Ok(warp::reply::json(&list).into_response())
}

async fn get_schema(
    name: String,
    principal: Result<Principal, ApiError>,
    state: AppState,
) -> Result<Response, ApiError> {
    principal?;
    let contracts = &state.contracts;
    let schema = match name.as_str() {
        "envelope" => Some(contracts.envelope()),
        "new-event" => Some(contracts.new_event()),
        event_type => contracts.event(event_type),
    };
    let Some(schema) = schema else {
        return Err(
            Problem::new(ProblemKind::NotFound, "No contract of that name: GET /api/v1/schemas lists them").into()
        );
    };
    let mut response = Response::new(schema.text().into());
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(SCHEMA_JSON));
    Ok(response)
}
