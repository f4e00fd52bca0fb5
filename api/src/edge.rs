//! The edge: what every request passes through, around the warp routes.
//!
//! It reads or starts the W3C trace context, sheds load, authenticates a
//! request to an authenticated route *before* reading its body (a bad or
//! missing token is a 401 without a byte of the body read), bounds the body
//! (413 above `api.body_limit_bytes`, or `api.bulk_body_limit_bytes` on the
//! bulk routes, chunked or not; 408 when it has not
//! arrived whole within `api.body_read_timeout_ms`), runs the routes with
//! panics caught (500), renders every problem with the caller's language
//! ([`crate::i18n`]: the user's choice, `Accept-Language`, the org's default)
//! and trace id, names the allowed methods on a 405, echoes `traceparent`, and
//! writes one log line and one metric sample per request.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower_service::Service;
use tracing::{Instrument, field};
use warp::filters::BoxedFilter;

use crate::auth::{Authenticated, Authenticator, Principal};
use crate::db::Db;
use crate::i18n::Lang;
use crate::problem::{Problem, ProblemKind};
use crate::trace::TraceContext;

/// Errors a response body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type the edge answers with.
pub type Body = BoxBody<Bytes, BoxError>;

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What the edge knows of a request, available to handlers as a request
/// extension (`warp::ext::get::<RequestContext>()`).
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The trace this request belongs to.
    pub trace: TraceContext,
    /// The language `Accept-Language` asks for (English when it names none).
    /// A problem's title may still follow the user's or the org's stored
    /// choice: the edge decides when it renders the problem.
    pub lang: Lang,
}

/// What the edge bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted body, in bytes.
    pub body_bytes: usize,
    /// Largest accepted body of a bulk route ([`crate::routes::BULK_ROUTES`]), in bytes.
    pub bulk_body_bytes: usize,
    /// How long a body may take to arrive whole, from its request's head.
    pub body_read_timeout: Duration,
    /// Most requests answered at once; more are shed.
    pub max_concurrent: usize,
}

/// The edge service around the routes; cheap to clone, one per connection.
#[derive(Clone)]
pub struct Edge {
    /// The routes, rejections already recovered.
    routes: BoxedFilter<(warp::reply::Response,)>,
    /// Body size and time, concurrency.
    limits: Limits,
    /// Requests being answered right now.
    in_flight: Arc<AtomicUsize>,
    /// Verifies the token of a request to an authenticated route before its
    /// body is read; without it the routes' own filter does, after.
    auth: Option<Arc<Authenticator>>,
    /// Where the users' and orgs' language choices are read when a problem
    /// is rendered for an authenticated caller; without it, problem titles
    /// follow `Accept-Language` alone.
    languages: Option<Db>,
}

