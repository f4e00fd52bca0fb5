//! The OpenAPI document as a contract, checked on requests generated from the
//! document itself: for the events operations, a request its schemas allow
//! (parameters, headers, body, a valid token sent as one of its security
//! schemes says) is never refused as invalid (400, 422), never answered with
//! a status the document does not list for the operation, and never with a
//! 5xx.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset};
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::string::string_regex;
use proptest::test_runner::{Config, TestCaseError, TestCaseResult, TestRunner};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{TestApp, sign, spawn_app, user_claims};

/// Requests generated per run: enough to meet every branch of the schemas,
/// few enough to take seconds.
const CASES: u32 = 64;

/// The operations requests are generated for.
const OPERATIONS: [(&str, &str); 3] =
    [("post", "/api/v1/events"), ("get", "/api/v1/events"), ("get", "/api/v1/events/{id}")];

/// One generated request.
#[derive(Debug, Clone)]
struct Request {
    /// Method, lower-case as in the document.
    method: &'static str,
    /// The operation's path template.
    template: &'static str,
    /// Parameters: where (`path`, `query`, `header`), name, value.
    parameters: Vec<(String, String, String)>,
    /// The body, with its media type.
    body: Option<(String, Value)>,
    /// The security scheme the token is sent by.
    scheme: String,
}

/// What a run has seen so far.
#[derive(Debug, Default)]
struct Seen {
    /// The idempotency keys used, with the org each was used in.
    keys: HashSet<(Uuid, String)>,
    /// Method, path template and status of every answer.
    answers: HashSet<(&'static str, &'static str, u16)>,
}

