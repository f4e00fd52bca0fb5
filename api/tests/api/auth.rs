//! Every authentication case, against tokens signed with the test keys whose
//! public halves the api reads from `tests/fixtures/jwks.json`.

use base64::Engine;
use jsonwebtoken::Algorithm;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use xentri_api::auth::REFUSED;

use crate::helpers::{
    BILLING_SECRET, TestApp, database_url, event_body, json, now, settings, sign, spawn_app, spawn_with, user_claims,
    user_token,
};

/// Asserts `token` is refused with a 401 problem whose detail is the one
/// detail of every refusal (which check failed is only logged); snapshots the
/// document.
async fn refused(app: &TestApp, name: &str, token: &str) {
    let (status, headers, body) = json(app.get_as(token, "/api/v1/events").await).await;
    assert_eq!(status, 401, "{name}: {body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "https://xentri.io/errors/unauthorized", "{name}");
    assert_eq!(body["detail"], REFUSED, "{name}");
    insta::assert_json_snapshot!(format!("auth_{name}"), body, {".trace_id" => "[trace_id]"});
}

/// Asserts `token` is refused with a 401 (no snapshot).
async fn refused_quietly(app: &TestApp, name: &str, token: &str) {
    let (status, _, body) = json(app.get_as(token, "/api/v1/events").await).await;
    assert_eq!(status, 401, "{name}: {body}");
    assert_eq!(body["detail"], REFUSED, "{name}");
}

/// Signs `claims` with the billing service's secret, as a service token.
fn billing(claims: &serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("billing".to_owned());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(BILLING_SECRET.as_bytes()))
        .expect("sign")
}