/// Decrements the in-flight count when a request is done, however it ends.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Counts one more request; also returns how many there are with it.
    fn enter(count: &Arc<AtomicUsize>) -> (Self, usize) {
        let before = count.fetch_add(1, Ordering::SeqCst);
        (Self(count.clone()), before + 1)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Edge {
    /// Serves `routes` within `limits`, counting requests in flight in
    /// `in_flight`.
    pub fn new(routes: BoxedFilter<(warp::reply::Response,)>, limits: Limits, in_flight: Arc<AtomicUsize>) -> Self {
        Self { routes, limits, in_flight, auth: None, languages: None }
    }

    /// Renders the problems of authenticated callers in their stored language
    /// choices, read from `db` ([`crate::i18n::for_problem`]).
    pub fn with_language_choices(mut self, db: Db) -> Self {
        self.languages = Some(db);
        self
    }

    /// Authenticates requests to authenticated routes with `auth` before
    /// their bodies are read, handing the caller to the routes as an
    /// [`Authenticated`] request extension.
    pub fn authenticating(mut self, auth: Arc<Authenticator>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Answers one request. Never fails: every outcome is a response.
    pub async fn handle<B>(self, request: Request<B>) -> Result<Response<Body>, Infallible>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let (_in_flight, in_flight) = InFlight::enter(&self.in_flight);
        let trace = TraceContext::from_headers(request.headers());
        let accepted = Lang::accepted(request.headers());
        let method = request.method().clone();
        let route = crate::routes::template(routed(&method), request.uri().path());
        let span = tracing::info_span!(
            "request",
            trace_id = %trace.trace_id,
            method = %method,
            route,
            org_id = field::Empty,
            user_id = field::Empty,
        );
        let languages = self.languages.clone();
        let (response, caller) = if in_flight > self.limits.max_concurrent && !always_answered(request.uri().path()) {
            // Shed at once: queueing past the limit only turns overload into
            // timeouts for everyone. The request has done nothing yet.
            let shed = Problem::new(ProblemKind::Overloaded, "Too many requests are being answered; retry shortly");
            (boxed(shed.into_response()), None)
        } else {
            let context = RequestContext { trace: trace.clone(), lang: accepted.unwrap_or_default() };
            self.route(request, context).instrument(span.clone()).await
        };
        let lang = crate::i18n::for_answer(languages.as_ref(), response.status(), caller.as_ref(), accepted)
            .instrument(span.clone())
            .await;
        let mut response = finish(response, lang, &trace);
        if response.status() == http::StatusCode::METHOD_NOT_ALLOWED {
            allow(&mut response, route);
        }
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        crate::metrics::record_request(method.as_str(), route, status, elapsed);
        span.in_scope(|| {
            tracing::info!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request");
        });
        Ok(response)
    }

    /// Runs the routes; also returns the caller the edge authenticated, if it did.
    async fn route<B>(self, request: Request<B>, context: RequestContext) -> (Response<Body>, Option<Principal>)
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = request.into_parts();
        // HEAD is GET without the body (RFC 9110, section 9.3.2): routed as
        // GET; hyper, which saw the request's own method, sends the answer's
        // head with its length and leaves the body out.
        parts.method = routed(&parts.method).clone();
        let mut caller = None;
        // Before the body: an unauthenticated caller gets its 401 without the
        // server reading (or waiting for) a byte of it.
        if let Some(auth) = &self.auth
            && needs_authentication(&parts.method, parts.uri.path())
        {
            match crate::auth::authenticate_request(auth, &parts.headers).await {
                Ok(principal) => {
                    parts.extensions.insert(Authenticated(principal.clone()));
                    caller = Some(principal);
                }
                Err(error) => return (boxed(error.into_response()), None),
            }
        }
        (self.handle_authenticated(parts, body, context).await, caller)
    }

    /// Reads the body within its bounds and runs the routes with panics caught.
    async fn handle_authenticated<B>(
        self,
        mut parts: http::request::Parts,
        body: B,
        context: RequestContext,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let limit = if crate::routes::is_bulk(&parts.method, parts.uri.path()) {
            self.limits.bulk_body_bytes
        } else {
            self.limits.body_bytes
        };
        let deadline = self.limits.body_read_timeout;
        let body = match tokio::time::timeout(deadline, read_body(&parts.headers, body, limit)).await {
            Ok(Ok(body)) => body,
            Ok(Err(problem)) => return boxed(problem.into_response()),
            Err(_elapsed) => {
                let seconds = deadline.as_secs_f64();
                let problem = Problem::new(
                    ProblemKind::RequestTimeout,
                    format!("The request body did not arrive within {seconds} seconds"),
                );
                return boxed(problem.into_response());
            }
        };
        parts.extensions.insert(context);
        let request = Request::from_parts(parts, Full::new(body));
        let mut service = warp::service(self.routes);
        // The routes run in a task of their own: a client that hangs up does
        // not cancel a handler halfway through a database transaction (which
        // would hand a connection back to the pool mid-transaction). The task
        // finishes, its answer is dropped. A panic ends the task, not the server.
        let handled = tokio::spawn(async move { service.call(request).await }.instrument(tracing::Span::current()));
        match handled.await {
            Ok(Ok(response)) => boxed(response),
            Ok(Err(infallible)) => match infallible {},
            Err(error) => {
                let message = match error.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic".to_owned()),
                    Err(error) => error.to_string(),
                };
                tracing::error!(panic = message, "handler panicked");
                boxed(Problem::new(ProblemKind::Internal, "An unexpected error occurred").into_response())
            }
        }
    }
}

/// The served routes anyone may call; every other served route needs a token.
const PUBLIC_ROUTES: &[&str] = &["/health", "/health/ready", "/api/v1/metrics", "/api/v1/openapi.json"];

