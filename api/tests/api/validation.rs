//! Each bad input gets its problem document; nothing is stored.

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{database_url, json, settings, spawn_with, user_token};

/// Name, Idempotency-Key, Content-Type, body, expected status.
type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a str, u16);

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn bad_appends_are_problems(pool: PgPool) {
    let app = spawn_with(settings(&database_url(&pool.connect_options()), &[])).await;
    let token = user_token(Uuid::new_v4());
    let json_type = Some("application/json");
    let cases: &[Case] = &[
        ("malformed_json", Some("k"), json_type, r#"{"type": "xentri.sample.noted.v1", "payload": {"#, 400),
        ("missing_idempotency_key", None, json_type, r#"{"type":"xentri.sample.noted.v1","payload":{}}"#, 400),
        ("bad_idempotency_key", Some("has space"), json_type, r#"{"type":"xentri.sample.noted.v1","payload":{}}"#, 400),
        ("wrong_content_type", Some("k"), Some("text/plain"), r#"{"type":"xentri.sample.noted.v1","payload":{}}"#, 415),
        ("no_content_type", Some("k"), None, r#"{"type":"xentri.sample.noted.v1","payload":{}}"#, 415),
        ("body_not_an_object", Some("k"), json_type, r#"[1, 2]"#, 422),
        ("bad_type_name", Some("k"), json_type, r#"{"type":"Soul.Updated","payload":{}}"#, 422),
        ("payload_not_an_object", Some("k"), json_type, r#"{"type":"xentri.sample.noted.v1","payload":"hi"}"#, 422),
        ("wrong_types", Some("k"), json_type, r#"{"type":5,"payload":{},"correlation_id":7}"#, 422),
        ("missing_fields", Some("k"), json_type, r#"{}"#, 422),
        (
            "payload_breaks_its_contract",
            Some("k"),
            json_type,
            r#"{"type":"xentri.lead.created.v1","payload":{"lead_id":"nope","name":"","email":42,"status":"new","version":1}}"#,
            422,
        ),
        ("unknown_field", Some("k"), json_type, r#"{"type":"xentri.sample.noted.v1","payload":{},"org_id":"x"}"#, 422),
        (
            "bad_correlation_id",
            Some("k"),
            json_type,
            r#"{"type":"xentri.sample.noted.v1","payload":{},"correlation_id":"a b/c"}"#,
            422,
        ),
    ];
    for (name, key, content_type, body, expected) in cases {
        let mut request = app.client.post(app.url("/api/v1/events")).bearer_auth(&token).body(*body);
        if let Some(key) = key {
            request = request.header("idempotency-key", *key);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", *content_type);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{name}");
        let (status, _, problem) = json(response).await;
        assert_eq!(status, *expected, "{name}: {problem}");
        insta::assert_json_snapshot!(format!("append_{name}"), problem, {".trace_id" => "[trace_id]"});
    }
    // In German, once, to show the title follows Accept-Language.
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(&token)
        .header("idempotency-key", "k")
        .header("accept-language", "de")
        .json(&serde_json::json!({"type": "nope", "payload": {}}))
        .send()
        .await
        .expect("sent");
    let (_, _, problem) = json(response).await;
    insta::assert_json_snapshot!("append_bad_type_name_de", problem, {".trace_id" => "[trace_id]"});

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM system_events").fetch_one(&pool).await.expect("n");
    assert_eq!(stored, 0);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys").fetch_one(&pool).await.expect("n");
    assert_eq!(keys, 0);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn bad_reads_are_problems(pool: PgPool) {
    let app = spawn_with(settings(&database_url(&pool.connect_options()), &[])).await;
    let token = user_token(Uuid::new_v4());
    let cases: &[(&str, &str, u16)] = &[
        ("limit_above_max", "/api/v1/events?limit=1001", 400),
        ("limit_zero", "/api/v1/events?limit=0", 400),
        ("bad_cursor", "/api/v1/events?after=abc", 400),
        ("unknown_parameter", "/api/v1/events?colour=red", 400),
        ("bad_since", "/api/v1/events?since=yesterday", 400),
        ("bad_type_filter", "/api/v1/events?type=soul.*", 400),
        ("several_errors", "/api/v1/events?limit=5000&until=x&type=", 400),
        ("bad_event_id", "/api/v1/events/not-a-uuid", 400),
        ("missing_event", "/api/v1/events/01937c4e-0000-7000-8000-000000000000", 404),
    ];
    for (name, path, expected) in cases {
        let (status, headers, problem) = json(app.get_as(&token, path).await).await;
        assert_eq!(status, *expected, "{name}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        insta::assert_json_snapshot!(format!("read_{name}"), problem, {".trace_id" => "[trace_id]"});
    }
    app.stop().await;
}
