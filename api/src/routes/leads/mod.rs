//! The lead routes under `/api/v1/sales/leads`: create, import, list, get,
//! change fields (`PATCH`, a JSON merge patch) and transitions. What a request
//! says is parsed in [`request`]; what it does is [`crate::leads`].

pub mod request;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use self::request::{LeadImportBody, LeadPatchBody, LeadTransitionBody, ListParams, NewLeadBody};
use super::events::request::require_json;
use super::{answer, json_response, set_etag, with_state};
use crate::auth::{Authenticator, Principal, authenticated};
use crate::domain::precondition;
use crate::domain::request::Mutating;
use crate::edge::RequestContext;
use crate::leads::list::LeadPage;
use crate::leads::store::Lead;
use crate::leads::{self, Change};
use crate::problem::{ApiError, ProblemDocument, respond};
use crate::routes::openapi::headers::{ChangeHeaders, MutationHeaders, OrgHeader};
use crate::routes::openapi::responses::{
    BodyLimit, Guarded, IfMatchRequired, InvalidFields, JsonOnly, KeyInFlight, MalformedChange, MalformedCreation,
    MalformedOrg, MutationUnavailable, OrgGranted, ReadUnavailable, StaleVersion,
};
use crate::state::AppState;

/// What an import answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LeadImportAnswer {
    /// How many leads were created.
    #[schema(example = 1000)]
    pub count: usize,
    /// The created leads, in the order given.
    pub data: Vec<Lead>,
}

/// The six routes.
pub fn routes(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    create(state.clone(), auth.clone())
        .or(list(state.clone(), auth.clone()))
        .unify()
        .or(import(state.clone(), auth.clone()))
        .unify()
        .or(get(state.clone(), auth.clone()))
        .unify()
        .or(update(state.clone(), auth.clone()))
        .unify()
        .or(transition(state, auth))
        .unify()
        .boxed()
}

/// Creates a lead, `new`.
#[utoipa::path(post, path = "/api/v1/sales/leads", tag = "leads", operation_id = "create_lead",
    request_body(content = NewLeadBody, content_type = "application/json"),
    params(MutationHeaders),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "Created; the lead with its version's `ETag`; `xentri.lead.created.v1` appended", body = Lead,
            headers(("ETag" = String, description = "The version, in quotes: send it as `If-Match` to change the lead"))),
        (status = 422, description = "Fields break their rules (`errors` lists them: a bad email, an unknown source, unknown fields, …), or the key was used with another request", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MutationUnavailable, MalformedCreation, BodyLimit, JsonOnly, KeyInFlight,
    ))]
pub fn create(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "sales" / "leads"), warp::post(), state, auth, create_lead)
}

/// Imports up to 1,000 leads at once, all or none: each its own
/// `xentri.lead.created.v1`, under one `Idempotency-Key`. The body may be up
/// to `api.bulk_body_limit_bytes` (4 MiB by default).
#[utoipa::path(post, path = "/api/v1/sales/leads:import", tag = "leads", operation_id = "import_leads",
    request_body(content = LeadImportBody, content_type = "application/json"),
    params(MutationHeaders),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "Every lead created, `new`; one `xentri.lead.created.v1` per lead appended", body = LeadImportAnswer),
        (status = 413, description = "The body is over `api.bulk_body_limit_bytes` (4 MiB by default)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Nothing is created: `errors` lists every bad field of every bad row by pointer (`/leads/3/email`), or more than 1,000 leads (`/leads`); or the key was used with another request", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MutationUnavailable, MalformedCreation, JsonOnly, KeyInFlight,
    ))]
pub fn import(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "sales" / "leads:import"), warp::post(), state, auth, import_leads)
}

/// Lists the org's leads, newest first. The first page without a filter at
/// the default size is served from a cache the worker invalidates on every
/// change of a lead.
#[utoipa::path(get, path = "/api/v1/sales/leads", tag = "leads", operation_id = "list_leads",
    params(ListParams, OrgHeader),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "A page of leads, newest first", body = LeadPage),
        (status = 400, description = "A query parameter that is malformed, unknown or given more than once (`errors` lists them), or a malformed x-org-id", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, ReadUnavailable,
    ))]
pub fn list(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "sales" / "leads")
        .and(warp::get())
        .and(authenticated(auth))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with_state(state))
        .then(list_leads)
        .map(respond)
        .boxed()
}

/// Reads one lead; another org's id, or one that is not a UUID, is a 404
/// like a missing one.
#[utoipa::path(get, path = "/api/v1/sales/leads/{id}", tag = "leads", operation_id = "get_lead",
    params(
        ("id" = String, Path, description = "The lead's id (a UUID)"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds; when one is the current version's, the answer is a 304 without a body"),
        OrgHeader,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The lead, with its version's `ETag`", body = Lead,
            headers(("ETag" = String, description = "The version, in quotes"))),
        (status = 304, description = "`If-None-Match` names the current version"),
        (status = 404, description = "No such lead in this org", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MalformedOrg, ReadUnavailable,
    ))]
pub fn get(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "sales" / "leads" / String)
        .and(warp::get())
        .and(authenticated(auth))
        .and(warp::header::headers_cloned())
        .and(with_state(state))
        .then(get_lead)
        .map(respond)
        .boxed()
}

