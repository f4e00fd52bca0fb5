//! The site routes under `/api/v1/marketing/sites`: create, get, edit
//! (`PATCH`), transitions, and the published HTML of a page. What a request
//! says is parsed in [`request`]; what it does is [`crate::sites`].

pub mod request;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use xentri_core::site::Site;

use self::request::{NewSiteBody, SitePatchBody, SiteTransitionBody};
use super::events::request::require_json;
use super::{answer, json_response, set_etag, with_state};
use crate::auth::{Authenticator, Principal, authenticated};
use crate::domain::precondition;
use crate::domain::request::Mutating;
use crate::edge::RequestContext;
use crate::problem::{ApiError, Problem, ProblemDocument, ProblemKind, respond};
use crate::routes::openapi::headers::{ChangeHeaders, MutationHeaders, OrgHeader};
use crate::routes::openapi::responses::{
    BodyLimit, Guarded, IfMatchRequired, InvalidFields, JsonOnly, KeyInFlight, MalformedChange, MalformedCreation,
    MalformedOrg, MutationUnavailable, OrgGranted, ReadUnavailable, StaleVersion,
};
use crate::sites;
use crate::state::AppState;

/// What the published pages are allowed to load: images from anywhere, no
/// scripts, styles, frames or forms, whatever a page's content says.
const PAGE_CSP: &str = "default-src 'none'; img-src https: http: data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The five routes.
pub fn routes(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    create(state.clone(), auth.clone())
        .or(get(state.clone(), auth.clone()))
        .unify()
        .or(update(state.clone(), auth.clone()))
        .unify()
        .or(transition(state.clone(), auth.clone()))
        .unify()
        .or(html(state, auth))
        .unify()
        .boxed()
}

/// Creates a site, `draft`.
#[utoipa::path(post, path = "/api/v1/marketing/sites", tag = "sites", operation_id = "create_site",
    request_body(content = NewSiteBody, content_type = "application/json"),
    params(MutationHeaders),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "Created; the site with its version's `ETag`; `xentri.website.created.v1` appended", body = Site,
            headers(("ETag" = String, description = "The version, in quotes: send it as `If-Match` to change the site"))),
        (status = 422, description = "Fields break their rules (`errors` lists them, the pages' by JSON pointer: `/pages/0/blocks/2/src`), or the key was used with another request", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MutationUnavailable, MalformedCreation, BodyLimit, JsonOnly, KeyInFlight,
    ))]
pub fn create(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "marketing" / "sites"), warp::post(), state, auth, create_site)
}

/// Reads one site, from the cache when it holds the current version; another
/// org's id, or one that is not a UUID, is a 404 like a missing one.
#[utoipa::path(get, path = "/api/v1/marketing/sites/{id}", tag = "sites", operation_id = "get_site",
    params(
        ("id" = String, Path, description = "The site's id (a UUID)"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds; when one is the current version's, the answer is a 304 without a body"),
        OrgHeader,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The site, with its version's `ETag`", body = Site,
            headers(("ETag" = String, description = "The version, in quotes"))),
        (status = 304, description = "`If-None-Match` names the current version"),
        (status = 404, description = "No such site in this org", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MalformedOrg, ReadUnavailable,
    ))]
pub fn get(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "marketing" / "sites" / String)
        .and(warp::get())
        .and(authenticated(auth))
        .and(warp::header::headers_cloned())
        .and(with_state(state))
        .then(get_site)
        .map(respond)
        .boxed()
}

/// Changes a site's content: its name, its pages (the whole list), or both;
/// `xentri.website.updated.v1`. An edit takes the site back to `draft` (from
/// `preview`, `live` or `failed`); while `publishing` it is refused. What is
/// published stays served until the next build replaces it.
#[utoipa::path(patch, path = "/api/v1/marketing/sites/{id}", tag = "sites", operation_id = "update_site",
    request_body(content = SitePatchBody, content_type = "application/merge-patch+json", description = "Also taken as `application/json`"),
    params(
        ("id" = String, Path, description = "The site's id (a UUID)"),
        ChangeHeaders,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Changed; the site with its new version's `ETag`; `xentri.website.updated.v1` appended", body = Site,
            headers(("ETag" = String, description = "The new version, in quotes"))),
        (status = 404, description = "No such site in this org", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The site is `publishing` (`invalid-transition`: its build reads the content), or the first request with this key is still in flight", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The Content-Type is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MutationUnavailable, MalformedChange, BodyLimit, IfMatchRequired, StaleVersion, InvalidFields,
    ))]
