//! `GET`, `POST` and `PUT /api/v1/soul` and `POST /api/v1/soul/transitions`:
//! the warp filters and their handlers. What a request says is parsed in
//! [`request`]; what it does is [`crate::soul`].

pub mod request;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use self::request::{ContentBody, CreateBody, TransitionBody, parse_content, parse_create, parse_transition};
use super::events::request::require_json;
use super::{answer, json_response, set_etag, with_state};
use crate::auth::{Authenticator, Principal, authenticated};
use crate::domain::precondition;
use crate::domain::request::Mutating;
use crate::edge::RequestContext;
use crate::problem::{ApiError, Problem, ProblemDocument, ProblemKind, respond};
use crate::routes::openapi::headers::{ChangeHeaders, MutationHeaders, OrgHeader};
use crate::routes::openapi::responses::{
    Guarded, IfMatchRequired, InvalidFields, JsonOnly, MalformedChange, MalformedCreation, MalformedOrg,
    MutationUnavailable, OrgGranted, ReadUnavailable, StaleVersion,
};
use crate::soul::machine::Action;
use crate::soul::store::Soul;
use crate::soul::{self, Change};
use crate::state::AppState;

/// The four routes.
pub fn routes(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    get(state.clone(), auth.clone())
        .or(create(state.clone(), auth.clone()))
        .unify()
        .or(replace_content(state.clone(), auth.clone()))
        .unify()
        .or(transition(state, auth))
        .unify()
        .boxed()
}

/// Reads the org's Soul, from the cache when it holds the current version.
#[utoipa::path(get, path = "/api/v1/soul", tag = "soul", operation_id = "get_soul",
    params(
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds; when one is the current version's, the answer is a 304 without a body"),
        OrgHeader,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The Soul, with its version's `ETag`", body = Soul,
            headers(("ETag" = String, description = "The version, in quotes: send it as `If-Match` to change the Soul"))),
        (status = 304, description = "`If-None-Match` names the current version"),
        (status = 404, description = "The org has no Soul yet", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MalformedOrg, ReadUnavailable,
    ))]
pub fn get(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "soul")
        .and(warp::get())
        .and(authenticated(auth))
        .and(warp::header::headers_cloned())
        .and(with_state(state))
        .then(get_soul)
        .map(respond)
        .boxed()
}

/// Creates the org's Soul, `initiated` (one per org).
#[utoipa::path(post, path = "/api/v1/soul", tag = "soul", operation_id = "create_soul",
    request_body(content = Option<CreateBody>, content_type = "application/json", description = "Empty, or an empty JSON object"),
    params(MutationHeaders),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "Created; the Soul with its version's `ETag`; `xentri.soul.initiated.v1` appended", body = Soul,
            headers(("ETag" = String, description = "The version, in quotes"))),
        (status = 409, description = "The org has a Soul already (`already-exists`), or the first request with this key is still in flight", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not `application/json`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "A body with fields, or the key was used with another request", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MutationUnavailable, MalformedCreation,
    ))]
pub fn create(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "soul"), warp::post(), state, auth, create_soul)
}

/// Replaces the Soul's content, while it is `conversing` or `editing`.
#[utoipa::path(put, path = "/api/v1/soul", tag = "soul", operation_id = "replace_soul_content",
    request_body(content = ContentBody, content_type = "application/json"),
    params(ChangeHeaders),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Replaced; the Soul with its new version's `ETag`; `xentri.soul.content_replaced.v1` appended", body = Soul,
            headers(("ETag" = String, description = "The new version, in quotes"))),
        (status = 403, description = "x-org-id names an org the token does not grant, or a service token (content is a user's)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "The org has no Soul yet", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Not `conversing` nor `editing` (`invalid-transition`, with `state` and `allowed_transitions`), or the first request with this key is still in flight", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, MutationUnavailable, MalformedChange, JsonOnly, IfMatchRequired, StaleVersion, InvalidFields,
    ))]
pub fn replace_content(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "soul"), warp::put(), state, auth, put_content)
}

/// Moves the Soul along its flow: `initiated → conversing`, `conversing →
/// conversing` (an answer), `conversing → drafting`, `drafting →
/// review_pending` (a draft, service tokens only), `review_pending → editing |
/// approved`, `editing → review_pending`, `approved → editing`.
#[utoipa::path(post, path = "/api/v1/soul/transitions", tag = "soul", operation_id = "transition_soul",
    request_body(content = TransitionBody, content_type = "application/json"),
    params(ChangeHeaders),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Done; the Soul with its new version's `ETag`. Appended: `xentri.soul.transitioned.v1`; besides, `xentri.soul.created.v1` on the first approval, `xentri.soul.updated.v1` on later approvals and when an approved Soul goes to editing", body = Soul,
            headers(("ETag" = String, description = "The new version, in quotes"))),
        (status = 403, description = "x-org-id names an org the token does not grant, or the step is another kind of caller's: a draft is delivered by a service token only, every other step by a user token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "The org has no Soul yet", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The flow does not allow it from the current state (`invalid-transition`, with `state` and `allowed_transitions`), or the first request with this key is still in flight", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Fields break their rules (`errors` lists them), sections missing on an answer or a draft or given on another step, or the key was used with another request", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, MutationUnavailable, MalformedChange, JsonOnly, IfMatchRequired, StaleVersion,
    ))]
pub fn transition(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "soul" / "transitions"), warp::post(), state, auth, post_transition)
}

async fn get_soul(
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let Some(cached) = soul::read(&state, principal.org_id).await? else {
        return Err(
            Problem::new(ProblemKind::NotFound, "This org has no Soul yet: POST /api/v1/soul creates it").into()
        );
    };
    if precondition::not_modified(&headers, cached.version) {
        let mut response = Response::new(Default::default());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        set_etag(&mut response, cached.version);
        return Ok(response);
    }
    let mut response = json_response(StatusCode::OK, cached.body);
    set_etag(&mut response, cached.version);
    Ok(response)
}

async fn create_soul(
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        require_json(&headers)?;
    }
    let canonical = parse_create(&body)?;
    let request = Mutating::read(principal, &context, &headers, "POST", "/api/v1/soul", &canonical)?;
    let correlation_id = request.correlation_id.clone();
    Ok(answer(soul::create(&state, request).await?, &correlation_id))
}

async fn put_content(
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let if_match = precondition::if_match(&headers)?;
    require_json(&headers)?;
    let (canonical, ContentBody { content }) = parse_content(&body)?;
    let request = Mutating::read(principal, &context, &headers, "PUT", "/api/v1/soul", &canonical)?;
    let correlation_id = request.correlation_id.clone();
    let change = Change { if_match, action: Action::ReplaceContent, sections: Some(content), reason: None };
    Ok(answer(soul::change(&state, request, change).await?, &correlation_id))
}

async fn post_transition(
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let if_match = precondition::if_match(&headers)?;
    require_json(&headers)?;
    let (canonical, TransitionBody { to, reason, sections }) = parse_transition(&body)?;
    let request = Mutating::read(principal, &context, &headers, "POST", "/api/v1/soul/transitions", &canonical)?;
    let correlation_id = request.correlation_id.clone();
    let change = Change { if_match, action: Action::To(to), sections, reason };
    Ok(answer(soul::change(&state, request, change).await?, &correlation_id))
}
