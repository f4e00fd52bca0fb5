//! Leads over HTTP against real PostgreSQL and Redis: creation, reads and
//! paging, validation, idempotent mutations, preconditions, every allowed and
//! forbidden transition with its events, all-or-nothing imports, row-level
//! security and the cached first page.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;
use xentri_api::db::Db;

use crate::helpers::{TestApp, key, problem_fields, redis_connection, send, spawn_prefixed, user_token};

const LEADS: &str = "/api/v1/sales/leads";
const STATUSES: [&str; 7] = ["new", "contacted", "qualified", "disqualified", "proposal", "won", "lost"];
const ALLOWED: [(&str, &str); 6] = [
    ("new", "contacted"),
    ("contacted", "qualified"),
    ("contacted", "disqualified"),
    ("qualified", "proposal"),
    ("proposal", "won"),
    ("proposal", "lost"),
];
/// The correlation id every mutation of these tests sends.
const FLOW: &str = "leads-test";

fn lead_body(i: usize) -> Value {
    json!({"name": format!("Lead {i}"), "email": format!("lead{i}@example.com"), "company": "Acme", "source": "form"})
}

async fn create(app: &TestApp, token: &str, i: usize) -> Value {
    let (status, headers, body) = send(app, Method::POST, LEADS, token, &key(), None, Some(lead_body(i))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(headers["x-correlation-id"], FLOW);
    assert_eq!((&body["status"], &body["version"]), (&json!("new"), &json!(1)));
    body
}

async fn transition(app: &TestApp, token: &str, id: &Value, version: i64, to: &str) -> (u16, HeaderMap, Value) {
    let path = format!("{LEADS}/{}/transitions", id.as_str().expect("id"));
    let tag = format!("\"{version}\"");
    send(app, Method::POST, &path, token, &key(), Some(&tag), Some(json!({"to": to, "reason": "test"}))).await
}

/// Puts lead `id` in `status` directly (as the owner), returning its version.
async fn force_status(pool: &PgPool, id: &Value, status: &str) -> i64 {
    let id: Uuid = id.as_str().expect("id").parse().expect("uuid");
    sqlx::query_scalar("UPDATE leads SET status = $2, version = version + 1 WHERE id = $1 RETURNING version")
        .bind(id)
        .bind(status)
        .fetch_one(pool)
        .await
        .expect("force status")
}

async fn events(pool: &PgPool, org: Uuid) -> Vec<(String, String)> {
    sqlx::query_as("SELECT type, correlation_id FROM system_events WHERE org_id = $1 ORDER BY seq")
        .bind(org)
        .fetch_all(pool)
        .await
        .expect("events")
}

async fn count_leads(pool: &PgPool, org: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM leads WHERE org_id = $1").bind(org).fetch_one(pool).await.expect("count")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn leads_are_created_read_and_listed_in_pages(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(create(&app, &user, i).await);
    }
    assert_eq!(created[0]["company"], "Acme");
    assert_eq!(created[0]["source"], "form");

    let id = created[2]["id"].as_str().expect("id");
    let response = app.get_as(&user, &format!("{LEADS}/{id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");
    assert_eq!(response.json::<Value>().await.expect("json"), created[2]);
    let not_modified =
        app.client.get(app.url(&format!("{LEADS}/{id}"))).bearer_auth(&user).header("if-none-match", "\"1\"");
    let not_modified = not_modified.send().await.expect("sent");
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], "\"1\"");

    // Pages of two, newest first, until the cursor runs out.
    let mut seen = Vec::new();
    let mut path = format!("{LEADS}?limit=2");
    loop {
        let (status, _, page) = crate::helpers::json(app.get_as(&user, &path).await).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["data"].as_array().expect("data").iter().map(|l| l["id"].clone()));
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(page["has_more"], true);
                path = format!("{LEADS}?limit=2&after={next}");
            }
            None => break,
        }
    }
    let newest_first: Vec<Value> = created.iter().rev().map(|l| l["id"].clone()).collect();
    assert_eq!(seen, newest_first);

    // The status filter.
    assert_eq!(transition(&app, &user, &created[1]["id"], 1, "contacted").await.0, 200);
    assert_eq!(transition(&app, &user, &created[3]["id"], 1, "contacted").await.0, 200);
    let (_, _, page) = crate::helpers::json(app.get_as(&user, &format!("{LEADS}?status=contacted")).await).await;
    let ids: Vec<&Value> = page["data"].as_array().expect("data").iter().map(|l| &l["id"]).collect();
    assert_eq!(ids, [&created[3]["id"], &created[1]["id"]]);
    assert!(page["data"].as_array().expect("data").iter().all(|l| l["status"] == "contacted"));
    let (status, _, problem) =
        crate::helpers::json(app.get_as(&user, &format!("{LEADS}?status=gone&limit=0&after=x&y=1")).await).await;
    assert_eq!(status, 400);
    assert_eq!(problem_fields(&problem), ["query.status", "query.limit", "query.after", "query.y"]);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn bad_fields_are_422s_listing_each(_: PgPoolOptions, options: PgConnectOptions) {
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let user = user_token(Uuid::new_v4());
    let post = |body: Value| send(&app, Method::POST, LEADS, &user, "k", None, Some(body));
    let (status, headers, problem) = post(json!({"name": "A", "email": "not-an-email", "source": "form"})).await;
    assert_eq!((status, &problem["type"]), (422, &json!("https://xentri.io/errors/validation-failed")));
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem_fields(&problem), ["email"]);
    let (status, _, problem) = post(json!({"name": "A", "email": "a@example.com", "source": "fax"})).await;
    assert_eq!((status, problem_fields(&problem)), (422, vec!["source"]));
    let (status, _, problem) =
        post(json!({"name": "A", "email": "a@example.com", "source": "form", "status": "won", "vip": true})).await;
    assert_eq!((status, problem_fields(&problem)), (422, vec!["status", "vip"]), "unknown keys are refused");
    let (status, _, problem) = post(json!({})).await;
    assert_eq!((status, problem_fields(&problem)), (422, vec!["name", "email", "source"]));
    let no_key = send(&app, Method::POST, LEADS, &user, "", None, Some(lead_body(1))).await;
    assert_eq!(no_key.0, 400, "an Idempotency-Key is required");
    let text = app.client.post(app.url(LEADS)).bearer_auth(&user).header("idempotency-key", "t").body("{}");
    assert_eq!(text.send().await.expect("sent").status(), 415);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn every_mutation_is_idempotent(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let lead = create(&app, &user, 0).await;
    let id = lead["id"].as_str().expect("id").to_owned();
    let import = json!({"leads": [lead_body(1), lead_body(2)]});
    // (method, path, If-Match, body, another body): each mutation in turn.
    let mutations: [(Method, String, Option<&str>, Value, Value); 4] = [
        (Method::POST, LEADS.into(), None, lead_body(9), lead_body(8)),
        (Method::PATCH, format!("{LEADS}/{id}"), Some("\"1\""), json!({"company": "Acme 2"}), json!({"company": "B"})),
        (
            Method::POST,
            format!("{LEADS}/{id}/transitions"),
            Some("\"2\""),
            json!({"to": "contacted"}),
            json!({"to": "contacted", "reason": "x"}),
        ),
        (Method::POST, format!("{LEADS}:import"), None, import, json!({"leads": [lead_body(3)]})),
    ];
    for (i, (method, path, if_match, body, other)) in mutations.into_iter().enumerate() {
        let key = format!("mutation-{i}");
        let before = events(&pool, org).await.len();
        let (status, headers, first) =
            send(&app, method.clone(), &path, &user, &key, if_match, Some(body.clone())).await;
        assert!(status == 200 || status == 201, "{path}: {status} {first}");
        assert!(headers.get("idempotent-replayed").is_none());
        let appended = events(&pool, org).await.len();
        assert!(appended > before, "{path} appended its events");
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
    assert_eq!(count_leads(&pool, org).await, 4, "one created, one more created, two imported");

    // A key whose first request is still in flight: its lock is held.
    let mut holder = pool.acquire().await.expect("conn");
    sqlx::query("SELECT pg_advisory_lock(xentri_lock_class('idempotency'), hashtext($1 || ':' || 'busy'))")
        .bind(org.to_string())
        .execute(&mut *holder)
        .await
        .expect("lock");
    let (status, _, problem) = send(&app, Method::POST, LEADS, &user, "busy", None, Some(lead_body(5))).await;
    assert_eq!((status, &problem["type"]), (409, &json!("https://xentri.io/errors/idempotency-key-in-flight")));
    sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *holder).await.expect("unlock");
    assert_eq!(send(&app, Method::POST, LEADS, &user, "busy", None, Some(lead_body(5))).await.0, 201);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn updates_require_the_current_version(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let lead = create(&app, &user, 0).await;
    let path = format!("{LEADS}/{}", lead["id"].as_str().expect("id"));
    let patch = |if_match: Option<&'static str>| {
        let (app, user, path) = (&app, &user, &path);
        async move {
            send(app, Method::PATCH, path, user, &key(), if_match, Some(json!({"email": "new@example.com"}))).await
        }
    };
    let (status, _, problem) = patch(None).await;
    assert_eq!((status, &problem["type"]), (428, &json!("https://xentri.io/errors/precondition-required")));
    let (status, _, problem) = patch(Some("\"7\"")).await;
    assert_eq!((status, &problem["type"]), (412, &json!("https://xentri.io/errors/precondition-failed")));
    let (status, headers, body) = patch(Some("\"1\"")).await;
    assert_eq!((status, &body["email"], &body["company"]), (200, &json!("new@example.com"), &json!("Acme")), "{body}");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(patch(Some("\"1\"")).await.0, 412, "the lead moved on");
    let clear = send(&app, Method::PATCH, &path, &user, &key(), Some("\"2\""), Some(json!({"company": null}))).await;
    assert_eq!((clear.0, &clear.2["company"]), (200, &Value::Null));
    let (status, _, _) =
        send(&app, Method::POST, &format!("{path}/transitions"), &user, &key(), None, Some(json!({"to": "contacted"})))
            .await;
    assert_eq!(status, 428, "transitions are updates too");
    let updated: Vec<(String, String)> = events(&pool, org).await;
    assert_eq!(updated.iter().filter(|(t, _)| t == "xentri.lead.updated.v1").count(), 2);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn every_allowed_and_every_forbidden_transition_over_http(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let lead = create(&app, &user, 0).await;
    for from in STATUSES {
        for to in STATUSES {
            let version = force_status(&pool, &lead["id"], from).await;
            let before = events(&pool, org).await.len();
            let (status, headers, body) = transition(&app, &user, &lead["id"], version, to).await;
            let appended: Vec<String> = events(&pool, org).await.into_iter().skip(before).map(|(t, _)| t).collect();
            if ALLOWED.contains(&(from, to)) {
                assert_eq!(status, 200, "{from} → {to}: {body}");
                assert_eq!((&body["status"], &body["version"]), (&json!(to), &json!(version + 1)));
                assert_eq!(headers["etag"], format!("\"{}\"", version + 1));
                let mut expected = vec!["xentri.lead.updated.v1"];
                expected.extend(match to {
                    "won" => Some("xentri.deal.won.v1"),
                    "lost" => Some("xentri.deal.lost.v1"),
                    "disqualified" => Some("xentri.lead.disqualified.v1"),
                    _ => None,
                });
                assert_eq!(appended, expected, "{from} → {to}");
            } else {
                assert_eq!(status, 409, "{from} → {to}: {body}");
                assert_eq!(body["type"], "https://xentri.io/errors/invalid-transition");
                assert_eq!(body["state"], from);
                let expected: Vec<&str> = ALLOWED.iter().filter(|(f, _)| *f == from).map(|(_, t)| *t).collect();
                assert_eq!(body["allowed_transitions"], json!(expected), "{from}");
                assert!(appended.is_empty(), "{from} → {to} appended {appended:?}");
            }
        }
    }
    let all = events(&pool, org).await;
    assert!(all.iter().all(|(_, correlation)| correlation == FLOW), "one correlation id: {all:?}");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn imports_are_all_or_nothing(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let import = format!("{LEADS}:import");
    let mut rows: Vec<Value> = (0..1000).map(lead_body).collect();
    rows[3]["email"] = json!("broken");
    rows[17]["source"] = json!("carrier-pigeon");
    rows[999] = json!({"name": "", "email": "z@example.com", "source": "import", "extra": 1});
    let (status, _, problem) =
        send(&app, Method::POST, &import, &user, &key(), None, Some(json!({"leads": rows}))).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem_fields(&problem), ["/leads/3/email", "/leads/17/source", "/leads/999/extra", "/leads/999/name"]);
    assert_eq!((count_leads(&pool, org).await, events(&pool, org).await.len()), (0, 0), "nothing stored");

    let too_many: Vec<Value> = (0..1001).map(lead_body).collect();
    let (status, _, problem) =
        send(&app, Method::POST, &import, &user, &key(), None, Some(json!({"leads": too_many}))).await;
    assert_eq!((status, problem_fields(&problem)), (422, vec!["/leads"]), "{problem}");
    assert!(problem["errors"][0]["message"].as_str().is_some_and(|m| m.contains("at most 1000")), "{problem}");

    let rows: Vec<Value> = (0..1000).map(lead_body).collect();
    let (status, _, answer) =
        send(&app, Method::POST, &import, &user, &key(), None, Some(json!({"leads": rows}))).await;
    assert_eq!((status, &answer["count"]), (201, &json!(1000)));
    assert_eq!(answer["data"][999]["email"], "lead999@example.com", "in the order given");
    assert_eq!(count_leads(&pool, org).await, 1000);
    let appended = events(&pool, org).await;
    assert_eq!(appended.len(), 1000);
    assert!(appended.iter().all(|(t, c)| t == "xentri.lead.created.v1" && c == FLOW));
    // The largest import fits its own limit (api.bulk_body_limit_bytes), past the general one.
    let long: Vec<Value> = (0..1000)
        .map(|i| json!({"name": "😀".repeat(200), "email": format!("{}{i}@example.com", "a".repeat(50)), "company": "😀".repeat(200), "source": "import"}))
        .collect();
    let body = serde_json::to_vec(&json!({"leads": long})).expect("json");
    assert!(body.len() > 1_048_576, "over the general limit: {}", body.len());
    let response = app
        .client
        .post(app.url(&import))
        .bearer_auth(&user)
        .header("idempotency-key", key())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn leads_are_isolated_by_row_level_security(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let (org_a, org_b) = (Uuid::new_v4(), Uuid::new_v4());
    let a = create(&app, &user_token(org_a), 1).await;
    let b = create(&app, &user_token(org_b), 2).await;
    let db = Db::new(pool.clone(), "xentri_api");
    let mut tx = db.begin(org_a).await.expect("begin");
    let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT org_id FROM leads").fetch_all(&mut *tx).await.expect("select");
    assert_eq!(orgs, [org_a], "no org filter in the query, only org A's row");
    let changed = sqlx::query("UPDATE leads SET status = 'won' WHERE org_id = $1")
        .bind(org_b)
        .execute(&mut *tx)
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(changed, 0, "another org's row cannot be changed");
    drop(tx);
    let mut tx = db.begin(org_a).await.expect("begin");
    assert!(sqlx::query("DELETE FROM leads").execute(&mut *tx).await.is_err(), "the api may not delete a lead");
    drop(tx);

    let user_a = user_token(org_a);
    let b_id = b["id"].as_str().expect("id");
    for path in [format!("{LEADS}/{b_id}"), format!("{LEADS}/not-a-uuid"), format!("{LEADS}/{}", Uuid::now_v7())] {
        let (status, _, problem) = crate::helpers::json(app.get_as(&user_a, &path).await).await;
        assert_eq!((status, &problem["type"]), (404, &json!("https://xentri.io/errors/not-found")), "{path}");
    }
    let (status, _, _) = transition(&app, &user_a, &b["id"], 1, "contacted").await;
    assert_eq!(status, 404, "another org's lead cannot be moved");
    let (_, _, page) = crate::helpers::json(app.get_as(&user_a, LEADS).await).await;
    assert_eq!(
        page["data"].as_array().map(|d| d.iter().map(|l| l["id"].clone()).collect::<Vec<_>>()),
        Some(vec![a["id"].clone()])
    );
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_first_page_is_cached(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, prefix) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    create(&app, &user, 0).await;
    let key = format!("{prefix}leads:list:{org}");
    let mut redis = redis_connection().await;
    let exists = |redis: &mut redis::aio::MultiplexedConnection| {
        let key = key.clone();
        let mut redis = redis.clone();
        async move { redis::cmd("EXISTS").arg(&key).query_async::<bool>(&mut redis).await.expect("EXISTS") }
    };
    assert!(!exists(&mut redis).await, "a change does not fill the list's cache");
    for filtered in [format!("{LEADS}?status=new"), format!("{LEADS}?limit=10")] {
        assert_eq!(app.get_as(&user, &filtered).await.status(), 200);
        assert!(!exists(&mut redis).await, "{filtered} is not the cached page");
    }
    let (status, _, page) = crate::helpers::json(app.get_as(&user, LEADS).await).await;
    assert_eq!((status, page["data"].as_array().map(Vec::len)), (200, Some(1)));
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut redis).await.expect("PTTL");
    assert!(ttl > 0 && ttl <= 60_000, "the first page is cached with the configured TTL: {ttl}");
    // A cached page is served as cached (the worker, not the api, drops it on a change).
    redis::cmd("SET").arg(&key).arg(r#"{"cached":true}"#).query_async::<()>(&mut redis).await.expect("SET");
    let (_, _, page) = crate::helpers::json(app.get_as(&user, LEADS).await).await;
    assert_eq!(page, json!({"cached": true}));
    app.stop().await;

    let (app, prefix) = spawn_prefixed(&options, FLOW, &[("XENTRI_CACHE__ENABLED", "false")]).await;
    assert_eq!(app.get_as(&user, LEADS).await.status(), 200);
    let off: bool =
        redis::cmd("EXISTS").arg(format!("{prefix}leads:list:{org}")).query_async(&mut redis).await.expect("EXISTS");
    assert!(!off, "with the cache off nothing is cached");
    redis::cmd("DEL").arg(&key).query_async::<()>(&mut redis).await.expect("DEL");
    app.stop().await;
}

/// A read that loaded the first page before a change must not put it back
/// after the worker deleted the key: the worker raises the key's generation
/// with the delete, and a page read under an older generation is not stored.
#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_page_read_before_a_change_is_not_stored_after_it(pool: PgPool) {
    use xentri_api::leads::cache::{self, Cached};

    let options = pool.connect_options().as_ref().clone();
    let (app, prefix) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let key = format!("{prefix}leads:list:{org}");
    let generation = xentri_core::cache_keys::generation(&key);
    let mut redis = redis_connection().await;
    let Cached::Miss(seen) = cache::read(&app.state, org).await else { panic!("an empty cache is a miss") };
    assert_eq!(seen, None, "no change yet: no generation");
    // The worker's invalidation of a change, between the read and its store.
    redis::pipe().incr(&generation, 1).del(&key).query_async::<()>(&mut redis).await.expect("INCR, DEL");
    cache::store(&app.state, org, seen, r#"{"stale":true}"#).await;
    let stored: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut redis).await.expect("GET");
    assert_eq!(stored, None, "a page read before the change is not stored");

    let Cached::Miss(seen) = cache::read(&app.state, org).await else { panic!("still a miss") };
    assert_eq!(seen, Some(1));
    cache::store(&app.state, org, seen, r#"{"fresh":true}"#).await;
    let Cached::Hit(body) = cache::read(&app.state, org).await else {
        panic!("a page read after the change is stored")
    };
    assert_eq!(body, r#"{"fresh":true}"#);
    redis::pipe().del(&key).del(&generation).query_async::<()>(&mut redis).await.expect("DEL");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn concurrent_changes_from_one_version_make_one_change(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let (app, _) = spawn_prefixed(&options, FLOW, &[]).await;
    let org = Uuid::new_v4();
    let user = user_token(org);
    let lead = create(&app, &user, 0).await;
    let path = format!("{LEADS}/{}", lead["id"].as_str().expect("id"));
    let patches = (0..8).map(|i| {
        let (app, user, path) = (&app, &user, &path);
        async move {
            let body = Some(json!({"company": format!("take {i}")}));
            send(app, Method::PATCH, path, user, &key(), Some("\"1\""), body).await.0
        }
    });
    let mut statuses = futures_util::future::join_all(patches).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412, 412, 412]);
    let updated = events(&pool, org).await.into_iter().filter(|(t, _)| t == "xentri.lead.updated.v1").count();
    assert_eq!(updated, 1);
    app.stop().await;
}