async fn accepted(app: &TestApp, token: &str) {
    let response = app.get_as(token, "/api/v1/events").await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

fn with(mut claims: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    claims[key] = value;
    claims
}

fn without(mut claims: serde_json::Value, key: &str) -> serde_json::Value {
    claims.as_object_mut().map(|o| o.remove(key));
    claims
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn valid_user_tokens_are_accepted(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let org = Uuid::new_v4();
    accepted(&app, &user_token(org)).await;
    accepted(&app, &sign(Algorithm::ES256, "test-ec-1", "ec_private.pem", &user_claims(org))).await;
    // Within the allowed skew (30 s in test settings).
    accepted(
        &app,
        &sign(Algorithm::RS256, "test-rsa-1", "rsa_private.pem", &with(user_claims(org), "exp", (now() - 10).into())),
    )
    .await;
    // Clerk v2 session tokens carry the org as `o`.
    let v2 = with(without(user_claims(org), "org_id"), "o", serde_json::json!({"id": org.to_string(), "rol": "admin"}));
    accepted(&app, &sign(Algorithm::RS256, "test-rsa-1", "rsa_private.pem", &v2)).await;
    // From the __session cookie.
    let response = app
        .client
        .get(app.url("/api/v1/events"))
        .header("cookie", format!("theme=dark; __session={}", user_token(org)))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn invalid_tokens_are_401_problems(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let org = Uuid::new_v4();
    let rs = |claims: &serde_json::Value| sign(Algorithm::RS256, "test-rsa-1", "rsa_private.pem", claims);

    let (status, _, body) = json(app.get("/api/v1/events").await).await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], REFUSED);
    insta::assert_json_snapshot!("auth_missing", body, {".trace_id" => "[trace_id]"});

    refused(&app, "garbage", "not-a-jwt").await;

    let other_key = sign(Algorithm::RS256, "test-rsa-1", "rsa_other_private.pem", &user_claims(org));
    refused(&app, "bad_signature", &other_key).await;

    let claims = serde_json::to_vec(&user_claims(org)).expect("json");
    let alg_none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT","kid":"test-rsa-1"}"#), b64(&claims));
    refused(&app, "alg_none", &alg_none).await;

    // HS256 "signed" with the RSA public key as the HMAC secret: the classic
    // algorithm confusion. HS256 is only checked against configured secrets.
    let public_pem = std::fs::read(crate::helpers::fixture("rsa_public.pem")).expect("pem");
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("test-rsa-1".to_owned());
    let confused =
        jsonwebtoken::encode(&header, &user_claims(org), &jsonwebtoken::EncodingKey::from_secret(&public_pem))
            .expect("sign");
    refused(&app, "hs256_with_public_key", &confused).await;

    let expired = rs(&with(user_claims(org), "exp", (now() - 120).into()));
    refused(&app, "expired", &expired).await;

    let early = rs(&with(user_claims(org), "nbf", (now() + 120).into()));
    refused(&app, "not_yet_valid", &early).await;

    let wrong_iss = rs(&with(user_claims(org), "iss", "https://evil.example".into()));
    refused(&app, "wrong_issuer", &wrong_iss).await;

    let wrong_aud = rs(&with(user_claims(org), "aud", "someone-else".into()));
    refused(&app, "wrong_audience", &wrong_aud).await;

    let no_org = rs(&without(user_claims(org), "org_id"));
    refused(&app, "missing_org", &no_org).await;

    let unknown_kid = sign(Algorithm::RS256, "rotated-away", "rsa_private.pem", &user_claims(org));
    refused(&app, "unknown_kid", &unknown_kid).await;

    let no_exp = rs(&without(user_claims(org), "exp"));
    refused(&app, "missing_exp", &no_exp).await;

    let issued_later = rs(&with(user_claims(org), "iat", (now() + 3600).into()));
    refused_quietly(&app, "issued_in_the_future", &issued_later).await;
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_configured_issuer_or_audience_must_be_present_in_the_token(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let org = Uuid::new_v4();
    let rs = |claims: &serde_json::Value| sign(Algorithm::RS256, "test-rsa-1", "rsa_private.pem", claims);
    refused_quietly(&app, "no iss", &rs(&without(user_claims(org), "iss"))).await;
    refused_quietly(&app, "no aud", &rs(&without(user_claims(org), "aud"))).await;
    // A list that includes the audience is fine.
    accepted(&app, &rs(&with(user_claims(org), "aud", serde_json::json!(["other", crate::helpers::AUDIENCE])))).await;
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn azp_is_checked_against_the_authorized_parties_when_set(_: PgPoolOptions, options: PgConnectOptions) {
    let rs = |claims: &serde_json::Value| sign(Algorithm::RS256, "test-rsa-1", "rsa_private.pem", claims);
    let org = Uuid::new_v4();
    let app = spawn_with(settings(
        &database_url(&options),
        &[("XENTRI_AUTH__AUTHORIZED_PARTIES", "https://app.xentri.test,https://admin.xentri.test")],
    ))
    .await;
    accepted(&app, &rs(&with(user_claims(org), "azp", "https://admin.xentri.test".into()))).await;
    refused_quietly(&app, "foreign azp", &rs(&with(user_claims(org), "azp", "https://evil.example".into()))).await;
    refused_quietly(&app, "no azp", &rs(&user_claims(org))).await;
    app.stop().await;

    // Not configured: not checked.
    let app = spawn_app(options).await;
    accepted(&app, &rs(&with(user_claims(org), "azp", "https://evil.example".into()))).await;
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn service_tokens(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let org = Uuid::new_v4();
    let token =
        xentri_api::auth::token::service_token(BILLING_SECRET, "billing", org, std::time::Duration::from_secs(300))
            .expect("mint");
    let response = app.post_event(&token, "svc-1", event_body("xentri.finance.invoice.created.v1")).await;
    let (status, _, body) = json(response).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["actor"], "service:billing");
    assert_eq!(body["org_id"], org.to_string());

    let long =
        xentri_api::auth::token::service_token(BILLING_SECRET, "billing", org, std::time::Duration::from_secs(3600))
            .expect("mint");
    refused(&app, "service_ttl_too_long", &long).await;

    let forged = xentri_api::auth::token::service_token("wrong", "billing", org, std::time::Duration::from_secs(60))
        .expect("mint");
    refused(&app, "service_bad_secret", &forged).await;

    let unknown =
        xentri_api::auth::token::service_token("x", "payroll", org, std::time::Duration::from_secs(60)).expect("mint");
    refused(&app, "service_unknown", &unknown).await;
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_service_tokens_lifetime_is_bounded_from_the_servers_clock_not_its_iat(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = spawn_app(options).await;
    let org = Uuid::new_v4().to_string();
    let claims = |iat: Option<u64>, exp: u64| {
        let mut claims = serde_json::json!({"sub": "service:billing", "org_id": org, "exp": exp});
        if let Some(iat) = iat {
            claims["iat"] = iat.into();
        }
        claims
    };
    let ten_years = 10 * 365 * 86_400;
    // exp - iat is within the 900 s allowed, but exp is ten years away.
    refused_quietly(&app, "iat = exp - 900", &billing(&claims(Some(now() + ten_years - 900), now() + ten_years))).await;
    // iat ahead of the clock beyond the 30 s leeway.
    refused_quietly(&app, "iat in the future", &billing(&claims(Some(now() + 120), now() + 300))).await;
    // exp just past now + 900 + leeway.
    refused_quietly(&app, "exp too far", &billing(&claims(Some(now()), now() + 900 + 30 + 5))).await;
    // At the bound, with or without iat.
    accepted(&app, &billing(&claims(Some(now()), now() + 900))).await;
    accepted(&app, &billing(&claims(None, now() + 600))).await;
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn dev_tokens_only_while_a_dev_secret_is_configured(_: PgPoolOptions, options: PgConnectOptions) {
    let org = Uuid::new_v4();
    let secret = "xentri-local-dev-secret-change-me";
    let token =
        xentri_api::auth::token::dev_token(secret, org, "user_dev", std::time::Duration::from_secs(600)).expect("mint");

    let app = spawn_app(options.clone()).await;
    let (status, _, body) = json(app.post_event(&token, "dev-1", event_body("xentri.soul.updated.v1")).await).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["actor"], "user:user_dev");
    app.stop().await;

    let production = spawn_with(settings(&database_url(&options), &[("XENTRI_AUTH__DEV_SECRET", "")])).await;
    refused(&production, "dev_token_without_secret", &token).await;
    production.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_api_refuses_to_start_with_a_dev_secret_on_a_non_loopback_address(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = database_url(&options);
    for host in ["0.0.0.0", "::", "192.0.2.10"] {
        // The test profile's privileged login is refused off loopback too;
        // the dev secret is checked first, before any connection.
        let settings =
            settings(&url, &[("XENTRI_API__HOST", host), ("XENTRI_DATABASE__TEST_ALLOW_PRIVILEGED_LOGIN", "false")]);
        let refused = xentri_api::startup::Application::build(settings).await;
        let error = refused.err().expect("refuses to start").to_string();
        assert!(error.starts_with("auth.dev_secret is set but api.host"), "{host}: {error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn x_org_id_switches_only_to_granted_orgs(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let (home, granted, foreign) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let claims = with(user_claims(home), "orgs", serde_json::json!([granted.to_string()]));
    let token = sign(Algorithm::RS256, "test-rsa-1", "rsa_private.pem", &claims);

    let switched = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(&token)
        .header("x-org-id", granted.to_string())
        .header("idempotency-key", "switch-1")
        .json(&event_body("xentri.soul.updated.v1"))
        .send()
        .await
        .expect("sent");
    let (status, _, body) = json(switched).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["org_id"], granted.to_string());

    let same = app.client.get(app.url("/api/v1/events")).bearer_auth(&token).header("x-org-id", home.to_string());
    assert_eq!(same.send().await.expect("sent").status(), 200);

    let denied = app.client.get(app.url("/api/v1/events")).bearer_auth(&token).header("x-org-id", foreign.to_string());
    let (status, _, body) = json(denied.send().await.expect("sent")).await;
    assert_eq!(status, 403);
    assert_eq!(body["type"], "https://xentri.io/errors/forbidden");
    insta::assert_json_snapshot!("auth_org_not_granted", body, {".trace_id" => "[trace_id]"});

    let malformed = app.client.get(app.url("/api/v1/events")).bearer_auth(&token).header("x-org-id", "acme");
    let (status, _, body) = json(malformed.send().await.expect("sent")).await;
    assert_eq!(status, 400);
    assert_eq!(body["detail"], "Header x-org-id must be an org id: a UUID or a Clerk organisation id (org_…)");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_bad_token_on_a_matched_route_is_401_not_405(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let response = app.client.post(app.url("/api/v1/events")).bearer_auth("nope").send().await.expect("sent");
    assert_eq!(response.status(), 401);
    let response = app.client.get(app.url(&format!("/api/v1/events/{}", Uuid::new_v4()))).send().await.expect("sent");
    assert_eq!(response.status(), 401);
    app.stop().await;
}

/// What the test JWKS server answers.
#[derive(Default)]
struct Published {
    /// The key set.
    keys: serde_json::Value,
    /// Answer this many fetches with a 500 first.
    fail_next: usize,
    /// `Cache-Control: max-age`, when set.
    max_age: Option<u64>,
}

type Shared = std::sync::Arc<std::sync::Mutex<Published>>;

/// A JWKS served over HTTP that counts how often it is fetched.
async fn serve_jwks(published: Shared) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use warp::Filter;
    let fetches = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let route = warp::path!(".well-known" / "jwks.json").map(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut published = published.lock().expect("lock");
        if published.fail_next > 0 {
            published.fail_next -= 1;
            return warp::http::Response::builder().status(500).body(String::new()).expect("response");
        }
        let mut response = warp::http::Response::builder().header("content-type", "application/json");
        if let Some(max_age) = published.max_age {
            response = response.header("cache-control", format!("public, max-age={max_age}"));
        }
        response.body(published.keys.to_string()).expect("response")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{address}/.well-known/jwks.json"), fetches)
}

/// The test key set: both keys, only the RSA one, or only the EC one.
fn key_set(kids: &[&str]) -> serde_json::Value {
    let all: serde_json::Value =
        serde_json::from_slice(&std::fs::read(crate::helpers::fixture("jwks.json")).expect("jwks")).expect("json");
    let keys: Vec<serde_json::Value> = all["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| kids.iter().any(|kid| k["kid"] == *kid))
        .cloned()
        .collect();
    serde_json::json!({ "keys": keys })
}

/// An api reading its user-token keys from `url`, with the given TTL and
/// least interval between fetches for unknown `kid`s.
async fn spawn_with_jwks_url(options: &PgConnectOptions, url: &str, ttl_secs: u64, interval_secs: u64) -> TestApp {
    spawn_with(settings(
        &database_url(options),
        &[
            ("XENTRI_AUTH__JWKS_PATH", ""),
            ("XENTRI_AUTH__JWKS_URL", url),
            ("XENTRI_AUTH__JWKS_TTL_SECS", &ttl_secs.to_string()),
            ("XENTRI_AUTH__JWKS_REFETCH_INTERVAL_SECS", &interval_secs.to_string()),
        ],
    ))
    .await
}

/// Waits (at most 15 s) until `token` gets `status` on a list request.
async fn until_status(app: &TestApp, token: &str, status: u16) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let got = app.get_as(token, "/api/v1/events").await.status().as_u16();
        if got == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "still {got}, waiting for {status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits (at most 15 s) until the JWKS has been fetched `count` times.
async fn until_fetched(fetches: &std::sync::atomic::AtomicUsize, count: usize) {
    let started = std::time::Instant::now();
    while fetches.load(std::sync::atomic::Ordering::SeqCst) < count {
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "the JWKS was not fetched {count} times");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn jwks_url_is_cached_and_refetched_at_most_once_per_interval(_: PgPoolOptions, options: PgConnectOptions) {
    use std::sync::atomic::Ordering;
    // At first only the EC key is published; the RSA key "rotates in" later.
    let published = Shared::default();
    published.lock().expect("lock").keys = key_set(&["test-ec-1"]);
    let (url, fetches) = serve_jwks(published.clone()).await;
    let app = spawn_with_jwks_url(&options, &url, 3600, 3600).await;
    until_fetched(&fetches, 1).await;
    let org = Uuid::new_v4();
    let ec = sign(Algorithm::ES256, "test-ec-1", "ec_private.pem", &user_claims(org));
    for _ in 0..3 {
        accepted(&app, &ec).await;
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched at start-up, then cached");

    // A flood of unknown kids within the interval since the last fetch: no
    // refetch, however many arrive.
    for n in 0..50 {
        let token = sign(Algorithm::RS256, &format!("made-up-{n}"), "rsa_private.pem", &user_claims(org));
        refused_quietly(&app, "unknown kid", &token).await;
    }
    refused_quietly(&app, "not rotated in yet", &user_token(org)).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    app.stop().await;

    // With the interval passed (0 here), an unknown kid refetches and finds the new key.
    published.lock().expect("lock").keys = key_set(&["test-ec-1", "test-rsa-1"]);
    let app = spawn_with_jwks_url(&options, &url, 3600, 0).await;
    until_fetched(&fetches, 2).await;
    accepted(&app, &user_token(org)).await;
    accepted(&app, &user_token(org)).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "found in the start-up fetch and cached");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_withdrawn_key_stops_verifying_after_the_background_refresh(_: PgPoolOptions, options: PgConnectOptions) {
    let published = Shared::default();
    published.lock().expect("lock").keys = key_set(&["test-ec-1", "test-rsa-1"]);
    let (url, fetches) = serve_jwks(published.clone()).await;
    // Refreshed every second; unknown kids never cause a fetch of their own.
    let app = spawn_with_jwks_url(&options, &url, 1, 3600).await;
    until_fetched(&fetches, 1).await;
    let org = Uuid::new_v4();
    accepted(&app, &user_token(org)).await;

    // The provider withdraws the RSA key (compromised).
    published.lock().expect("lock").keys = key_set(&["test-ec-1"]);
    until_status(&app, &user_token(org), 401).await;
    accepted(&app, &sign(Algorithm::ES256, "test-ec-1", "ec_private.pem", &user_claims(org))).await;
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn cache_control_max_age_sets_when_keys_are_fetched_again(_: PgPoolOptions, options: PgConnectOptions) {
    let published = Shared::default();
    {
        let mut published = published.lock().expect("lock");
        published.keys = key_set(&["test-ec-1", "test-rsa-1"]);
        published.max_age = Some(1);
    }
    let (url, fetches) = serve_jwks(published.clone()).await;
    // The configured TTL is an hour; the answer says one second.
    let app = spawn_with_jwks_url(&options, &url, 3600, 3600).await;
    until_fetched(&fetches, 1).await;
    let org = Uuid::new_v4();
    accepted(&app, &user_token(org)).await;
    published.lock().expect("lock").keys = key_set(&["test-ec-1"]);
    until_status(&app, &user_token(org), 401).await;
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_failed_first_fetch_is_retried_within_seconds_not_after_the_interval(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let published = Shared::default();
    {
        let mut published = published.lock().expect("lock");
        published.keys = key_set(&["test-ec-1", "test-rsa-1"]);
        published.fail_next = 2;
    }
    let (url, fetches) = serve_jwks(published.clone()).await;
    let app = spawn_with_jwks_url(&options, &url, 3600, 3600).await;
    let org = Uuid::new_v4();
    // Until keys are had, a user token is a 503 to retry, not a 401.
    let started = std::time::Instant::now();
    loop {
        let response = app.get_as(&user_token(org), "/api/v1/events").await;
        match response.status().as_u16() {
            200 => break,
            503 => assert!(response.headers().contains_key("retry-after")),
            other => panic!("{other} while the JWKS was failing"),
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Two failures (retried after 1 s, then 2 s) and one success: seconds,
    // not the hour-long refetch interval.
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 3);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn stock_clerk_v1_and_v2_session_tokens_map_to_one_internal_org(_: PgPoolOptions, options: PgConnectOptions) {
    // Clerk's session tokens carry no `aud`: the audience is not configured.
    let app = spawn_with(settings(
        &database_url(&options),
        &[("XENTRI_AUTH__AUDIENCE", ""), ("XENTRI_AUTH__AUTHORIZED_PARTIES", "https://app.xentri.test")],
    ))
    .await;
    let clerk_org = "org_2vYVtestOrgA1b2C3d4E5f6G7h8";
    let internal = xentri_api::auth::claims::org_ref(clerk_org).expect("a Clerk id");
    let now = now();
    let v1 = serde_json::json!({
        "azp": "https://app.xentri.test", "exp": now + 60, "iat": now, "iss": crate::helpers::ISSUER,
        "nbf": now - 10, "sid": "sess_2vYVsession1", "sub": "user_2vYVuser1",
        "org_id": clerk_org, "org_role": "org:admin", "org_slug": "acme",
        "org_permissions": ["org:invoices:read", "org:invoices:manage"],
    });
    let v2 = serde_json::json!({
        "azp": "https://app.xentri.test", "exp": now + 60, "fva": [7, -1], "iat": now,
        "iss": crate::helpers::ISSUER, "nbf": now - 10, "sid": "sess_2vYVsession2", "sub": "user_2vYVuser2",
        "v": 2, "fea": "o:invoices",
        "o": {"id": clerk_org, "rol": "member", "slg": "acme", "per": "read,manage", "fpm": "2"},
    });
    let v1 = sign(Algorithm::RS256, "test-rsa-1", "rsa_private.pem", &v1);
    let v2 = sign(Algorithm::ES256, "test-ec-1", "ec_private.pem", &v2);

    let (status, _, stored) = json(app.post_event(&v1, "clerk-1", event_body("xentri.soul.updated.v1")).await).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["org_id"], internal.to_string());
    assert_eq!(stored["actor"], "user:user_2vYVuser1");

    // v2 sees what v1 wrote: one org.
    crate::helpers::wait_listable(&app, &v2, stored["seq"].as_i64().expect("seq")).await;
    let (status, _, page) = json(app.get_as(&v2, "/api/v1/events").await).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"][0]["id"], stored["id"]);

    // The x-org-id header takes the Clerk id as well as the internal one.
    for header in [clerk_org.to_owned(), internal.to_string()] {
        let response = app.client.get(app.url("/api/v1/events")).bearer_auth(&v2).header("x-org-id", &header);
        assert_eq!(response.send().await.expect("sent").status(), 200, "{header}");
    }
    app.stop().await;
}
