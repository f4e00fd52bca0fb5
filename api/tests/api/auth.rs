//! Every authentication case, against tokens signed with the test keys whose
//! public halves the api reads from `tests/fixtures/jwks.json`.

use base64::Engine;
use jsonwebtoken::Algorithm;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{
    BILLING_SECRET, TestApp, database_url, event_body, json, now, settings, sign, spawn_app, spawn_with, user_claims,
    user_token,
};

/// Asserts `token` is refused with a 401 problem; snapshots the document.
async fn refused(app: &TestApp, name: &str, token: &str, detail: &str) {
    let (status, headers, body) = json(app.get_as(token, "/api/v1/events").await).await;
    assert_eq!(status, 401, "{name}: {body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "https://xentri.io/errors/unauthorized", "{name}");
    assert_eq!(body["detail"], detail, "{name}");
    insta::assert_json_snapshot!(format!("auth_{name}"), body, {".trace_id" => "[trace_id]"});
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
    assert_eq!(body["detail"], "A bearer token or __session cookie is required");
    insta::assert_json_snapshot!("auth_missing", body, {".trace_id" => "[trace_id]"});

    refused(&app, "garbage", "not-a-jwt", "The token is malformed or uses an unsupported algorithm").await;

    let other_key = sign(Algorithm::RS256, "test-rsa-1", "rsa_other_private.pem", &user_claims(org));
    refused(&app, "bad_signature", &other_key, "The token's signature is invalid").await;

    let claims = serde_json::to_vec(&user_claims(org)).expect("json");
    let alg_none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT","kid":"test-rsa-1"}"#), b64(&claims));
    refused(&app, "alg_none", &alg_none, "The token is malformed or uses an unsupported algorithm").await;

    // HS256 "signed" with the RSA public key as the HMAC secret: the classic
    // algorithm confusion. HS256 is only checked against configured secrets.
    let public_pem = std::fs::read(crate::helpers::fixture("rsa_public.pem")).expect("pem");
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("test-rsa-1".to_owned());
    let confused =
        jsonwebtoken::encode(&header, &user_claims(org), &jsonwebtoken::EncodingKey::from_secret(&public_pem))
            .expect("sign");
    refused(&app, "hs256_with_public_key", &confused, "The token's signing key is not known").await;

    let expired = rs(&with(user_claims(org), "exp", (now() - 120).into()));
    refused(&app, "expired", &expired, "The token has expired").await;

    let early = rs(&with(user_claims(org), "nbf", (now() + 120).into()));
    refused(&app, "not_yet_valid", &early, "The token is not valid yet").await;

    let wrong_iss = rs(&with(user_claims(org), "iss", "https://evil.example".into()));
    refused(&app, "wrong_issuer", &wrong_iss, "The token's issuer is not accepted").await;

    let wrong_aud = rs(&with(user_claims(org), "aud", "someone-else".into()));
    refused(&app, "wrong_audience", &wrong_aud, "The token's audience is not accepted").await;

    let no_org = rs(&without(user_claims(org), "org_id"));
    refused(&app, "missing_org", &no_org, "The token lacks a valid org_id claim").await;

    let unknown_kid = sign(Algorithm::RS256, "rotated-away", "rsa_private.pem", &user_claims(org));
    refused(&app, "unknown_kid", &unknown_kid, "The token's signing key is not known").await;

    let no_exp = rs(&without(user_claims(org), "exp"));
    refused(&app, "missing_exp", &no_exp, "The token lacks a valid exp claim").await;
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
    refused(&app, "service_ttl_too_long", &long, "Service tokens may live at most 900 seconds").await;

    let forged = xentri_api::auth::token::service_token("wrong", "billing", org, std::time::Duration::from_secs(60))
        .expect("mint");
    refused(&app, "service_bad_secret", &forged, "The token's signature is invalid").await;

    let unknown =
        xentri_api::auth::token::service_token("x", "payroll", org, std::time::Duration::from_secs(60)).expect("mint");
    refused(&app, "service_unknown", &unknown, "The token's signing key is not known").await;
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
    refused(&production, "dev_token_without_secret", &token, "The token's signing key is not known").await;
    production.stop().await;
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
    assert_eq!(body["detail"], "Header x-org-id must be a UUID");
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

/// A JWKS served over HTTP that counts how often it is fetched.
async fn serve_jwks(
    keys: std::sync::Arc<std::sync::Mutex<serde_json::Value>>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use warp::Filter;
    let fetches = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let route = warp::path!(".well-known" / "jwks.json").map(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let body = keys.lock().map(|k| k.clone()).unwrap_or_default();
        warp::reply::json(&body)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{address}/.well-known/jwks.json"), fetches)
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn jwks_url_is_cached_and_refetched_at_most_once_per_interval(_: PgPoolOptions, options: PgConnectOptions) {
    use std::sync::atomic::Ordering;
    let published: serde_json::Value =
        serde_json::from_slice(&std::fs::read(crate::helpers::fixture("jwks.json")).expect("jwks")).expect("json");
    // At first only the EC key is published; the RSA key "rotates in" later.
    let only_ec = serde_json::json!({"keys": [published["keys"][1].clone()]});
    let keys = std::sync::Arc::new(std::sync::Mutex::new(only_ec));
    let (url, fetches) = serve_jwks(keys.clone()).await;
    let app = spawn_with(settings(
        &database_url(&options),
        &[
            ("XENTRI_AUTH__JWKS_PATH", ""),
            ("XENTRI_AUTH__JWKS_URL", &url),
            ("XENTRI_AUTH__JWKS_REFETCH_INTERVAL_SECS", "3600"),
        ],
    ))
    .await;
    let org = Uuid::new_v4();
    let ec = sign(Algorithm::ES256, "test-ec-1", "ec_private.pem", &user_claims(org));
    for _ in 0..3 {
        accepted(&app, &ec).await;
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched on first use, then cached");

    // Unknown kids within the interval since the last fetch: no refetch,
    // however many arrive.
    for _ in 0..5 {
        let response = app.get_as(&user_token(org), "/api/v1/events").await;
        assert_eq!(response.status(), 401);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    app.stop().await;

    // With the interval passed (0 here), an unknown kid refetches and finds the new key.
    if let Ok(mut current) = keys.lock() {
        *current = published;
    }
    let app = spawn_with(settings(
        &database_url(&options),
        &[
            ("XENTRI_AUTH__JWKS_PATH", ""),
            ("XENTRI_AUTH__JWKS_URL", &url),
            ("XENTRI_AUTH__JWKS_REFETCH_INTERVAL_SECS", "0"),
        ],
    ))
    .await;
    accepted(&app, &user_token(org)).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one fetch found the rotated-in key");
    accepted(&app, &user_token(org)).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "and it is cached");
    app.stop().await;
}
