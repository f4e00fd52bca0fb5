//! `spawn_app`: the api in-process on port 0 against a test database.

use std::path::PathBuf;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use xentri_api::startup::Application;
use xentri_api::state::AppState;
use xentri_core::Settings;
pub use xentri_test_support::{
    DEADLINE, TestSettings, database_url, eventually, redis_connection, unique_key_prefix, wait_until,
};

/// A running api and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    /// The `x-correlation-id` that [`send`] sends.
    pub flow: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

/// `iss` the test api expects of user tokens.
pub const ISSUER: &str = "https://clerk.xentri.test";
/// `aud` the test api expects of user tokens.
pub const AUDIENCE: &str = "xentri-api";
/// The secret of the `billing` service.
pub const BILLING_SECRET: &str = "billing-service-secret";

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Test settings: `config/test.toml`, port 0, the given database, the test
/// JWKS, issuer, audience and `billing` service, plus `extra`.
pub fn settings(database_url: &str, extra: &[(&str, &str)]) -> Settings {
    TestSettings::new(database_url)
        .var("XENTRI_AUTH__JWKS_PATH", &fixture("jwks.json").display().to_string())
        .vars(&[
            ("XENTRI_AUTH__ISSUER", ISSUER),
            ("XENTRI_AUTH__AUDIENCE", AUDIENCE),
            ("XENTRI_AUTH__SERVICES__BILLING", BILLING_SECRET),
        ])
        .vars(extra)
        .load()
}

pub async fn spawn_app(options: PgConnectOptions) -> TestApp {
    spawn_with(settings(&database_url(&options), &[])).await
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    xentri_api::install_crypto_provider();
    let app = Application::build(settings).await.expect("application builds");
    let address = format!("http://{}", app.address());
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::new(),
        state,
        flow: "test".to_owned(),
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

/// The api with a Redis key prefix of its own (returned), its requests
/// through [`send`] correlated as `flow`; `extra` settings besides.
pub async fn spawn_prefixed(options: &PgConnectOptions, flow: &str, extra: &[(&str, &str)]) -> (TestApp, String) {
    let prefix = unique_key_prefix();
    let mut vars = vec![("XENTRI_REDIS__KEY_PREFIX", prefix.as_str())];
    vars.extend_from_slice(extra);
    let mut app = spawn_with(settings(&database_url(options), &vars)).await;
    app.flow = flow.to_owned();
    (app, prefix)
}

/// A request as the domain tests send it: as `token`, with the app's
/// `x-correlation-id` (`TestApp::flow`), an `Idempotency-Key` unless `key` is
/// empty, and `If-Match` and a JSON body when given. Answers the status, the
/// headers and the JSON body (null when the body is not JSON).
pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    key: &str,
    if_match: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut request =
        app.client.request(method, app.url(path)).bearer_auth(token).header("x-correlation-id", &app.flow);
    if !key.is_empty() {
        request = request.header("idempotency-key", key);
    }
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    (status, headers, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// The fields a problem document's `errors` name, in order.
pub fn problem_fields(problem: &serde_json::Value) -> Vec<&str> {
    problem["errors"].as_array().map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect()).unwrap_or_default()
}

/// A fresh idempotency key.
pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    /// Signals shutdown and waits for the server to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task ends cleanly");
        }
    }
}

/// Status, headers and JSON body of a response.
pub async fn json(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.expect("JSON body");
    (status, headers, body)
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Claims of a valid Clerk-style user token for `org`.
pub fn user_claims(org: uuid::Uuid) -> serde_json::Value {
    let now = now();
    serde_json::json!({
        "sub": "user_test", "org_id": org.to_string(), "org_role": "org:admin",
        "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + 300,
    })
}

/// Signs `claims` with `alg`, `kid` and the PEM key in fixture `key_file`.
pub fn sign(alg: jsonwebtoken::Algorithm, kid: &str, key_file: &str, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(fixture(key_file)).expect("fixture key");
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
    }
    .expect("key parses");
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("signs")
}

/// A valid RS256 user token for `org`.
pub fn user_token(org: uuid::Uuid) -> String {
    sign(jsonwebtoken::Algorithm::RS256, "test-rsa-1", "rsa_private.pem", &user_claims(org))
}

impl TestApp {
    pub async fn post_event(&self, token: &str, key: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/events"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }
}

/// A type without a contract: any payload object is accepted, for tests that
/// need an event, not a particular one.
pub const SAMPLE_TYPE: &str = "xentri.sample.noted.v1";

/// A minimal valid event body: a payload valid against the type's contract
/// (`xentri_test_support::valid_payload`), with `name` and `n` added.
pub fn event_body(event_type: &str) -> serde_json::Value {
    let payload = xentri_test_support::valid_payload_with(event_type, serde_json::json!({"name": "Ada", "n": 1}));
    serde_json::json!({"type": event_type, "payload": payload})
}

/// Inserts `count` events for `org` straight into the table (as the owner),
/// with types cycling through `types`; returns their seqs in order.
pub async fn seed_events(pool: &sqlx::PgPool, org: uuid::Uuid, count: i64, types: &[&str]) -> Vec<i64> {
    let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
    sqlx::query_scalar(
        "INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
         SELECT gen_random_uuid(), $1, ($3::text[])[1 + (i % array_length($3::text[], 1))],
                jsonb_build_object('i', i), 'user:seed', '4bf92f3577b34da6a3ce929d0e0e4736',
                'corr-' || (i % 7), now() - make_interval(secs => ($2 - i))
         FROM generate_series(1, $2) AS i
         RETURNING seq",
    )
    .bind(org)
    .bind(count)
    .bind(&types)
    .fetch_all(pool)
    .await
    .expect("seed")
}

/// Reads every page after `cursor` as a tailing client does; returns the seqs
/// in the order given and the cursor to poll with next (the last `next`, or
/// `cursor` when nothing came).
pub async fn tail(app: &TestApp, token: &str, mut cursor: Option<String>) -> (Vec<i64>, Option<String>) {
    let mut seqs = Vec::new();
    loop {
        let path = match &cursor {
            Some(after) => format!("/api/v1/events?limit=1000&after={after}"),
            None => "/api/v1/events?limit=1000".to_owned(),
        };
        let (status, _, page) = json(app.get_as(token, &path).await).await;
        assert_eq!(status, 200, "{page}");
        seqs.extend(page["data"].as_array().expect("data").iter().filter_map(|e| e["seq"].as_i64()));
        cursor = page["next"].as_str().map(str::to_owned).or(cursor);
        if page["has_more"] != true {
            return (seqs, cursor);
        }
    }
}

/// Waits until a list read exposes `seq`. Lists expose only rows below the
/// commit horizon (older than every running write transaction on the server),
/// so a row becomes listable shortly after its commit, never before. Reads the
/// org's whole list each time.
pub async fn wait_listable(app: &TestApp, token: &str, seq: i64) {
    wait_until(DEADLINE, &format!("seq {seq} listable"), || async { tail(app, token, None).await.0.contains(&seq) })
        .await;
}
