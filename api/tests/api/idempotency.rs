//! Idempotency keys: replay, conflict, in-flight, per-org scope.

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{SAMPLE_TYPE, database_url, event_body, json, settings, spawn_with, user_token};

async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM system_events").fetch_one(pool).await.expect("count")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn same_key_same_request_replays_without_a_second_event(pool: PgPool) {
    let app = spawn_with(settings(&database_url(&pool.connect_options()), &[])).await;
    let token = user_token(Uuid::new_v4());
    let first = app.post_event(&token, "k-1", event_body(SAMPLE_TYPE)).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.text().await.expect("body");

    // Reformatted JSON with the same content is the same request.
    let again = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(&token)
        .header("idempotency-key", "k-1")
        .header("content-type", "application/json")
        .body(r#"{ "payload": {"n": 1, "name": "Ada"}, "type": "xentri.sample.noted.v1" }"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.expect("body"), first_body, "byte for byte");
    assert_eq!(event_count(&pool).await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn same_key_different_request_is_422(pool: PgPool) {
    let app = spawn_with(settings(&database_url(&pool.connect_options()), &[])).await;
    let token = user_token(Uuid::new_v4());
    assert_eq!(app.post_event(&token, "k-2", event_body("xentri.soul.updated.v1")).await.status(), 201);
    let (status, _, body) = json(app.post_event(&token, "k-2", event_body("xentri.lead.created.v1")).await).await;
    assert_eq!(status, 422);
    assert_eq!(body["type"], "https://xentri.io/errors/idempotency-key-reused");
    insta::assert_json_snapshot!("idempotency_key_reused", body, {".trace_id" => "[trace_id]"});
    assert_eq!(event_count(&pool).await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn keys_are_scoped_per_org(pool: PgPool) {
    let app = spawn_with(settings(&database_url(&pool.connect_options()), &[])).await;
    let a = app.post_event(&user_token(Uuid::new_v4()), "shared", event_body("xentri.soul.updated.v1")).await;
    let b = app.post_event(&user_token(Uuid::new_v4()), "shared", event_body("xentri.soul.updated.v1")).await;
    assert_eq!(a.status(), 201);
    assert_eq!(b.status(), 201);
    assert!(b.headers().get("idempotent-replayed").is_none());
    assert_eq!(event_count(&pool).await, 2);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn sixteen_concurrent_requests_with_one_key_make_one_event(pool: PgPool) {
    let app = spawn_with(settings(&database_url(&pool.connect_options()), &[])).await;
    let token = user_token(Uuid::new_v4());
    let requests = (0..16).map(|_| app.post_event(&token, "burst", event_body("xentri.soul.updated.v1")));
    let responses = futures_util::future::join_all(requests).await;
    let mut created = Vec::new();
    for response in responses {
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body: serde_json::Value = response.json().await.expect("json");
        match status {
            201 => created.push((replayed, body["id"].clone())),
            409 => assert_eq!(body["type"], "https://xentri.io/errors/idempotency-key-in-flight"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(!created.is_empty());
    assert_eq!(created.iter().filter(|(replayed, _)| !replayed).count(), 1, "exactly one original answer");
    assert!(created.windows(2).all(|w| w[0].1 == w[1].1), "every 201 carries the same event");
    assert_eq!(event_count(&pool).await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_key_held_by_a_running_request_is_409(pool: PgPool) {
    let app = spawn_with(settings(&database_url(&pool.connect_options()), &[])).await;
    let org = Uuid::new_v4();
    // Hold the key's lock the way a first, still-running request does.
    let mut first = pool.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.org_id', $1, true)")
        .bind(org.to_string())
        .execute(&mut *first)
        .await
        .expect("org");
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock($1, hashtext(current_setting('app.org_id') || ':' || 'held'))",
    )
    .bind(xentri_core::locks::LockClass::Idempotency.id())
    .fetch_one(&mut *first)
    .await
    .expect("lock");
    assert!(locked);

    let (status, _, body) =
        json(app.post_event(&user_token(org), "held", event_body("xentri.soul.updated.v1")).await).await;
    assert_eq!(status, 409);
    insta::assert_json_snapshot!("idempotency_key_in_flight", body, {".trace_id" => "[trace_id]"});
    first.rollback().await.expect("rollback");

    let retried = app.post_event(&user_token(org), "held", event_body("xentri.soul.updated.v1")).await;
    assert_eq!(retried.status(), 201);
    assert_eq!(event_count(&pool).await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_expired_key_can_be_used_again(pool: PgPool) {
    let app =
        spawn_with(settings(&database_url(&pool.connect_options()), &[("XENTRI_IDEMPOTENCY__TTL_SECS", "1")])).await;
    let token = user_token(Uuid::new_v4());
    assert_eq!(app.post_event(&token, "short", event_body("xentri.soul.updated.v1")).await.status(), 201);
    // Age the stored key instead of waiting for it to expire.
    sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .expect("age");
    let again = app.post_event(&token, "short", event_body("xentri.lead.created.v1")).await;
    assert_eq!(again.status(), 201);
    assert!(again.headers().get("idempotent-replayed").is_none());
    assert_eq!(event_count(&pool).await, 2);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_answer_stored_as_a_body_is_replayed_as_stored(pool: PgPool) {
    let app = spawn_with(settings(&database_url(&pool.connect_options()), &[])).await;
    let org = Uuid::new_v4();
    let token = user_token(org);
    // The request hash of the body event_body sends, taken from a first append
    // under another key.
    assert_eq!(app.post_event(&token, "probe", event_body("xentri.soul.updated.v1")).await.status(), 201);
    sqlx::query(
        "INSERT INTO idempotency_keys (org_id, key, request_hash, response_status, response_body, expires_at)
         SELECT org_id, 'stored-body', request_hash, 200, '{\"kept\":true}', now() + interval '1 hour'
           FROM idempotency_keys WHERE key = 'probe'",
    )
    .execute(&pool)
    .await
    .expect("stored answer");
    let replayed = app.post_event(&token, "stored-body", event_body("xentri.soul.updated.v1")).await;
    assert_eq!(replayed.status(), 200);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(replayed.text().await.expect("body"), r#"{"kept":true}"#);
    assert_eq!(event_count(&pool).await, 1);
    app.stop().await;
}