/// Changes a lead's fields (a JSON merge patch: absent fields stay, `company:
/// null` clears it); `xentri.lead.updated.v1`. The status changes only
/// through transitions.
#[utoipa::path(patch, path = "/api/v1/sales/leads/{id}", tag = "leads", operation_id = "update_lead",
    request_body(content = LeadPatchBody, content_type = "application/merge-patch+json", description = "Also taken as `application/json`"),
    params(
        ("id" = String, Path, description = "The lead's id (a UUID)"),
        ChangeHeaders,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Changed; the lead with its new version's `ETag`; `xentri.lead.updated.v1` appended", body = Lead,
            headers(("ETag" = String, description = "The new version, in quotes"))),
        (status = 404, description = "No such lead in this org", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The Content-Type is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MutationUnavailable, MalformedChange, IfMatchRequired, StaleVersion, KeyInFlight, InvalidFields,
    ))]
pub fn update(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "sales" / "leads" / String), warp::patch(), state, auth, patch_lead)
}

/// Moves a lead along the Lead Lifecycle Flow: `new → contacted`, `contacted
/// → qualified | disqualified`, `qualified → proposal`, `proposal → won |
/// lost`.
#[utoipa::path(post, path = "/api/v1/sales/leads/{id}/transitions", tag = "leads", operation_id = "transition_lead",
    request_body(content = LeadTransitionBody, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The lead's id (a UUID)"),
        ChangeHeaders,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Done; the lead with its new version's `ETag`. Appended: `xentri.lead.updated.v1`; besides, `xentri.deal.won.v1` to won, `xentri.deal.lost.v1` to lost, `xentri.lead.disqualified.v1` to disqualified", body = Lead,
            headers(("ETag" = String, description = "The new version, in quotes"))),
        (status = 404, description = "No such lead in this org", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The flow does not allow it from the current status (`invalid-transition`, with `state` and `allowed_transitions`), or the first request with this key is still in flight", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MutationUnavailable, MalformedChange, JsonOnly, IfMatchRequired, StaleVersion, InvalidFields,
    ))]
pub fn transition(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(
        warp::path!("api" / "v1" / "sales" / "leads" / String / "transitions"),
        warp::post(),
        state,
        auth,
        post_transition
    )
}

async fn create_lead(
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    require_json(&headers)?;
    let (canonical, new) = request::parse_create(&body)?;
    let request = Mutating::read(principal, &context, &headers, "POST", "/api/v1/sales/leads", &canonical)?;
    let correlation_id = request.correlation_id.clone();
    Ok(answer(leads::create(&state, request, new).await?, &correlation_id))
}

async fn import_leads(
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    require_json(&headers)?;
    let (canonical, new) = request::parse_import(&body)?;
    let request = Mutating::read(principal, &context, &headers, "POST", "/api/v1/sales/leads:import", &canonical)?;
    let correlation_id = request.correlation_id.clone();
    Ok(answer(leads::import(&state, request, new).await?, &correlation_id))
}

async fn list_leads(
    principal: Result<Principal, ApiError>,
    raw_query: String,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let query = request::parse_list_query(&raw_query)?;
    let body = leads::list::page(&state, principal.org_id, query).await?;
    Ok(json_response(StatusCode::OK, body))
}

async fn get_lead(
    id: String,
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let id = id.parse::<Uuid>().ok();
    let lead = match id {
        Some(id) => leads::get(&state, principal.org_id, id).await?,
        None => None,
    };
    let Some(lead) = lead else { return Err(leads::missing(id)) };
    if precondition::not_modified(&headers, lead.version) {
        let mut response = Response::new(Default::default());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        set_etag(&mut response, lead.version);
        return Ok(response);
    }
    let body = serde_json::to_string(&lead).map_err(|e| ApiError::Internal(e.into()))?;
    let mut response = json_response(StatusCode::OK, body);
    set_etag(&mut response, lead.version);
    Ok(response)
}

async fn patch_lead(
    id: String,
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let if_match = precondition::if_match(&headers)?;
    require_json(&headers)?;
    let (canonical, fields) = request::parse_patch(&body)?;
    let Ok(lead_id) = id.parse::<Uuid>() else { return Err(leads::missing(None)) };
    let route = format!("/api/v1/sales/leads/{lead_id}");
    let request = Mutating::read(principal, &context, &headers, "PATCH", &route, &canonical)?;
    let correlation_id = request.correlation_id.clone();
    let answered = leads::change(&state, request, lead_id, if_match, Change::Fields(fields)).await?;
    Ok(answer(answered, &correlation_id))
}

async fn post_transition(
    id: String,
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let if_match = precondition::if_match(&headers)?;
    require_json(&headers)?;
    let (canonical, to, reason) = request::parse_transition(&body)?;
    let Ok(lead_id) = id.parse::<Uuid>() else { return Err(leads::missing(None)) };
    let route = format!("/api/v1/sales/leads/{lead_id}/transitions");
    let request = Mutating::read(principal, &context, &headers, "POST", &route, &canonical)?;
    let correlation_id = request.correlation_id.clone();
    let answered = leads::change(&state, request, lead_id, if_match, Change::Transition { to, reason }).await?;
    Ok(answer(answered, &correlation_id))
}
