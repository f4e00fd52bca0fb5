//! The warp routes, one module per resource, one function per endpoint.
//!
//! Filters read path → method → body → state, then `.then(handler)` and
//! `.map(respond)`. [`ROUTES`] lists what is served; metrics label requests with
//! its templates and a test holds the OpenAPI document to it.

/// A mutating route of a domain resource: authenticated, with its request
/// context, headers and body, answered by `$handler` (whose `Result` becomes
/// the response, a problem document on error). Defined before the modules
/// that use it.
macro_rules! mutating {
    ($path:expr, $method:expr, $state:expr, $auth:expr, $handler:expr) => {
        warp::Filter::boxed(
            $path
                .and($method)
                .and($crate::auth::authenticated($auth))
                .and($crate::routes::context())
                .and(warp::header::headers_cloned())
                .and(warp::body::bytes())
                .and($crate::routes::with_state($state))
                .then($handler)
                .map($crate::problem::respond),
        )
    };
}

pub mod events;
pub mod health;
pub mod leads;
pub mod metrics;
pub mod openapi;
pub mod preferences;
pub mod schemas;
pub mod sites;
pub mod soul;

use http::{HeaderValue, Method, StatusCode};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::domain::mutation::Answer;
use crate::domain::precondition;
use crate::domain::request::CORRELATION_HEADER;
use crate::edge::RequestContext;
use crate::idempotency::{self, StoredResponse};
use crate::problem;
use crate::state::AppState;

/// One served route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path template as in the OpenAPI document, e.g. `/api/v1/events/{id}`.
    pub template: &'static str,
}

/// Every served route.
pub const ROUTES: &[Route] = &[
    Route { method: "GET", template: "/health" },
    Route { method: "GET", template: "/health/ready" },
    Route { method: "GET", template: "/api/v1/metrics" },
    Route { method: "GET", template: "/api/v1/openapi.json" },
    Route { method: "POST", template: "/api/v1/events" },
    Route { method: "GET", template: "/api/v1/events" },
    Route { method: "GET", template: "/api/v1/events/{id}" },
    Route { method: "GET", template: "/api/v1/soul" },
    Route { method: "POST", template: "/api/v1/soul" },
    Route { method: "PUT", template: "/api/v1/soul" },
    Route { method: "POST", template: "/api/v1/soul/transitions" },
    Route { method: "POST", template: "/api/v1/sales/leads" },
    Route { method: "GET", template: "/api/v1/sales/leads" },
    Route { method: "GET", template: "/api/v1/sales/leads/{id}" },
    Route { method: "PATCH", template: "/api/v1/sales/leads/{id}" },
    Route { method: "POST", template: "/api/v1/sales/leads/{id}/transitions" },
    Route { method: "POST", template: "/api/v1/sales/leads:import" },
    Route { method: "POST", template: "/api/v1/marketing/sites" },
    Route { method: "GET", template: "/api/v1/marketing/sites/{id}" },
    Route { method: "PATCH", template: "/api/v1/marketing/sites/{id}" },
    Route { method: "POST", template: "/api/v1/marketing/sites/{id}/transitions" },
    Route { method: "GET", template: "/api/v1/marketing/sites/{id}/html/{page}" },
    Route { method: "GET", template: "/api/v1/schemas" },
    Route { method: "GET", template: "/api/v1/schemas/{type}" },
    Route { method: "GET", template: "/api/v1/me/preferences" },
    Route { method: "PUT", template: "/api/v1/me/preferences" },
    Route { method: "GET", template: "/api/v1/org/settings" },
    Route { method: "PUT", template: "/api/v1/org/settings" },
];

/// The bulk routes: their bodies may be up to `api.bulk_body_limit_bytes`
/// (an import of 1,000 leads), every other route's up to `api.body_limit_bytes`.
pub const BULK_ROUTES: &[Route] = &[Route { method: "POST", template: "/api/v1/sales/leads:import" }];

/// Whether `method` `path` is a bulk route.
pub fn is_bulk(method: &Method, path: &str) -> bool {
    let template = template(method, path);
    BULK_ROUTES.iter().any(|route| route.template == template && route.method == method.as_str())
}

/// The template `path` is served under, or `"unmatched"`; a bounded label.
pub fn template(method: &Method, path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let fits = |route: &Route| {
        let template: Vec<&str> = route.template.split('/').collect();
        template.len() == segments.len()
            && template.iter().zip(&segments).all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
    };
    ROUTES
        .iter()
        .filter(|route| fits(route))
        .find(|route| route.method == method.as_str())
        .or_else(|| ROUTES.iter().find(|route| fits(route)))
        .map_or("unmatched", |route| route.template)
}

/// The methods served under `template`, in alphabetical order: what a 405's
/// `Allow` header lists (RFC 9110, section 10.2.1). HEAD is served wherever
/// GET is (the edge routes it as GET).
pub fn methods(template: &str) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = ROUTES
        .iter()
        .filter(|route| route.template == template)
        .flat_map(
            |route| if route.method == "GET" { &["GET", "HEAD"][..] } else { std::slice::from_ref(&route.method) },
        )
        .copied()
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// All routes, with warp's rejections turned into problems.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    health::health()
        .or(health::ready(state.clone()))
        .unify()
        .or(metrics::metrics(state.clone()))
        .unify()
        .or(openapi::openapi())
        .unify()
        .or(events::routes(state.clone(), state.auth.clone()))
        .unify()
        .or(soul::routes(state.clone(), state.auth.clone()))
        .unify()
        .or(leads::routes(state.clone(), state.auth.clone()))
        .unify()
        .or(sites::routes(state.clone(), state.auth.clone()))
        .unify()
        .or(schemas::routes(state.clone(), state.auth.clone()))
        .unify()
        .or(preferences::routes(state.clone(), state.auth.clone()))
        .unify()
        .recover(problem::recover)
        .unify()
        .boxed()
}