/// Whether `method` `path` is a served route that needs a token. A new route
/// needs one unless it is added to [`PUBLIC_ROUTES`]; an unserved method or
/// path is left to the routes (404, 405).
fn needs_authentication(method: &Method, path: &str) -> bool {
    let template = crate::routes::template(method, path);
    crate::routes::ROUTES.iter().any(|route| route.template == template && route.method == method.as_str())
        && !PUBLIC_ROUTES.contains(&template)
}

/// The operational routes, answered even when the api sheds load: an
/// orchestrator must still see that the api is alive.
fn always_answered(path: &str) -> bool {
    path == "/api/v1/metrics" || path == "/health" || path.starts_with("/health/")
}

/// Reads the whole body, refusing more than `limit` bytes whether or not a
/// `Content-Length` announces them.
async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, Problem>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let too_large = || Problem::new(ProblemKind::PayloadTooLarge, format!("The request body exceeds {limit} bytes"));
    let announced = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(error) => {
            tracing::debug!(error = %error, "request body unreadable");
            Err(Problem::new(ProblemKind::MalformedRequest, "The request body could not be read"))
        }
    }
}

fn boxed<B>(response: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    response.map(|body| body.map_err(Into::into).boxed())
}

/// Renders the response's problem (or a bare error status as one), and echoes
/// `traceparent`.
fn finish(mut response: Response<Body>, lang: Lang, trace: &TraceContext) -> Response<Body> {
    let status = response.status();
    let already_problem =
        response.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let problem = response.extensions_mut().remove::<Problem>().or_else(|| {
        let bare_error = (status.is_client_error() || status.is_server_error()) && !already_problem;
        bare_error.then(|| {
            let reason = status.canonical_reason().unwrap_or("Error");
            Problem::new(ProblemKind::for_status(status), reason)
        })
    });
    if let Some(problem) = problem {
        let document = problem.document(lang, &trace.trace_id);
        let body = serde_json::to_vec(&document).unwrap_or_default();
        let (mut parts, _) = response.into_parts();
        parts.status = problem.kind.status();
        parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        parts.headers.insert(CONTENT_LANGUAGE, HeaderValue::from_static(lang.code()));
        parts.headers.remove(CONTENT_LENGTH);
        if problem.kind.status() == http::StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is worth retrying soon: the database is briefly away,
            // the api is shutting down or shedding load.
            parts.headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response = Response::from_parts(parts, Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    }
    if let Ok(value) = HeaderValue::from_str(&trace.traceparent()) {
        response.headers_mut().insert("traceparent", value);
    }
    response
}

/// The method a request is routed by: its own, or GET for a HEAD.
fn routed(method: &http::Method) -> &http::Method {
    if method == http::Method::HEAD { &http::Method::GET } else { method }
}

/// Lists the methods served at the path of a 405 in its `Allow` header, as
/// RFC 9110 requires of every 405.
fn allow(response: &mut Response<Body>, route: &str) {
    let methods = crate::routes::methods(route).join(", ");
    if let Ok(value) = HeaderValue::from_str(&methods) {
        response.headers_mut().insert(ALLOW, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::Filter;
    use warp::reply::Reply;

    fn limits(body_bytes: usize, max_concurrent: usize) -> Limits {
        Limits { body_bytes, bulk_body_bytes: body_bytes, body_read_timeout: Duration::from_secs(30), max_concurrent }
    }

    async fn call(edge: &Edge, request: Request<Full<Bytes>>) -> (Response<Body>, serde_json::Value) {
        let response = edge.clone().handle(request).await.unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (Response::from_parts(parts, Full::new(bytes.clone()).map_err(|e| match e {}).boxed()), json)
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_problem() {
        let routes = warp::path!("boom")
            .map(|| -> warp::reply::Response { panic!("secret internal detail") })
            .recover(crate::problem::recover)
            .unify()
            .boxed();
        let edge = Edge::new(routes, limits(1024, 16), Arc::default());
        for lang in ["en", "fr"] {
            let request =
                Request::get("/boom").header("accept-language", lang).body(Full::new(Bytes::new())).expect("request");
            let (response, body) = call(&edge, request).await;
            assert_eq!(response.status(), 500);
            assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
            assert_eq!(body["type"], "https://xentri.io/errors/internal");
            assert!(!body.to_string().contains("secret"), "{body}");
            insta::assert_json_snapshot!(format!("panic_{lang}"), body, {".trace_id" => "[trace_id]"});
        }
    }

    #[tokio::test]
    async fn chunked_bodies_over_the_limit_are_413() {
        let routes = warp::any().map(|| warp::reply().into_response()).boxed();
        let edge = Edge::new(routes, limits(8, 16), Arc::default());
        // No Content-Length: the limit must hold while reading.
        let request = Request::post("/").body(Full::new(Bytes::from_static(b"0123456789"))).expect("request");
        let (response, body) = call(&edge, request).await;
        assert_eq!(response.status(), 413);
        assert_eq!(body["type"], "https://xentri.io/errors/payload-too-large");
    }

    #[tokio::test]
    async fn past_the_concurrency_limit_requests_are_shed_with_503_and_retry_after() {
        let release = Arc::new(tokio::sync::Notify::new());
        let held = release.clone();
        let routes = warp::path!("slow")
            .then(move || {
                let held = held.clone();
                async move {
                    held.notified().await;
                    warp::reply().into_response()
                }
            })
            .or(warp::path!("health").map(|| warp::reply().into_response()))
            .unify()
            .or(warp::path!("api" / "v1" / "metrics").map(|| warp::reply().into_response()))
            .unify()
            .boxed();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let edge = Edge::new(routes, limits(1024, 1), in_flight.clone());
        let first = tokio::spawn({
            let edge = edge.clone();
            async move { call(&edge, Request::get("/slow").body(Full::new(Bytes::new())).expect("request")).await }
        });
        while in_flight.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let (shed, body) = call(&edge, Request::get("/slow").body(Full::new(Bytes::new())).expect("request")).await;
        assert_eq!(shed.status(), 503);
        assert_eq!(shed.headers()[RETRY_AFTER], "1");
        assert_eq!(body["type"], "https://xentri.io/errors/overloaded");
        insta::assert_json_snapshot!("overloaded", body, {".trace_id" => "[trace_id]"});
        let (health, _) = call(&edge, Request::get("/health").body(Full::new(Bytes::new())).expect("request")).await;
        assert_eq!(health.status(), 200, "/health answers while the api sheds load");
        let metrics = Request::get("/api/v1/metrics").body(Full::new(Bytes::new())).expect("request");
        assert_eq!(call(&edge, metrics).await.0.status(), 200, "so do the metrics");
        release.notify_one();
        let (answered, _) = first.await.expect("the first request's task");
        assert_eq!(answered.status(), 200, "the request within the limit is answered");
        assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_408() {
        let routes = warp::any().map(|| warp::reply().into_response()).boxed();
        let limits = Limits {
            body_bytes: 1024,
            bulk_body_bytes: 1024,
            body_read_timeout: Duration::from_millis(200),
            max_concurrent: 16,
        };
        let edge = Edge::new(routes, limits, Arc::default());
        // A body that never sends a byte.
        let never = http_body_util::StreamBody::new(futures_util::stream::pending::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >());
        let request = Request::post("/").header(CONTENT_LENGTH, "10").body(never).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(5), edge.clone().handle(request))
            .await
            .expect("answered within 5 s")
            .unwrap_or_else(|e| match e {});
        assert_eq!(response.status(), 408);
        let bytes = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(body["type"], "https://xentri.io/errors/request-timeout");
    }

    #[test]
    fn only_served_non_operational_routes_need_a_token() {
        assert!(needs_authentication(&Method::POST, "/api/v1/events"));
        assert!(needs_authentication(&Method::GET, "/api/v1/events"));
        assert!(needs_authentication(&Method::GET, "/api/v1/events/0190c5a0-0000-7000-8000-000000000000"));
        assert!(!needs_authentication(&Method::GET, "/health/ready"));
        assert!(!needs_authentication(&Method::GET, "/api/v1/openapi.json"));
        assert!(!needs_authentication(&Method::GET, "/api/v1/metrics"));
        // Not served: left to the routes' 404 and 405.
        assert!(!needs_authentication(&Method::DELETE, "/api/v1/events"));
        assert!(!needs_authentication(&Method::GET, "/nope"));
    }
}
