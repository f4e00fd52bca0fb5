use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{database_url, event_body, json, settings, spawn_app, spawn_with, user_token};

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn liveness_answers_ok(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let (status, headers, body) = json(app.get("/health").await).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    assert_eq!(headers["content-type"], "application/json");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn readiness_pings_postgres_and_redis(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let (status, _, body) = json(app.get("/health/ready").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_readiness_probe_storm_is_answered_from_the_cache_without_the_database(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    use sqlx::Connection;
    let app = spawn_with(settings(
        &database_url(&options),
        &[("XENTRI_API__READINESS_CACHE_MS", "60000"), ("XENTRI_DATABASE__ACQUIRE_TIMEOUT_MS", "500")],
    ))
    .await;
    let (status, _, body) = json(app.get("/health/ready").await).await;
    assert_eq!(status, 200, "{body}");

    // From now on PostgreSQL refuses every connection to this database, the
    // api's pooled ones included: a probe that took a connection would fail.
    let database = options.get_database().expect("a test database").to_owned();
    let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await.expect("admin");
    sqlx::query(&format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS false"#))
        .execute(&mut admin)
        .await
        .expect("close the database");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&mut admin)
        .await
        .expect("end its sessions");

    let storm = (0..200).map(|_| async { app.get("/health/ready").await.status().as_u16() });
    let statuses = futures_util::future::join_all(storm).await;
    let answered_ok = statuses.iter().filter(|s| **s == 200).count();

    sqlx::query(&format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS true"#))
        .execute(&mut admin)
        .await
        .expect("reopen the database");
    assert_eq!(answered_ok, 200, "statuses: {statuses:?}");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn traceparent_is_continued_and_echoed(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app.client.get(app.url("/nope")).header("traceparent", sent).send().await.expect("sent");
    let echoed = response.headers()["traceparent"].to_str().expect("ascii").to_owned();
    let (_, _, body) = json(response).await;
    assert!(echoed.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{echoed}");
    assert!(!echoed.contains("00f067aa0ba902b7"), "our own span id is sent back");
    assert_eq!(body["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    let started = app.get("/health").await;
    let fresh = started.headers()["traceparent"].to_str().expect("ascii");
    assert_eq!(fresh.len(), 55, "{fresh}");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn metrics_count_requests_by_route_template(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    app.get("/health").await;
    app.get("/definitely/not/here/42").await;
    let response = app.get("/api/v1/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.expect("text");
    assert!(text.contains(r#"http_requests_total{method="GET",route="/health",status="200"}"#), "{text}");
    assert!(text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket{"), "{text}");
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    assert!(!text.contains("/definitely/not/here"), "raw paths must not become labels");
    app.stop().await;
}

/// Answers of known length (a JSON document, a problem) go out with their
/// `Content-Length`, not chunked: clients and proxies size them up front.
#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn answers_carry_their_length_and_are_not_chunked(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let org = uuid::Uuid::new_v4();
    let created = app.post_event(&user_token(org), "length-1", event_body("xentri.crm.contact.created.v1")).await;
    let unauthenticated = app.client.post(app.url("/api/v1/events")).send().await.expect("sent");
    for (what, response, status) in [("a 201", created, 201), ("a problem", unauthenticated, 401)] {
        assert_eq!(response.status().as_u16(), status, "{what}");
        let headers = response.headers().clone();
        assert!(headers.get("transfer-encoding").is_none(), "{what} is not chunked: {headers:?}");
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what} has a Content-Length: {headers:?}"));
        let body = response.bytes().await.expect("body");
        assert_eq!(body.len(), length, "{what}'s Content-Length is its body's length");
    }
    app.stop().await;
}

/// HEAD is GET without the body (RFC 9110, section 9.3.2), on every route
/// that serves GET, authenticated ones included: the same status and
/// headers, `Content-Length` the GET's, and not a byte after the head (read
/// off the raw connection, as a client that trusts the length would not).
#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn head_answers_the_get_head_without_its_body(_: PgPoolOptions, options: PgConnectOptions) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app(options).await;
    let token = user_token(uuid::Uuid::new_v4());
    let authorization = format!("Authorization: Bearer {token}\r\n");
    for (path, authorization, status) in [
        ("/health", "", 200),
        ("/api/v1/openapi.json", "", 200),
        ("/api/v1/events?limit=5", authorization.as_str(), 200),
        ("/api/v1/events", "", 401),
    ] {
        let mut get = app.client.get(app.url(path));
        if !authorization.is_empty() {
            get = get.bearer_auth(&token);
        }
        let get = get.send().await.expect("GET sent");
        assert_eq!(get.status().as_u16(), status, "GET {path}");
        let get_type = get.headers()["content-type"].clone();
        let get_body = get.bytes().await.expect("GET body");

        let address = app.address.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
        let request = format!("HEAD {path} HTTP/1.1\r\nHost: test\r\n{authorization}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("HEAD sent");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read until close");
        let raw = String::from_utf8(raw).expect("an HTTP head is text");
        let (head, rest) = raw.split_once("\r\n\r\n").expect("a complete head");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "HEAD {path}: {head}");
        assert!(rest.is_empty(), "HEAD {path} sent a body: {rest:?}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains(&format!("content-length: {}\r\n", get_body.len())), "HEAD {path}: {head}");
        let content_type = get_type.to_str().expect("ASCII").to_ascii_lowercase();
        assert!(lower.contains(&format!("content-type: {content_type}")), "HEAD {path}: {head}");
    }
    app.stop().await;
}