/// What the edge knows of the request (a fresh trace when the routes run
/// without the edge, as in unit tests).
pub(crate) fn context() -> impl Filter<Extract = (RequestContext,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<RequestContext>().map(|ctx: Option<RequestContext>| {
        ctx.unwrap_or_else(|| RequestContext { trace: crate::trace::TraceContext::start(), lang: Default::default() })
    })
}

/// A JSON answer with `status` and `body`.
pub(crate) fn json_response(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response {
    let mut response = Response::new(body.into().into());
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An idempotency key's stored answer, replayed: its status and body, and
/// `Idempotent-Replayed: true`.
pub(crate) fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = json_response(status, stored.body);
    response.headers_mut().insert(idempotency::REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// A domain mutation's answer: with its resource's `ETag` when it has a
/// version, and the request's correlation id; a replay as stored, with the
/// `ETag` of the version it answered.
pub(crate) fn answer(answer: Answer, correlation_id: &str) -> Response {
    let (mut response, version) = match answer {
        Answer::Done { status, version, body } => (json_response(status, body), version),
        Answer::Replayed(stored) => {
            let version =
                serde_json::from_str::<serde_json::Value>(&stored.body).ok().and_then(|body| body["version"].as_i64());
            (replay(stored), version)
        }
    };
    if let Some(version) = version {
        set_etag(&mut response, version);
    }
    if let Ok(value) = HeaderValue::from_str(correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// Sets the `ETag` of `version`.
pub(crate) fn set_etag(response: &mut Response, version: i64) {
    if let Ok(value) = HeaderValue::from_str(&precondition::etag(version)) {
        response.headers_mut().insert(http::header::ETAG, value);
    }
}

/// Hands `state` to a handler.
pub(crate) fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_bounded() {
        assert_eq!(template(&Method::GET, "/health"), "/health");
        assert_eq!(template(&Method::GET, "/health/"), "/health");
        assert_eq!(template(&Method::POST, "/health"), "/health");
        assert_eq!(template(&Method::GET, "/nope/123"), "unmatched");
        assert_eq!(template(&Method::POST, "/api/v1/sales/leads:import"), "/api/v1/sales/leads:import");
        assert_eq!(template(&Method::PATCH, "/api/v1/sales/leads/abc"), "/api/v1/sales/leads/{id}");
        assert!(is_bulk(&Method::POST, "/api/v1/sales/leads:import"));
        assert!(!is_bulk(&Method::POST, "/api/v1/sales/leads"));
        assert_eq!(template(&Method::GET, "/api/v1/schemas/xentri.lead.created.v1"), "/api/v1/schemas/{type}");
    }

    #[test]
    fn every_served_template_has_its_methods() {
        assert_eq!(methods("/api/v1/events"), ["GET", "HEAD", "POST"]);
        assert_eq!(methods("/api/v1/events/{id}"), ["GET", "HEAD"]);
        assert_eq!(methods("/api/v1/soul"), ["GET", "HEAD", "POST", "PUT"]);
        assert_eq!(methods("/api/v1/soul/transitions"), ["POST"]);
        assert_eq!(methods("/api/v1/sales/leads"), ["GET", "HEAD", "POST"]);
        assert_eq!(methods("/api/v1/sales/leads/{id}"), ["GET", "HEAD", "PATCH"]);
        assert_eq!(methods("/api/v1/sales/leads/{id}/transitions"), ["POST"]);
        assert_eq!(methods("/api/v1/sales/leads:import"), ["POST"]);
        assert_eq!(methods("/api/v1/marketing/sites"), ["POST"]);
        assert_eq!(methods("/api/v1/marketing/sites/{id}"), ["GET", "HEAD", "PATCH"]);
        assert_eq!(methods("/api/v1/marketing/sites/{id}/transitions"), ["POST"]);
        assert_eq!(methods("/api/v1/marketing/sites/{id}/html/{page}"), ["GET", "HEAD"]);
        assert_eq!(methods("/api/v1/schemas"), ["GET", "HEAD"]);
        assert_eq!(methods("/api/v1/schemas/{type}"), ["GET", "HEAD"]);
        assert_eq!(methods("/api/v1/me/preferences"), ["GET", "HEAD", "PUT"]);
        assert_eq!(methods("/api/v1/org/settings"), ["GET", "HEAD", "PUT"]);
        assert_eq!(methods("/health"), ["GET", "HEAD"]);
        assert!(methods("unmatched").is_empty());
        assert!(ROUTES.iter().all(|route| methods(route.template).contains(&route.method)));
        assert!(ROUTES.iter().all(|route| route.method != "GET" || methods(route.template).contains(&"HEAD")));
    }
}
