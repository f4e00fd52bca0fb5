//! Language choices over HTTP: each step of the order problem titles follow
//! (the user's choice, `Accept-Language`, the org's default, English), the
//! rules of their `PUT`s (supported languages only, `If-Match`,
//! `Idempotency-Key`, admins only for the org, an event in the same
//! transaction) and row-level security on their tables.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use xentri_api::db::Db;

use crate::helpers::{TestApp, database_url, json, settings, sign, spawn_with, user_claims, user_token};

const ME: &str = "/api/v1/me/preferences";
const ORG: &str = "/api/v1/org/settings";

async fn start(pool: &PgPool) -> TestApp {
    spawn_with(settings(&database_url(&pool.connect_options()), &[])).await
}

/// A `PUT`: path, token, If-Match, body, key; status, headers and JSON body.
async fn put(
    app: &TestApp,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    body: Value,
    key: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request =
        app.client.request(Method::PUT, app.url(path)).bearer_auth(token).header("idempotency-key", key).json(&body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    json(request.send().await.expect("request sent")).await
}

/// Sets `path`'s `field` to `code`, from whatever version it is at.
async fn choose(app: &TestApp, path: &str, token: &str, field: &str, code: Value) {
    let (_, headers, _) = json(app.get_as(token, path).await).await;
    let tag = headers["etag"].to_str().expect("an etag").to_owned();
    let (status, _, body) =
        put(app, path, token, Some(&tag), json!({ field: code }), &Uuid::new_v4().to_string()).await;
    assert_eq!(status, 200, "{body}");
}

/// The title and `Content-Language` of a 404 problem answered to `token`
/// with `accept_language`, if any.
async fn problem_language(app: &TestApp, token: &str, accept_language: Option<&str>) -> (String, String) {
    let mut request = app.client.get(app.url(&format!("/api/v1/events/{}", Uuid::new_v4()))).bearer_auth(token);
    if let Some(value) = accept_language {
        request = request.header("accept-language", value);
    }
    let (status, headers, problem) = json(request.send().await.expect("request sent")).await;
    assert_eq!(status, 404, "{problem}");
    let language = headers["content-language"].to_str().expect("content-language").to_owned();
    (problem["title"].as_str().expect("a title").to_owned(), language)
}

fn member_token(org: Uuid) -> String {
    let mut claims = user_claims(org);
    claims["org_role"] = json!("org:member");
    claims["sub"] = json!("user_member");
    sign(jsonwebtoken::Algorithm::RS256, "test-rsa-1", "rsa_private.pem", &claims)
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn problem_titles_follow_the_user_then_accept_language_then_the_org_then_english(pool: PgPool) {
    let app = start(&pool).await;
    let org = Uuid::new_v4();
    let admin = user_token(org);
    let member = member_token(org);
    let found = |title: &str, code: &str| (title.to_owned(), code.to_owned());

    assert_eq!(
        problem_language(&app, &member, None).await,
        found("Resource Not Found", "en"),
        "nothing chosen: English"
    );
    assert_eq!(problem_language(&app, &member, Some("de")).await, found("Ressource nicht gefunden", "de"));

    choose(&app, ORG, &admin, "default_language", json!("fr")).await;
    assert_eq!(
        problem_language(&app, &member, None).await,
        found("Ressource introuvable", "fr"),
        "without Accept-Language, the org's default"
    );
    assert_eq!(
        problem_language(&app, &member, Some("ja, de;q=0.5")).await,
        found("Ressource nicht gefunden", "de"),
        "Accept-Language before the org's default"
    );
    assert_eq!(
        problem_language(&app, &member, Some("ja")).await,
        found("Ressource introuvable", "fr"),
        "an Accept-Language naming no supported language leaves it to the org"
    );

    choose(&app, ME, &member, "language", json!("es")).await;
    assert_eq!(
        problem_language(&app, &member, Some("de")).await,
        found("Recurso no encontrado", "es"),
        "the user's own choice before everything"
    );
    assert_eq!(
        problem_language(&app, &admin, Some("de")).await,
        found("Ressource nicht gefunden", "de"),
        "one user's choice is not another's"
    );
    let other_org = user_token(Uuid::new_v4());
    assert_eq!(problem_language(&app, &other_org, None).await, found("Resource Not Found", "en"), "nor another org's");

    choose(&app, ME, &member, "language", Value::Null).await;
    assert_eq!(problem_language(&app, &member, Some("de")).await, found("Ressource nicht gefunden", "de"), "cleared");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn unsupported_languages_are_422s(pool: PgPool) {
    let app = start(&pool).await;
    let token = user_token(Uuid::new_v4());
    for (path, field) in [(ME, "language"), (ORG, "default_language")] {
        for code in [json!("it"), json!("DE"), json!(7)] {
            let (status, _, problem) = put(&app, path, &token, Some("\"0\""), json!({ field: code }), "k").await;
            assert_eq!(status, 422, "{path} {code}: {problem}");
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
            assert_eq!(problem["errors"][0]["message"], "must be one of en, de, fr, es, or null");
        }
        let (_, _, read) = json(app.get_as(&token, path).await).await;
        assert_eq!(read["version"], 0, "nothing was stored: {read}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn changes_name_their_version_are_idempotent_and_append_their_event(pool: PgPool) {
    let app = start(&pool).await;
    let org = Uuid::new_v4();
    let token = user_token(org);
    let (status, headers, read) = json(app.get_as(&token, ME).await).await;
    assert_eq!((status, &read), (200, &json!({"language": null, "version": 0})));
    assert_eq!(headers["etag"], "\"0\"");

    let body = json!({"language": "de"});
    let (status, _, _) = put(&app, ME, &token, None, body.clone(), "p-1").await;
    assert_eq!(status, 428, "If-Match is required");
    let (status, _, _) = put(&app, ME, &token, Some("\"3\""), body.clone(), "p-1").await;
    assert_eq!(status, 412, "a version that is not the current one");
    let (status, headers, answer) = put(&app, ME, &token, Some("\"0\""), body.clone(), "p-1").await;
    assert_eq!((status, &answer), (200, &json!({"language": "de", "version": 1})));
    assert_eq!(headers["etag"], "\"1\"");
    let (status, headers, replayed) = put(&app, ME, &token, Some("\"0\""), body.clone(), "p-1").await;
    assert_eq!((status, &replayed), (200, &answer), "the same key and request: the stored answer");
    assert_eq!(headers["idempotent-replayed"], "true");
    let (status, _, _) = put(&app, ME, &token, Some("\"0\""), json!({"language": "fr"}), "p-1").await;
    assert_eq!(status, 422, "the same key with another request");

    let (status, _, member_refused) =
        put(&app, ORG, &member_token(org), Some("\"0\""), json!({"default_language": "fr"}), "o-1").await;
    assert_eq!(status, 403, "only admins change the org's settings: {member_refused}");
    let (status, _, settings) = put(&app, ORG, &token, Some("\"0\""), json!({"default_language": "fr"}), "o-1").await;
    assert_eq!((status, &settings), (200, &json!({"default_language": "fr", "version": 1})));

    let events: Vec<(String, Value)> =
        sqlx::query_as("SELECT type, payload::jsonb FROM system_events WHERE org_id = $1 ORDER BY seq")
            .bind(org)
            .fetch_all(&pool)
            .await
            .expect("events");
    assert_eq!(
        events,
        [
            (
                "xentri.user.preferences.updated.v1".to_owned(),
                json!({"subject": "user_test", "language": "de", "version": 1})
            ),
            ("xentri.org.settings.updated.v1".to_owned(), json!({"default_language": "fr", "version": 1})),
        ],
        "one event per change, none for the refused or replayed requests"
    );
    let contracts = xentri_core::contracts::Contracts::load().expect("contracts");
    for (event_type, payload) in &events {
        assert_eq!(contracts.check_payload(event_type, payload), Ok(()), "{event_type} keeps its contract");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn choices_are_isolated_by_row_level_security(pool: PgPool) {
    let (org_a, org_b) = (Uuid::new_v4(), Uuid::new_v4());
    for org in [org_a, org_b] {
        sqlx::query("INSERT INTO user_preferences (id, org_id, subject, language) VALUES ($1, $2, 'user_x', 'de')")
            .bind(Uuid::now_v7())
            .bind(org)
            .execute(&pool)
            .await
            .expect("insert as owner");
        sqlx::query("INSERT INTO org_settings (id, org_id, default_language) VALUES ($1, $2, 'fr')")
            .bind(Uuid::now_v7())
            .bind(org)
            .execute(&pool)
            .await
            .expect("insert as owner");
    }
    let db = Db::new(pool.clone(), "xentri_api");
    for table in ["user_preferences", "org_settings"] {
        let mut tx = db.begin(org_a).await.expect("begin");
        let orgs: Vec<Uuid> =
            sqlx::query_scalar(&format!("SELECT org_id FROM {table}")).fetch_all(&mut *tx).await.expect("select");
        assert_eq!(orgs, [org_a], "{table}: no org filter in the query, only org A's row");
        let changed = sqlx::query(&format!("UPDATE {table} SET version = version + 1 WHERE org_id = $1"))
            .bind(org_b)
            .execute(&mut *tx)
            .await
            .expect("update")
            .rows_affected();
        assert_eq!(changed, 0, "{table}: another org's row cannot be changed");
        drop(tx);
        let mut tx = db.begin(org_a).await.expect("begin");
        let deleted = sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await;
        assert!(deleted.is_err(), "{table}: the api may not delete a choice");
    }
    let mut tx = db.begin(org_a).await.expect("begin");
    let insert = sqlx::query("INSERT INTO org_settings (id, org_id) VALUES ($1, $2)")
        .bind(Uuid::now_v7())
        .bind(Uuid::new_v4())
        .execute(&mut *tx)
        .await;
    assert!(insert.is_err(), "no row for another org can be written");
}
