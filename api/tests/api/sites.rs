//! Sites over HTTP against real PostgreSQL and Redis: creation, cached reads
//! with ETags, validation of pages and blocks, idempotent mutations,
//! preconditions, every allowed and forbidden transition with its events and
//! its build job, row-level security and the published HTML's headers. The
//! build itself runs in the worker: `tests/tests/e2e/sites.rs`.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;
use xentri_api::db::Db;

use crate::helpers::{TestApp, key, problem_fields, redis_connection, send, spawn_prefixed, user_token};

const SITES: &str = "/api/v1/marketing/sites";
const STATES: [&str; 5] = ["draft", "preview", "publishing", "live", "failed"];
/// The user's steps of the Website Publish Flow.
const USERS: [(&str, &str); 5] =
    [("draft", "preview"), ("preview", "draft"), ("preview", "publishing"), ("failed", "draft"), ("live", "draft")];
/// The build's steps: a user asking for one gets a 403.
const BUILDS: [(&str, &str); 3] = [("publishing", "live"), ("publishing", "failed"), ("failed", "live")];
/// The correlation id every mutation of these tests sends.
const FLOW: &str = "sites-test";

fn pages() -> Value {
    json!([
        {"slug": "home", "title": "Home", "blocks": [
            {"type": "heading", "text": "Fresh bread", "level": 1},
            {"type": "text", "text": "Every morning."},
            {"type": "image", "src": "https://example.com/bread.png", "alt": "A loaf"},
            {"type": "link", "href": "/about", "text": "About us"},
        ]},
        {"slug": "about", "title": "About", "blocks": []},
    ])
}

async fn create(app: &TestApp, token: &str) -> Value {
    let body = json!({"name": "Acme Bakery", "pages": pages()});
    let (status, headers, site) = send(app, Method::POST, SITES, token, &key(), None, Some(body)).await;
    assert_eq!(status, 201, "{site}");
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(headers["x-correlation-id"], FLOW);
    assert_eq!((&site["state"], &site["version"]), (&json!("draft"), &json!(1)));
    site
}

fn id(site: &Value) -> &str {
    site["id"].as_str().expect("id")
}

async fn transition(app: &TestApp, token: &str, site: &Value, version: i64, to: &str) -> (u16, HeaderMap, Value) {
    let path = format!("{SITES}/{}/transitions", id(site));
    let tag = format!("\"{version}\"");
    send(app, Method::POST, &path, token, &key(), Some(&tag), Some(json!({"to": to, "reason": "test"}))).await
}

/// Puts site `id` in `state` directly (as the owner), returning its version.
async fn force_state(pool: &PgPool, site: &Value, state: &str) -> i64 {
    let id: Uuid = id(site).parse().expect("uuid");
    sqlx::query_scalar("UPDATE sites SET state = $2, version = version + 1 WHERE id = $1 RETURNING version")
        .bind(id)
        .bind(state)
        .fetch_one(pool)
        .await
        .expect("force state")
}