pub fn update(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "marketing" / "sites" / String), warp::patch(), state, auth, patch_site)
}

/// Moves a site along the Website Publish Flow. Users take `draft → preview`,
/// `preview → draft | publishing`, `failed → draft` and `live → draft`;
/// `preview → publishing` enqueues the site.build job
/// (`xentri.website.build_requested.v1` on the jobs stream) in the same
/// transaction. `publishing → live | failed` is the build's alone (403).
#[utoipa::path(post, path = "/api/v1/marketing/sites/{id}/transitions", tag = "sites", operation_id = "transition_site",
    request_body(content = SiteTransitionBody, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The site's id (a UUID)"),
        ChangeHeaders,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Done; the site with its new version's `ETag`. Appended: `xentri.website.updated.v1`; to publishing, besides, the site.build job", body = Site,
            headers(("ETag" = String, description = "The new version, in quotes"))),
        (status = 403, description = "x-org-id names an org the token does not grant, or the step is the build's (`publishing → live | failed`, `failed → live`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such site in this org", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The flow does not allow it from the current state (`invalid-transition`, with `state` and `allowed_transitions`), or the first request with this key is still in flight", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, MutationUnavailable, MalformedChange, JsonOnly, IfMatchRequired, StaleVersion, InvalidFields,
    ))]
pub fn transition(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(
        warp::path!("api" / "v1" / "marketing" / "sites" / String / "transitions"),
        warp::post(),
        state,
        auth,
        post_transition
    )
}

/// The published HTML of one page of a site: what its latest successful
/// build rendered, every string of the site escaped. It stays served while
/// the site is edited, until the next build replaces it.
#[utoipa::path(get, path = "/api/v1/marketing/sites/{id}/html/{page}", tag = "sites", operation_id = "get_site_page_html",
    params(
        ("id" = String, Path, description = "The site's id (a UUID)"),
        ("page" = String, Path, description = "The page's slug"),
        OrgHeader,
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The page as an HTML document, with a `Content-Security-Policy` that allows no scripts", content_type = "text/html; charset=utf-8", body = String),
        (status = 404, description = "No such site in this org, or no published page of that slug", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MalformedOrg, ReadUnavailable,
    ))]
pub fn html(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "marketing" / "sites" / String / "html" / String)
        .and(warp::get())
        .and(authenticated(auth))
        .and(with_state(state))
        .then(get_page_html)
        .map(respond)
        .boxed()
}

async fn create_site(
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    require_json(&headers)?;
    let (canonical, name, pages) = request::parse_create(&body)?;
    let request = Mutating::read(principal, &context, &headers, "POST", "/api/v1/marketing/sites", &canonical)?;
    let correlation_id = request.correlation_id.clone();
    Ok(answer(sites::create(&state, request, name, pages).await?, &correlation_id))
}

async fn get_site(
    id: String,
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let id = id.parse::<Uuid>().ok();
    let cached = match id {
        Some(id) => sites::read(&state, principal.org_id, id).await?,
        None => None,
    };
    let Some(cached) = cached else { return Err(sites::missing(id)) };
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

async fn patch_site(
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
    let (canonical, change) = request::parse_patch(&body)?;
    let Ok(site_id) = id.parse::<Uuid>() else { return Err(sites::missing(None)) };
    let route = format!("/api/v1/marketing/sites/{site_id}");
    let request = Mutating::read(principal, &context, &headers, "PATCH", &route, &canonical)?;
    let correlation_id = request.correlation_id.clone();
    Ok(answer(sites::change(&state, request, site_id, if_match, change).await?, &correlation_id))
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
    let (canonical, change) = request::parse_transition(&body)?;
    let Ok(site_id) = id.parse::<Uuid>() else { return Err(sites::missing(None)) };
    let route = format!("/api/v1/marketing/sites/{site_id}/transitions");
    let request = Mutating::read(principal, &context, &headers, "POST", &route, &canonical)?;
    let correlation_id = request.correlation_id.clone();
    Ok(answer(sites::change(&state, request, site_id, if_match, change).await?, &correlation_id))
}

async fn get_page_html(
    id: String,
    page: String,
    principal: Result<Principal, ApiError>,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let Ok(site_id) = id.parse::<Uuid>() else { return Err(sites::missing(None)) };
    let Some(html) = sites::page_html(&state, principal.org_id, site_id, &page).await? else {
        return Err(Problem::new(
            ProblemKind::NotFound,
            format!("Site {site_id} has no published page {:?}", page.chars().take(63).collect::<String>()),
        )
        .into());
    };
    let mut response = Response::new(html.into());
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(http::header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(http::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}
