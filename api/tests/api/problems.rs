//! Every error answer is a problem document; titles follow Accept-Language.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{json, spawn_app};

async fn problem(request: reqwest::RequestBuilder, lang: &str) -> (u16, serde_json::Value) {
    let response = request.header("accept-language", lang).send().await.expect("sent");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let (status, headers, body) = json(response).await;
    assert_eq!(body["status"], status, "status in the body matches the answer");
    assert!(headers.contains_key("traceparent"));
    (status, body)
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn unknown_route_is_404(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    for lang in ["en", "de"] {
        let (status, body) = problem(app.client.get(app.url("/api/v1/nothing")), lang).await;
        assert_eq!(status, 404);
        insta::assert_json_snapshot!(format!("not_found_{lang}"), body, {".trace_id" => "[trace_id]"});
    }
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn wrong_method_is_405(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    for lang in ["en", "fr"] {
        let (status, body) = problem(app.client.delete(app.url("/health")), lang).await;
        assert_eq!(status, 405);
        insta::assert_json_snapshot!(format!("method_not_allowed_{lang}"), body, {".trace_id" => "[trace_id]"});
    }
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn bodies_over_one_mebibyte_are_413(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let big = vec![b'a'; 1024 * 1024 + 1];
    for lang in ["en", "es"] {
        let request = app.client.post(app.url("/health")).header("content-type", "application/json").body(big.clone());
        let (status, body) = problem(request, lang).await;
        assert_eq!(status, 413);
        insta::assert_json_snapshot!(format!("payload_too_large_{lang}"), body, {".trace_id" => "[trace_id]"});
    }
    // Exactly at the limit is read (and then refused for its route, not its size).
    let at_limit = vec![b'a'; 1024 * 1024];
    let response = app.client.post(app.url("/health")).body(at_limit).send().await.expect("sent");
    assert_eq!(response.status(), 405);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn unsupported_language_falls_back_to_english(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let (_, body) = problem(app.client.get(app.url("/x")), "ja, zh;q=0.8").await;
    assert_eq!(body["title"], "Resource Not Found");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn request_format_problems_in_english_and_german(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let token = crate::helpers::user_token(uuid::Uuid::new_v4());
    for lang in ["en", "de"] {
        let post = || app.client.post(app.url("/api/v1/events")).bearer_auth(&token).header("idempotency-key", "p-1");
        let cases = [
            ("unsupported_media_type", 415, post().header("content-type", "text/csv").body("a,b")),
            ("malformed_json", 400, post().header("content-type", "application/json").body("{\"type\": ")),
            ("malformed_query", 400, app.client.get(app.url("/api/v1/events?limit=many")).bearer_auth(&token)),
            ("unauthorized", 401, app.client.get(app.url("/api/v1/events"))),
        ];
        for (name, expected, request) in cases {
            let (status, body) = problem(request, lang).await;
            assert_eq!(status, expected, "{name}");
            insta::assert_json_snapshot!(format!("{name}_{lang}"), body, {".trace_id" => "[trace_id]"});
        }
    }
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn every_405_names_the_allowed_methods(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let token = crate::helpers::user_token(uuid::Uuid::new_v4());
    let paths = [
        ("/api/v1/events", "GET, HEAD, POST"),
        ("/api/v1/events/01937c4e-0000-7000-8000-000000000000", "GET, HEAD"),
        ("/health", "GET, HEAD"),
        ("/health/ready", "GET, HEAD"),
        ("/api/v1/metrics", "GET, HEAD"),
        ("/api/v1/openapi.json", "GET, HEAD"),
        ("/api/v1/sales/leads:import", "POST"),
    ];
    let methods = ["TRACE", "PATCH", "PUT", "DELETE", "OPTIONS", "POST", "HEAD", "GET"];
    for (path, allowed) in paths {
        for method in methods.into_iter().filter(|m| !allowed.split(", ").any(|a| a == *m)) {
            let method: reqwest::Method = method.parse().expect("a method");
            for authenticated in [false, true] {
                let mut request = app.client.request(method.clone(), app.url(path));
                if authenticated {
                    request = request.bearer_auth(&token);
                }
                let response = request.send().await.expect("sent");
                let case = format!("{method} {path} (token: {authenticated})");
                assert_eq!(response.status(), 405, "{case}");
                assert_eq!(response.headers()["allow"], allowed, "{case}");
                assert_eq!(response.headers()["content-type"], "application/problem+json", "{case}");
                if method != reqwest::Method::HEAD {
                    let (_, _, body) = json(response).await;
                    assert_eq!(body["type"], "https://xentri.io/errors/method-not-allowed", "{case}");
                    assert_eq!(body["status"], 405, "{case}");
                }
            }
        }
    }
    app.stop().await;
}