impl Request {
    fn parameter(&self, place: &str, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(at, n, _)| at == place && n.eq_ignore_ascii_case(name))
            .map(|(_, _, v)| v.as_str())
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn requests_the_document_allows_are_answered_as_it_says(_: PgPoolOptions, options: PgConnectOptions) {
    let app = Arc::new(spawn_app(options).await);
    let document: Value =
        serde_json::from_str(xentri_api::routes::openapi::document()).expect("the served document is JSON");
    let handle = tokio::runtime::Handle::current();
    // The runner calls the check synchronously: it runs on a thread of its
    // own and waits for each request there, while this test's runtime serves.
    let runner = tokio::task::spawn_blocking({
        let app = app.clone();
        move || {
            let operations = OPERATIONS.iter().map(|(method, template)| requests(&document, method, template));
            let strategy = Union::new(operations);
            let config = Config { cases: CASES, failure_persistence: None, ..Config::default() };
            let seen = Mutex::new(Seen::default());
            let outcome = TestRunner::new(config)
                .run(&strategy, |request| handle.block_on(check(&app, &document, &seen, request)))
                .map_err(|failure| failure.to_string());
            (outcome, seen.into_inner().expect("no check panicked"))
        }
    });
    let (outcome, seen) = runner.await.expect("the runner's thread");
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // Requests that all stopped short of the handlers (a token the api
    // refuses: 401, listed) would hold the property without testing it.
    let reached =
        [("post", "/api/v1/events", 201), ("get", "/api/v1/events", 200), ("get", "/api/v1/events/{id}", 404)];
    for answer in reached {
        assert!(seen.answers.contains(&answer), "no request was answered {answer:?}; answers: {:?}", seen.answers);
    }
}

/// Sends `request` and holds its answer to the document.
async fn check(app: &TestApp, document: &Value, seen: &Mutex<Seen>, request: Request) -> TestCaseResult {
    // The token grants the org `x-org-id` names; without one, the token's
    // org is new, so no two requests share an org unless they name one.
    let home = Uuid::new_v4();
    let switched = request.parameter("header", "x-org-id");
    let org = switched.and_then(xentri_api::auth::claims::org_ref).unwrap_or(home);
    if let Some(key) = request.parameter("header", "idempotency-key") {
        // A key used again with another request is a 422 by another rule.
        let fresh = seen.lock().expect("no check panicked").keys.insert((org, key.to_owned()));
        if !fresh {
            return Err(TestCaseError::reject("an idempotency key already used in this org"));
        }
    }
    let mut claims = user_claims(home);
    if let Some(switched) = switched {
        claims["orgs"] = serde_json::json!([switched]);
    }
    let token = sign(jsonwebtoken::Algorithm::RS256, "test-rsa-1", "rsa_private.pem", &claims);

    let mut path = request.template.to_owned();
    let (mut query, mut headers) = (Vec::new(), Vec::new());
    for (place, name, value) in &request.parameters {
        match place.as_str() {
            "path" => path = path.replace(&format!("{{{name}}}"), value),
            "query" => query.push((name, value)),
            "header" => headers.push((name, value)),
            other => panic!("no parameters in {other}"),
        }
    }
    let method: reqwest::Method = request.method.to_uppercase().parse().expect("a method");
    let mut url = app.url(&path);
    if !query.is_empty() {
        url = format!("{url}?{}", serde_urlencoded::to_string(&query).expect("a query string"));
    }
    let mut builder = app.client.request(method, url);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder = match request.scheme.as_str() {
        "bearer" => builder.bearer_auth(&token),
        "session_cookie" => builder.header("cookie", format!("__session={token}")),
        other => panic!("no way to send a token by {other}"),
    };
    if let Some((media_type, body)) = &request.body {
        builder = builder.header("content-type", media_type).body(body.to_string());
    }
    let response = builder.send().await.map_err(|e| TestCaseError::fail(format!("not answered: {e}")))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    seen.lock().expect("no check panicked").answers.insert((request.method, request.template, status));
    let listed = &document["paths"][request.template][request.method]["responses"];
    let answer = format!("{} {path} answered {status}: {text}", request.method);
    prop_assert!(status != 400 && status != 422, "refused as invalid: {}", answer);
    prop_assert!(listed.get(status.to_string()).is_some(), "a status the document does not list: {}", answer);
    prop_assert!(status < 500, "a server error: {}", answer);
    Ok(())
}

/// The requests `method` `template` allows, by the document.
fn requests(document: &Value, method: &'static str, template: &'static str) -> BoxedStrategy<Request> {
    let operation = &document["paths"][template][method];
    let parameters: Vec<BoxedStrategy<Option<(String, String, String)>>> = operation["parameters"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|parameter| {
            let place = parameter["in"].as_str().expect("a parameter's place").to_owned();
            let name = parameter["name"].as_str().expect("a parameter's name").to_owned();
            let value = values(document, &parameter["schema"]).prop_filter_map("a value sent as text", |v| text(&v));
            let value = value.prop_map(move |value| (place.clone(), name.clone(), value));
            if parameter["required"] == true {
                value.prop_map(Some).boxed()
            } else {
                proptest::option::of(value).boxed()
            }
        })
        .collect();
    let body = match operation["requestBody"]["content"].as_object().and_then(|content| content.iter().next()) {
        Some((media_type, content)) => {
            let media_type = media_type.clone();
            values(document, &content["schema"]).prop_map(move |body| Some((media_type.clone(), body))).boxed()
        }
        None => Just(None).boxed(),
    };
    let schemes: Vec<String> = operation["security"]
        .as_array()
        .expect("the operation's security")
        .iter()
        .flat_map(|requirement| requirement.as_object().expect("a security requirement").keys().cloned())
        .collect();
    (parameters, body, proptest::sample::select(schemes))
        .prop_map(move |(parameters, body, scheme)| Request {
            method,
            template,
            parameters: parameters.into_iter().flatten().collect(),
            body,
            scheme,
        })
        .boxed()
}

/// A parameter's value as sent; null is not sent.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// The values `schema` allows, for the keywords the document uses; any other
/// is a failure here, so the test grows with the document.
fn values(document: &Value, schema: &Value) -> BoxedStrategy<Value> {
    if let Some(reference) = schema["$ref"].as_str() {
        let pointer = reference.strip_prefix('#').expect("a reference within the document");
        return values(document, document.pointer(pointer).expect("the schema referred to"));
    }
    if let Some(any) = schema["anyOf"].as_array().or(schema["oneOf"].as_array()) {
        return Union::new(any.iter().map(|one| values(document, one))).boxed();
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        other => panic!("a schema without a type ({other}): {schema}"),
    };
    let each = types.into_iter().map(|one| match one {
        "null" => Just(Value::Null).boxed(),
        "boolean" => any::<bool>().prop_map(Value::Bool).boxed(),
        "integer" => {
            let min = schema["minimum"].as_i64().unwrap_or(i64::MIN);
            let max = schema["maximum"].as_i64().unwrap_or(i64::MAX);
            (min..=max).prop_map(Value::from).boxed()
        }
        "string" => strings(schema).prop_map(Value::String).boxed(),
        "object" => objects(document, schema),
        other => panic!("no values of type {other} here: {schema}"),
    });
    Union::new(each).boxed()
}

/// The strings a string schema allows: by its pattern or format, within its
/// length bounds.
fn strings(schema: &Value) -> BoxedStrategy<String> {
    let base = match (schema["pattern"].as_str(), schema["format"].as_str()) {
        (Some(pattern), None) => {
            // Every pattern of the document is anchored at both ends, which
            // a generator takes as given.
            let inner = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$'));
            let inner = inner.unwrap_or_else(|| panic!("an unanchored pattern: {pattern}"));
            string_regex(inner).unwrap_or_else(|e| panic!("no generator for {pattern}: {e}")).boxed()
        }
        (None, Some("uuid")) => (any::<u128>(), any::<bool>())
            .prop_map(|(n, upper)| {
                let uuid = Uuid::from_u128(n).to_string();
                if upper { uuid.to_uppercase() } else { uuid }
            })
            .boxed(),
        (None, Some("date-time")) => date_times(),
        (None, None) => any::<String>().boxed(),
        (pattern, format) => panic!("no strings for pattern {pattern:?} and format {format:?}"),
    };
    let min = schema["minLength"].as_u64().unwrap_or(0);
    let max = schema["maxLength"].as_u64().unwrap_or(u64::MAX);
    base.prop_filter("within the length bounds", move |s| (min..=max).contains(&(s.chars().count() as u64))).boxed()
}

/// The objects an object schema allows: its properties (each required one,
/// any optional one), none other when `additionalProperties` is false; any
/// JSON object when it names no properties.
fn objects(document: &Value, schema: &Value) -> BoxedStrategy<Value> {
    let Some(properties) = schema["properties"].as_object() else {
        return json_objects();
    };
    assert_eq!(schema["additionalProperties"], false, "objects with further properties are not generated: {schema}");
    let required: HashSet<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
        .iter()
        .map(|(name, property)| {
            let is_required = required.contains(name.as_str());
            let name = name.clone();
            let field = values(document, property).prop_map(move |value| (name.clone(), value));
            if is_required { field.prop_map(Some).boxed() } else { proptest::option::of(field).boxed() }
        })
        .collect();
    fields.prop_map(|fields| Value::Object(fields.into_iter().flatten().collect())).boxed()
}

/// Any JSON object, a few levels deep.
fn json_objects() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("a finite number", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map(any::<String>(), value, 0..4)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
        .boxed()
}

/// RFC 3339 date-times (`format: date-time`), in every spelling the RFC
/// allows: any instant of years 1 to 9998 at any offset, `T` or `t`, `Z`,
/// `z`, `+00:00` or `-00:00` for UTC, a fraction of 1 to 9 digits or none,
/// and leap seconds.
fn date_times() -> BoxedStrategy<String> {
    let spelled = (
        -62_135_596_800i64..253_370_764_800,
        0u32..1_000_000_000,
        0usize..10,
        -1439i32..=1439,
        any::<bool>(),
        0usize..4,
    )
        .prop_map(|(seconds, nanos, digits, minutes, lower_t, utc)| {
            let offset = FixedOffset::east_opt(minutes * 60).expect("an offset within a day");
            let at = DateTime::from_timestamp(seconds, nanos).expect("an instant in range").with_timezone(&offset);
            let mut text = at.format("%Y-%m-%dT%H:%M:%S").to_string();
            if lower_t {
                text = text.replacen('T', "t", 1);
            }
            if digits > 0 {
                text.push_str(&format!(".{nanos:09}")[..=digits]);
            }
            let zone = match (minutes, utc) {
                (0, 0) => "Z".to_owned(),
                (0, 1) => "z".to_owned(),
                (0, 2) => "-00:00".to_owned(),
                _ => at.format("%:z").to_string(),
            };
            text + &zone
        });
    let leap = prop_oneof![Just("2016-12-31T23:59:60Z".to_owned()), Just("1990-12-31T15:59:60-08:00".to_owned())];
    prop_oneof![30 => spelled, 1 => leap].boxed()
}
