//! The Soul over HTTP against real PostgreSQL and Redis: every allowed and
//! forbidden transition, preconditions, idempotent mutations, service-only
//! draft delivery, a failed transaction, row-level security and the cached read.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;
use xentri_api::db::Db;

use crate::helpers::{BILLING_SECRET, TestApp, key, redis_connection, send, spawn_prefixed, user_token};

const STATES: [&str; 6] = ["initiated", "conversing", "drafting", "review_pending", "editing", "approved"];

fn service_token(org: Uuid) -> String {
    xentri_api::auth::token::service_token(BILLING_SECRET, "billing", org, std::time::Duration::from_secs(300))
        .expect("mint")
}

async fn create(app: &TestApp, token: &str) -> Value {
    let (status, headers, body) = send(app, reqwest::Method::POST, "/api/v1/soul", token, &key(), None, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(body["state"], "initiated");
    body
}

async fn transition(app: &TestApp, token: &str, version: i64, body: Value) -> (u16, HeaderMap, Value) {
    let tag = format!("\"{version}\"");
    send(app, reqwest::Method::POST, "/api/v1/soul/transitions", token, &key(), Some(&tag), Some(body)).await
}

/// Puts the org's Soul in `state` directly (as the owner), returning its version.
async fn force_state(pool: &PgPool, org: Uuid, state: &str) -> i64 {
    sqlx::query_scalar("UPDATE souls SET state = $2, version = version + 1 WHERE org_id = $1 RETURNING version")
        .bind(org)
        .bind(state)
        .fetch_one(pool)
        .await
        .expect("force state")
}

async fn event_types(pool: &PgPool, org: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT type FROM system_events WHERE org_id = $1 ORDER BY seq")
        .bind(org)
        .fetch_all(pool)
        .await
        .expect("events")
}

/// The body a transition to `to` from `from` needs: sections for an answer or a draft.
fn transition_body(from: &str, to: &str) -> Value {
    match (from, to) {
        ("conversing", "conversing") | ("drafting", "review_pending") => {
            json!({"to": to, "sections": {"mission": "m"}})
        }
        _ => json!({"to": to}),
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn every_allowed_and_every_forbidden_transition_over_http(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, "soul-test", &[]).await;
    let org = Uuid::new_v4();
    let (user, service) = (user_token(org), service_token(org));
    create(&app, &user).await;
    let allowed: &[(&str, &str)] = &[
        ("initiated", "conversing"),
        ("conversing", "conversing"),
        ("conversing", "drafting"),
        ("drafting", "review_pending"),
        ("review_pending", "editing"),
        ("editing", "review_pending"),
        ("review_pending", "approved"),
        ("approved", "editing"),
    ];
    for from in STATES {
        for to in STATES {
            let version = force_state(&pool, org, from).await;
            let token = if (from, to) == ("drafting", "review_pending") { &service } else { &user };
            let (status, headers, body) = transition(&app, token, version, transition_body(from, to)).await;
            if allowed.contains(&(from, to)) {
                assert_eq!(status, 200, "{from} → {to}: {body}");
                assert_eq!(body["state"], to);
                assert_eq!(body["version"], version + 1);
                assert_eq!(headers["etag"], format!("\"{}\"", version + 1));
            } else {
                assert_eq!(status, 409, "{from} → {to}: {body}");
                assert_eq!(headers["content-type"], "application/problem+json");
                assert_eq!(body["type"], "https://xentri.io/errors/invalid-transition");
                assert_eq!(body["state"], from);
                let expected: Vec<&str> =
                    allowed.iter().filter(|(f, _)| *f == from).map(|(_, t)| *t).collect::<Vec<_>>();
                let mut listed: Vec<&str> =
                    body["allowed_transitions"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
                let mut expected = expected;
                listed.sort_unstable();
                expected.sort_unstable();
                assert_eq!(listed, expected, "{from}");
            }
        }
    }
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn updates_require_the_current_version(_: PgPoolOptions, options: PgConnectOptions) {
    let (app, _) = spawn_prefixed(&options, "soul-test", &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    create(&app, &user).await;
    let (status, _, _) = transition(&app, &user, 1, json!({"to": "conversing"})).await;
    assert_eq!(status, 200);
    let content = Some(json!({"content": {"mission": "ship"}}));
    let put = |if_match: Option<&'static str>| {
        let (app, user, content) = (&app, &user, content.clone());
        async move { send(app, reqwest::Method::PUT, "/api/v1/soul", user, &key(), if_match, content).await }
    };
    let (status, headers, body) = put(None).await;
    assert_eq!((status, &body["type"]), (428, &json!("https://xentri.io/errors/precondition-required")), "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(put(Some("*")).await.0, 428);
    let (status, _, body) = put(Some("\"1\"")).await;
    assert_eq!((status, &body["type"]), (412, &json!("https://xentri.io/errors/precondition-failed")), "{body}");
    assert_eq!(put(Some("3")).await.0, 400);
    let (status, headers, body) = put(Some("\"2\"")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"], json!({"mission": "ship"}));
    assert_eq!(headers["etag"], "\"3\"");
    // The same stale tag again: the Soul moved on.
    assert_eq!(put(Some("\"2\"")).await.0, 412);
    // Transitions are updates too.
    let (status, _, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/soul/transitions",
        &user,
        &key(),
        None,
        Some(json!({"to": "drafting"})),
    )
    .await;
    assert_eq!(status, 428);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn mutations_are_idempotent(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, "soul-test", &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let post = |key: &'static str| send(&app, reqwest::Method::POST, "/api/v1/soul", &user, key, None, None);
    let (first_status, first_headers, first) = post("create-1").await;
    assert_eq!(first_status, 201);
    let (status, headers, again) = post("create-1").await;
    assert_eq!(status, 201, "the stored status");
    assert_eq!(again, first, "the stored body");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers["etag"], first_headers["etag"]);
    assert_eq!(event_types(&pool, org).await, ["xentri.soul.initiated.v1"], "no second event");

    let answer = |key: &'static str, text: &'static str, version: i64| {
        let tag = format!("\"{version}\"");
        let body = json!({"to": "conversing", "sections": {"mission": text}});
        let app = &app;
        let user = &user;
        async move { send(app, reqwest::Method::POST, "/api/v1/soul/transitions", user, key, Some(&tag), Some(body)).await }
    };
    assert_eq!(transition(&app, &user, 1, json!({"to": "conversing"})).await.0, 200);
    let (status, _, done) = answer("answer-1", "ship", 2).await;
    assert_eq!(status, 200);
    let (status, headers, replayed) = answer("answer-1", "ship", 2).await;
    assert_eq!((status, &replayed), (200, &done), "a retry after the Soul moved on is still the first answer");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers["etag"], "\"3\"");
    let (status, _, body) = answer("answer-1", "other", 2).await;
    assert_eq!((status, &body["type"]), (422, &json!("https://xentri.io/errors/idempotency-key-reused")), "{body}");
    let (status, _, _) = answer("answer-1", "ship", 3).await;
    assert_eq!(status, 422, "another If-Match is another request");

    // A key whose first request is still in flight: its lock is held.
    let mut holder = pool.acquire().await.expect("conn");
    sqlx::query("SELECT pg_advisory_lock(xentri_lock_class('idempotency'), hashtext($1 || ':' || 'answer-2'))")
        .bind(org.to_string())
        .execute(&mut *holder)
        .await
        .expect("lock");
    let (status, _, body) = answer("answer-2", "ship", 3).await;
    assert_eq!((status, &body["type"]), (409, &json!("https://xentri.io/errors/idempotency-key-in-flight")), "{body}");
    sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *holder).await.expect("unlock");
    let (status, _, _) = answer("answer-2", "ship", 3).await;
    assert_eq!(status, 200, "the key is free once the first request ended");
    assert_eq!(
        event_types(&pool, org).await,
        [
            "xentri.soul.initiated.v1",
            "xentri.soul.transitioned.v1",
            "xentri.soul.transitioned.v1",
            "xentri.soul.transitioned.v1"
        ],
    );

    // A refused mutation keeps no key: a retry is refused again, not replayed.
    let approve = || {
        let (app, user) = (&app, &user);
        async move {
            let body = Some(json!({"to": "approved"}));
            send(app, reqwest::Method::POST, "/api/v1/soul/transitions", user, "refused-1", Some("\"4\""), body).await
        }
    };
    for _ in 0..2 {
        let (status, headers, _) = approve().await;
        assert_eq!(status, 409);
        assert!(headers.get("idempotent-replayed").is_none());
    }
    let empty = send(&app, reqwest::Method::POST, "/api/v1/soul", &user, "", None, None).await;
    assert_eq!(empty.0, 400, "an Idempotency-Key is required");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn only_a_service_token_delivers_a_draft(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, "soul-test", &[]).await;
    let org = Uuid::new_v4();
    let (user, service) = (user_token(org), service_token(org));
    create(&app, &user).await;
    let version = force_state(&pool, org, "drafting").await;
    let draft = json!({"to": "review_pending", "sections": {"mission": "drafted", "voice": "warm"}});
    let (status, headers, body) = transition(&app, &user, version, draft.clone()).await;
    assert_eq!((status, &body["type"]), (403, &json!("https://xentri.io/errors/forbidden")), "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let (status, _, body) = transition(&app, &service, version, draft).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"], json!({"mission": "drafted", "voice": "warm"}));
    let actors: Vec<String> = sqlx::query_scalar("SELECT actor FROM system_events WHERE org_id = $1 ORDER BY seq")
        .bind(org)
        .fetch_all(&pool)
        .await
        .expect("actors");
    assert_eq!(actors.last().map(String::as_str), Some("service:billing"));
    // A service approves nothing.
    let (status, _, _) = transition(&app, &service, version + 1, json!({"to": "approved"})).await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_failed_transaction_leaves_neither_row_nor_event(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, "soul-test", &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    create(&app, &user).await;
    // The append fails after the Soul's row was changed in the same transaction.
    sqlx::query(
        "CREATE FUNCTION refuse_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'refused for the test'; END $$",
    )
    .execute(&pool)
    .await
    .expect("function");
    sqlx::query(
        "CREATE TRIGGER refuse_transitions BEFORE INSERT ON system_events FOR EACH ROW
         WHEN (NEW.type = 'xentri.soul.transitioned.v1') EXECUTE FUNCTION refuse_transitions()",
    )
    .execute(&pool)
    .await
    .expect("trigger");
    let body = json!({"to": "conversing"});
    let (status, _, problem) = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/soul/transitions",
        &user,
        "fails",
        Some("\"1\""),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 500, "{problem}");
    let (state, version): (String, i64) = sqlx::query_as("SELECT state, version FROM souls WHERE org_id = $1")
        .bind(org)
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_eq!((state.as_str(), version), ("initiated", 1), "the row is unchanged");
    assert_eq!(event_types(&pool, org).await, ["xentri.soul.initiated.v1"], "no event");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE org_id = $1 AND key = 'fails'")
        .bind(org)
        .fetch_one(&pool)
        .await
        .expect("keys");
    assert_eq!(keys, 0, "no key");
    sqlx::query("DROP TRIGGER refuse_transitions ON system_events").execute(&pool).await.expect("drop");
    let (status, headers, _) =
        send(&app, reqwest::Method::POST, "/api/v1/soul/transitions", &user, "fails", Some("\"1\""), Some(body)).await;
    assert_eq!(status, 200, "the same key, retried, does the work");
    assert!(headers.get("idempotent-replayed").is_none());
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn souls_are_isolated_by_row_level_security(pool: PgPool) {
    let (org_a, org_b) = (Uuid::new_v4(), Uuid::new_v4());
    for org in [org_a, org_b] {
        sqlx::query("INSERT INTO souls (id, org_id, state) VALUES ($1, $2, 'initiated')")
            .bind(Uuid::now_v7())
            .bind(org)
            .execute(&pool)
            .await
            .expect("insert as owner");
    }
    let db = Db::new(pool.clone(), "xentri_api");
    let mut tx = db.begin(org_a).await.expect("begin");
    let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT org_id FROM souls").fetch_all(&mut *tx).await.expect("select");
    assert_eq!(orgs, [org_a], "no org filter in the query, only org A's row");
    let changed = sqlx::query("UPDATE souls SET state = 'approved' WHERE org_id = $1")
        .bind(org_b)
        .execute(&mut *tx)
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(changed, 0, "another org's row cannot be changed");
    let insert = sqlx::query("INSERT INTO souls (id, org_id, state) VALUES ($1, $2, 'initiated')")
        .bind(Uuid::now_v7())
        .bind(Uuid::new_v4())
        .execute(&mut *tx)
        .await;
    assert!(insert.is_err(), "no row for another org can be written");
    drop(tx);
    let mut tx = db.begin(org_a).await.expect("begin");
    let deleted = sqlx::query("DELETE FROM souls").execute(&mut *tx).await;
    assert!(deleted.is_err(), "the api may not delete a Soul");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn reads_are_cached_with_etags(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, prefix) = spawn_prefixed(&options, "soul-test", &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let (status, _, body) = crate::helpers::json(app.get_as(&user, "/api/v1/soul").await).await;
    assert_eq!((status, &body["type"]), (404, &json!("https://xentri.io/errors/not-found")));
    create(&app, &user).await;
    let key = format!("{prefix}soul:{org}");
    let mut redis = redis_connection().await;
    let cached: Option<i64> = redis::cmd("HGET").arg(&key).arg("version").query_async(&mut redis).await.expect("HGET");
    assert_eq!(cached, Some(1), "a change caches its answer");
    redis::cmd("DEL").arg(&key).query_async::<()>(&mut redis).await.expect("DEL");

    let response = app.get_as(&user, "/api/v1/soul").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let read: Value = response.json().await.expect("json");
    assert_eq!(read["state"], "initiated");
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut redis).await.expect("PTTL");
    assert!(ttl > 0 && ttl <= 300_000, "a read fills the cache with the configured TTL: {ttl}");

    let not_modified =
        app.client.get(app.url("/api/v1/soul")).bearer_auth(&user).header("if-none-match", "\"1\"").send();
    let not_modified = not_modified.await.expect("sent");
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], "\"1\"");

    // A cached answer is served as cached; an older version never replaces a newer one.
    redis::cmd("HSET")
        .arg(&key)
        .arg("version")
        .arg(7)
        .arg("body")
        .arg(r#"{"cached":true}"#)
        .query_async::<()>(&mut redis)
        .await
        .expect("HSET");
    let response = app.get_as(&user, "/api/v1/soul").await;
    assert_eq!(response.headers()["etag"], "\"7\"");
    assert_eq!(response.json::<Value>().await.expect("json"), json!({"cached": true}));
    assert_eq!(transition(&app, &user, 1, json!({"to": "conversing"})).await.0, 200);
    let cached: Option<i64> = redis::cmd("HGET").arg(&key).arg("version").query_async(&mut redis).await.expect("HGET");
    assert_eq!(cached, Some(7), "version 2 does not replace a cached version 7");
    redis::cmd("DEL").arg(&key).query_async::<()>(&mut redis).await.expect("DEL");
    let response = app.get_as(&user, "/api/v1/soul").await;
    assert_eq!(response.headers()["etag"], "\"2\"");

    // The worker invalidated the key for version 3 (its floor): a read that
    // loaded version 2 before that change fills nothing; version 3 does.
    let floor = format!("{key}:floor");
    redis::cmd("DEL").arg(&key).query_async::<()>(&mut redis).await.expect("DEL");
    redis::cmd("SET").arg(&floor).arg(3).arg("PX").arg(60_000).query_async::<()>(&mut redis).await.expect("SET");
    let response = app.get_as(&user, "/api/v1/soul").await;
    assert_eq!(response.headers()["etag"], "\"2\"", "the read answers from PostgreSQL");
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query_async(&mut redis).await.expect("EXISTS");
    assert_eq!(exists, 0, "version 2 is below the floor: not cached");
    assert_eq!(transition(&app, &user, 2, json!({"to": "drafting"})).await.0, 200);
    let cached: Option<i64> = redis::cmd("HGET").arg(&key).arg("version").query_async(&mut redis).await.expect("HGET");
    assert_eq!(cached, Some(3), "version 3 is at the floor: cached");
    // Another org sees its own (none).
    assert_eq!(app.get_as(&user_token(Uuid::new_v4()), "/api/v1/soul").await.status(), 404);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn concurrent_updates_from_one_version_make_one_change(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, "soul-test", &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    create(&app, &user).await;
    assert_eq!(transition(&app, &user, 1, json!({"to": "conversing"})).await.0, 200);
    let puts = (0..8).map(|i| {
        let (app, user) = (&app, &user);
        async move {
            let body = Some(json!({"content": {"mission": format!("take {i}")}}));
            send(app, reqwest::Method::PUT, "/api/v1/soul", user, &key(), Some("\"2\""), body).await.0
        }
    });
    let mut statuses = futures_util::future::join_all(puts).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412, 412, 412]);
    let replaced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM system_events WHERE org_id = $1 AND type = 'xentri.soul.content_replaced.v1'",
    )
    .bind(org)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(replaced, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn with_the_cache_off_reads_go_to_postgres(_: PgPoolOptions, options: PgConnectOptions) {
    let (app, prefix) = spawn_prefixed(&options, "soul-test", &[("XENTRI_CACHE__ENABLED", "false")]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    create(&app, &user).await;
    let response = app.get_as(&user, "/api/v1/soul").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let mut redis = redis_connection().await;
    let exists: bool =
        redis::cmd("EXISTS").arg(format!("{prefix}soul:{org}")).query_async(&mut redis).await.expect("EXISTS");
    assert!(!exists, "nothing is cached");
    app.stop().await;
}