/// The org's events in order: type, correlation id, payload.
async fn events(pool: &PgPool, org: Uuid) -> Vec<(String, String, Value)> {
    sqlx::query_as("SELECT type, correlation_id, payload FROM system_events WHERE org_id = $1 ORDER BY seq")
        .bind(org)
        .fetch_all(pool)
        .await
        .expect("events")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn sites_are_created_read_with_etags_and_cached(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, prefix) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let site = create(&app, &user).await;
    assert_eq!(site["pages"], pages(), "the pages as given");
    assert_eq!(site["published_version"], Value::Null);
    let created = events(&pool, org).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].0, "xentri.website.created.v1");
    assert_eq!(created[0].2["site_id"], site["id"]);
    assert_eq!(created[0].2["pages"], json!(["home", "about"]));

    // The creation cached its answer; a read is served from it, with its ETag.
    let cache_key = format!("{prefix}site:{org}:{}", id(&site));
    let mut redis = redis_connection().await;
    let ttl: i64 = redis::cmd("PTTL").arg(&cache_key).query_async(&mut redis).await.expect("PTTL");
    assert!(ttl > 0 && ttl <= 300_000, "cached with the configured TTL: {ttl}");
    let path = format!("{SITES}/{}", id(&site));
    let response = app.get_as(&user, &path).await;
    assert_eq!((response.status().as_u16(), &response.headers()["etag"]), (200, &"\"1\"".parse().expect("tag")));
    assert_eq!(response.json::<Value>().await.expect("json"), site);
    let not_modified = app.client.get(app.url(&path)).bearer_auth(&user).header("if-none-match", "\"1\"");
    let not_modified = not_modified.send().await.expect("sent");
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], "\"1\"");

    // A miss reads PostgreSQL and fills the cache.
    redis::cmd("DEL").arg(&cache_key).query_async::<()>(&mut redis).await.expect("DEL");
    let (status, _, read) = crate::helpers::json(app.get_as(&user, &path).await).await;
    assert_eq!((status, &read), (200, &site));
    let cached: Option<i64> =
        redis::cmd("HGET").arg(&cache_key).arg("version").query_async(&mut redis).await.expect("HGET");
    assert_eq!(cached, Some(1), "the read filled the cache");

    // An edit writes its new version over the cached one.
    let (status, headers, edited) =
        send(&app, Method::PATCH, &path, &user, &key(), Some("\"1\""), Some(json!({"name": "Acme"}))).await;
    assert_eq!((status, &edited["name"], &edited["version"]), (200, &json!("Acme"), &json!(2)), "{edited}");
    assert_eq!(headers["etag"], "\"2\"");
    let (_, headers, read) = crate::helpers::json(app.get_as(&user, &path).await).await;
    assert_eq!((&headers["etag"], &read), (&"\"2\"".parse().expect("tag"), &edited));

    // The cache off: nothing is cached, every read is PostgreSQL's.
    app.stop().await;
    redis::cmd("DEL").arg(&cache_key).query_async::<()>(&mut redis).await.expect("DEL");
    let (app, prefix) = spawn_prefixed(&options, FLOW, &[("XENTRI_CACHE__ENABLED", "false")]).await;
    assert_eq!(app.get_as(&user, &path).await.status(), 200);
    let off: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}site:{org}:{}", id(&site)))
        .query_async(&mut redis)
        .await
        .expect("EXISTS");
    assert!(!off, "with the cache off nothing is cached");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn bad_pages_and_fields_are_422s_listing_each(_: PgPoolOptions, options: PgConnectOptions) {
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let user = user_token(Uuid::new_v4());
    let post = |body: Value| send(&app, Method::POST, SITES, &user, "k", None, Some(body));
    let (status, headers, problem) = post(json!({"name": "Acme", "pages": [
        {"slug": "Home Page", "title": "Home", "blocks": [
            {"type": "heading", "text": "", "level": 9},
            {"type": "image", "src": "javascript:alert(1)", "alt": "x"},
            {"type": "link", "href": "https://example.com", "text": "x", "target": "_blank"},
            {"type": "marquee", "text": "x"},
        ]},
        {"slug": "about", "title": "About"},
    ]}))
    .await;
    assert_eq!((status, &problem["type"]), (422, &json!("https://xentri.io/errors/validation-failed")), "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(
        problem_fields(&problem),
        [
            "/pages/0/slug",
            "/pages/0/blocks/0/text",
            "/pages/0/blocks/0/level",
            "/pages/0/blocks/1/src",
            "/pages/0/blocks/2/target",
            "/pages/0/blocks/3/type",
            "/pages/1/blocks",
        ]
    );
    let (status, _, problem) = post(json!({"pages": [], "state": "live"})).await;
    assert_eq!((status, problem_fields(&problem)), (422, vec!["state", "name"]), "{problem}");
    let no_key = send(&app, Method::POST, SITES, &user, "", None, Some(json!({"name": "A"}))).await;
    assert_eq!(no_key.0, 400, "an Idempotency-Key is required");
    let text = app.client.post(app.url(SITES)).bearer_auth(&user).header("idempotency-key", "t").body("{}");
    assert_eq!(text.send().await.expect("sent").status(), 415);
    let huge = json!({"name": "A", "pages": [{"slug": "a", "title": "A", "blocks": [{"type": "text", "text": "x".repeat(1_100_000)}]}]});
    assert_eq!(post(huge).await.0, 413, "bodies are bounded like every route's");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn every_mutation_is_idempotent(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let site = create(&app, &user).await;
    let path = format!("{SITES}/{}", id(&site));
    // (method, path, If-Match, body, another body): each mutation in turn.
    let mutations: [(Method, String, Option<&str>, Value, Value); 3] = [
        (Method::POST, SITES.into(), None, json!({"name": "One"}), json!({"name": "Two"})),
        (Method::PATCH, path.clone(), Some("\"1\""), json!({"name": "Renamed"}), json!({"name": "Other"})),
        (
            Method::POST,
            format!("{path}/transitions"),
            Some("\"2\""),
            json!({"to": "preview"}),
            json!({"to": "preview", "reason": "x"}),
        ),
    ];
    for (i, (method, path, if_match, body, other)) in mutations.into_iter().enumerate() {
        let key = format!("mutation-{i}");
        let before = events(&pool, org).await.len();
        let (status, headers, first) =
            send(&app, method.clone(), &path, &user, &key, if_match, Some(body.clone())).await;
        assert!(status == 200 || status == 201, "{path}: {status} {first}");
        assert!(headers.get("idempotent-replayed").is_none());
        let appended = events(&pool, org).await.len();
        assert_eq!(appended, before + 1, "{path} appended its event");
        let (again, replay_headers, replayed) =
            send(&app, method.clone(), &path, &user, &key, if_match, Some(body)).await;
        assert_eq!((again, &replayed), (status, &first), "{path}: the stored answer");
        assert_eq!(replay_headers["idempotent-replayed"], "true", "{path}");
        assert_eq!(replay_headers.get("etag"), headers.get("etag"), "{path}");
        assert_eq!(events(&pool, org).await.len(), appended, "{path}: no second event");
        let (status, _, problem) = send(&app, method, &path, &user, &key, if_match, Some(other)).await;
        assert_eq!(
            (status, &problem["type"]),
            (422, &json!("https://xentri.io/errors/idempotency-key-reused")),
            "{path}"
        );
    }
    // The publish request's job is enqueued once, replay or not.
    let publish = format!("{path}/transitions");
    let body = Some(json!({"to": "publishing"}));
    let first = send(&app, Method::POST, &publish, &user, "publish", Some("\"3\""), body.clone()).await;
    assert_eq!(first.0, 200, "{}", first.2);
    let again = send(&app, Method::POST, &publish, &user, "publish", Some("\"3\""), body).await;
    assert_eq!((again.0, &again.2), (200, &first.2));
    let jobs = events(&pool, org).await.into_iter().filter(|(t, _, _)| t == "xentri.website.build_requested.v1");
    assert_eq!(jobs.count(), 1);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn changes_require_the_current_version(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let site = create(&app, &user).await;
    let path = format!("{SITES}/{}", id(&site));
    let patch = |if_match: Option<&'static str>| {
        let (app, user, path) = (&app, &user, &path);
        async move { send(app, Method::PATCH, path, user, &key(), if_match, Some(json!({"pages": []}))).await }
    };
    let (status, _, problem) = patch(None).await;
    assert_eq!((status, &problem["type"]), (428, &json!("https://xentri.io/errors/precondition-required")));
    let (status, _, problem) = patch(Some("\"7\"")).await;
    assert_eq!((status, &problem["type"]), (412, &json!("https://xentri.io/errors/precondition-failed")));
    let (status, headers, body) = patch(Some("\"1\"")).await;
    assert_eq!((status, &body["pages"], &body["name"]), (200, &json!([]), &json!("Acme Bakery")), "{body}");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(patch(Some("\"1\"")).await.0, 412, "the site moved on");
    let (status, _, _) =
        send(&app, Method::POST, &format!("{path}/transitions"), &user, &key(), None, Some(json!({"to": "preview"})))
            .await;
    assert_eq!(status, 428, "transitions are changes too");
    let updated = events(&pool, org).await.into_iter().filter(|(t, _, _)| t == "xentri.website.updated.v1").count();
    assert_eq!(updated, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn every_allowed_and_every_forbidden_transition_over_http(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let site = create(&app, &user).await;
    for from in STATES {
        for to in STATES {
            let version = force_state(&pool, &site, from).await;
            let before = events(&pool, org).await.len();
            let (status, headers, body) = transition(&app, &user, &site, version, to).await;
            let appended: Vec<(String, String, Value)> = events(&pool, org).await.into_iter().skip(before).collect();
            let types: Vec<&str> = appended.iter().map(|(t, _, _)| t.as_str()).collect();
            if USERS.contains(&(from, to)) {
                assert_eq!(status, 200, "{from} → {to}: {body}");
                assert_eq!((&body["state"], &body["version"]), (&json!(to), &json!(version + 1)));
                assert_eq!(headers["etag"], format!("\"{}\"", version + 1));
                let payload = &appended[0].2;
                assert_eq!(
                    (&payload["from"], &payload["to"], &payload["reason"]),
                    (&json!(from), &json!(to), &json!("test"))
                );
                if to == "publishing" {
                    assert_eq!(types, ["xentri.website.updated.v1", "xentri.website.build_requested.v1"]);
                    let job = &appended[1].2;
                    assert_eq!((&job["site_id"], &job["version"]), (&site["id"], &json!(version + 1)));
                } else {
                    assert_eq!(types, ["xentri.website.updated.v1"], "{from} → {to}");
                }
            } else if BUILDS.contains(&(from, to)) {
                assert_eq!(
                    (status, &body["type"]),
                    (403, &json!("https://xentri.io/errors/forbidden")),
                    "{from} → {to}"
                );
                assert!(appended.is_empty(), "{from} → {to} appended {types:?}");
            } else {
                assert_eq!(status, 409, "{from} → {to}: {body}");
                assert_eq!(body["type"], "https://xentri.io/errors/invalid-transition");
                assert_eq!(body["state"], from);
                let expected: Vec<&str> = USERS.iter().filter(|(f, _)| *f == from).map(|(_, t)| *t).collect();
                assert_eq!(body["allowed_transitions"], json!(expected), "{from}");
                assert!(appended.is_empty(), "{from} → {to} appended {types:?}");
            }
        }
    }
    // An edit takes the site back to draft, except while it is publishing.
    let path = format!("{SITES}/{}", id(&site));
    for from in STATES {
        let version = force_state(&pool, &site, from).await;
        let tag = format!("\"{version}\"");
        let (status, _, body) =
            send(&app, Method::PATCH, &path, &user, &key(), Some(&tag), Some(json!({"name": from}))).await;
        if from == "publishing" {
            assert_eq!((status, &body["allowed_transitions"]), (409, &json!([])), "{body}");
        } else {
            assert_eq!((status, &body["state"], &body["name"]), (200, &json!("draft"), &json!(from)), "{body}");
        }
    }
    let all = events(&pool, org).await;
    assert!(all.iter().all(|(_, correlation, _)| correlation == FLOW), "one correlation id");

    // The build job's outbox row aims at the jobs stream, the others' at the events stream.
    let streams: Vec<(String, String)> = sqlx::query_as(
        "SELECT e.type, o.stream FROM outbox o JOIN system_events e ON e.seq = o.event_seq WHERE e.org_id = $1",
    )
    .bind(org)
    .fetch_all(&pool)
    .await
    .expect("outbox");
    assert!(streams.iter().any(|(t, _)| t == "xentri.website.build_requested.v1"));
    for (event_type, stream) in streams {
        let expected = if event_type == "xentri.website.build_requested.v1" { "jobs:work" } else { "events:work" };
        assert_eq!(stream, expected, "{event_type}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn sites_and_their_pages_are_isolated_by_row_level_security(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let (org_a, org_b) = (Uuid::new_v4(), Uuid::new_v4());
    let a = create(&app, &user_token(org_a)).await;
    let b = create(&app, &user_token(org_b)).await;
    for (site, org) in [(&a, org_a), (&b, org_b)] {
        let id: Uuid = id(site).parse().expect("uuid");
        sqlx::query("INSERT INTO site_pages_html (site_id, org_id, slug, html, site_version) VALUES ($1, $2, 'home', '<p>x</p>', 1)")
            .bind(id)
            .bind(org)
            .execute(&pool)
            .await
            .expect("insert html");
    }
    for role in ["xentri_api", "xentri_worker"] {
        let db = Db::new(pool.clone(), role);
        let mut tx = db.begin(org_a).await.expect("begin");
        let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT org_id FROM sites").fetch_all(&mut *tx).await.expect("select");
        assert_eq!(orgs, [org_a], "{role}: no org filter in the query, only org A's site");
        let orgs: Vec<Uuid> =
            sqlx::query_scalar("SELECT org_id FROM site_pages_html").fetch_all(&mut *tx).await.expect("select");
        assert_eq!(orgs, [org_a], "{role}: only org A's pages");
        let changed = sqlx::query("UPDATE sites SET name = 'taken' WHERE org_id = $1")
            .bind(org_b)
            .execute(&mut *tx)
            .await
            .expect("update")
            .rows_affected();
        assert_eq!(changed, 0, "{role}: another org's site cannot be changed");
        drop(tx);
        let mut tx = db.begin(org_a).await.expect("begin");
        assert!(sqlx::query("DELETE FROM sites").execute(&mut *tx).await.is_err(), "{role} may not delete a site");
        drop(tx);
    }
    let db = Db::new(pool.clone(), "xentri_api");
    let mut tx = db.begin(org_a).await.expect("begin");
    assert!(
        sqlx::query("DELETE FROM site_pages_html").execute(&mut *tx).await.is_err(),
        "only the build writes published pages"
    );
    drop(tx);

    let user_a = user_token(org_a);
    let b_id = id(&b);
    for path in [
        format!("{SITES}/{b_id}"),
        format!("{SITES}/not-a-uuid"),
        format!("{SITES}/{}", Uuid::now_v7()),
        format!("{SITES}/{b_id}/html/home"),
    ] {
        let response = app.get_as(&user_a, &path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{path}");
    }
    let (status, _, _) = transition(&app, &user_a, &b, 1, "preview").await;
    assert_eq!(status, 404, "another org's site cannot be moved");
    let (status, _, _) = send(
        &app,
        Method::PATCH,
        &format!("{SITES}/{b_id}"),
        &user_a,
        &key(),
        Some("\"1\""),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 404, "another org's site cannot be edited");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn published_pages_are_served_as_html_that_runs_no_script(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let site = create(&app, &user).await;
    let html_path = format!("{SITES}/{}/html/home", id(&site));
    assert_eq!(app.get_as(&user, &html_path).await.status(), 404, "nothing published yet");
    let site_id: Uuid = id(&site).parse().expect("uuid");
    sqlx::query(
        "INSERT INTO site_pages_html (site_id, org_id, slug, html, site_version) VALUES ($1, $2, 'home', $3, 1)",
    )
    .bind(site_id)
    .bind(org)
    .bind("<!DOCTYPE html><p>built</p>")
    .execute(&pool)
    .await
    .expect("insert html");
    let response = app.get_as(&user, &html_path).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let csp = response.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
    assert_eq!(response.text().await.expect("text"), "<!DOCTYPE html><p>built</p>");
    assert_eq!(app.get_as(&user, &format!("{SITES}/{}/html/nope", id(&site))).await.status(), 404);
    app.stop().await;
}
