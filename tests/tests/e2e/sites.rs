//! Sites end to end, the api and the worker in one process on a fresh
//! database and Redis prefix: a site published over HTTP and built by the
//! worker's `site_builds` group to `live`, its events listed in order under
//! one correlation id, its cached read filled by the api and invalidated by
//! the worker, its HTML served with every user string escaped; and a build
//! that keeps failing, dead-lettered to `jobs:dlq` (the site `failed`), then
//! replayed with `dlq-tool replay` and live; and pages the build cannot render,
//! which fail the site at once with the reason.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use xentri_e2e::stack::{Flow, Stack, WITHIN};
use xentri_e2e::{binary, eventually, redis_url, workspace};

/// The dev secret of `config/test.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// The trace every request of the flow continues.
const TRACE_ID: &str = "5e1f0c6a9b2d4c7e8f0a1b2c3d4e5f60";
const SITES: &str = "/api/v1/marketing/sites";

/// A site whose home page carries a script in each kind of user string.
fn new_site() -> Value {
    json!({"name": "Acme <Bakery>", "pages": [
        {"slug": "home", "title": "Home", "blocks": [
            {"type": "heading", "text": "Fresh bread", "level": 1},
            {"type": "text", "text": "<script>alert('pwned')</script>"},
            {"type": "image", "src": "https://example.com/bread.png?a=1&b=\"2\"", "alt": "\"><script>x()</script>"},
            {"type": "link", "href": "/about", "text": "About <us>"},
        ]},
        {"slug": "about", "title": "About", "blocks": [{"type": "text", "text": "Since 1901."}]},
    ]})
}

/// Creates the site and moves it to `publishing`; returns its id.
async fn publish(stack: &Stack, flow: Flow, user: &str) -> String {
    let post = reqwest::Method::POST;
    let (status, etag, site) = stack.send(flow, post.clone(), SITES, user, None, Some(new_site())).await;
    assert_eq!((status, etag.as_deref()), (201, Some("\"1\"")), "{site}");
    let id = site["id"].as_str().expect("id").to_owned();
    let transitions = format!("{SITES}/{id}/transitions");
    for (tag, to) in [("\"1\"", "preview"), ("\"2\"", "publishing")] {
        let body = Some(json!({"to": to}));
        let (status, _, answer) = stack.send(flow, post.clone(), &transitions, user, Some(tag), body).await;
        assert_eq!((status, &answer["state"]), (200, &json!(to)), "{answer}");
    }
    id
}

/// The site as read now.
async fn read(stack: &Stack, flow: Flow, user: &str, id: &str) -> Value {
    let (status, _, site) = stack.send(flow, reqwest::Method::GET, &format!("{SITES}/{id}"), user, None, None).await;
    assert_eq!(status, 200, "{site}");
    site
}

/// Waits until site `id` is in `state` in PostgreSQL (read as the owner).
async fn state_becomes(pool: &PgPool, id: &str, state: &str) {
    let id: Uuid = id.parse().expect("uuid");
    eventually(WITHIN, &format!("the site to be {state}"), || async move {
        let now: String = sqlx::query_scalar("SELECT state FROM sites WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .map_err(|e| e.to_string())?;
        if now == state { Ok(()) } else { Err(format!("the site is {now}")) }
    })
    .await;
}

/// The flow's events, once there are `count` of them; each (the api's and
/// the build's alike) valid against its contract (`schemas/`).
async fn flow_events(stack: &Stack, flow: Flow, user: &str, count: usize) -> Vec<Value> {
    let path = format!("/api/v1/events?correlation_id={}", flow.correlation_id);
    let events = eventually(WITHIN, "every event of the flow to be listed", || async {
        let (status, _, page) = stack.send(flow, reqwest::Method::GET, &path, user, None, None).await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if status == 200 && data.len() == count { Ok(data) } else { Err(format!("{status}: {page}")) }
    })
    .await;
    let contracts = xentri_core::contracts::Contracts::load().expect("the embedded contracts compile");
    for event in &events {
        assert_eq!(contracts.envelope().validate(event), Ok(()), "the envelope of {event}");
        let event_type = event["type"].as_str().expect("a type");
        let schema =
            contracts.event(event_type).unwrap_or_else(|| panic!("{event_type} is emitted without a contract"));
        assert_eq!(schema.validate(&event["payload"]), Ok(()), "the payload of {event}");
    }
    events
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_site_is_built_live_with_its_events_in_order_and_its_html_escaped(pool: PgPool) {
    let stack = Stack::start(&pool, |settings| settings, Vec::new()).await;
    let flow = Flow { trace_id: TRACE_ID, correlation_id: "site-flow-1" };
    let org = Uuid::now_v7();
    let user = xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_1", Duration::from_secs(600)).expect("mint");

    let (status, _, site) = stack.send(flow, reqwest::Method::POST, SITES, &user, None, Some(new_site())).await;
    assert_eq!(status, 201, "{site}");
    let id = site["id"].as_str().expect("id").to_owned();
    let key = stack.key(&xentri_core::cache_keys::site(org, &id));
    redis::cmd("DEL").arg(&key).query_async::<()>(&mut stack.redis.clone()).await.expect("DEL");
    assert_eq!(read(&stack, flow, &user, &id).await, site);
    assert!(stack.cached(&key).await, "the read filled the cache");

    // Through preview to publishing; the worker's build makes it live and
    // its published event drops the cached read.
    let transitions = format!("{SITES}/{id}/transitions");
    for (tag, to) in [("\"1\"", "preview"), ("\"2\"", "publishing")] {
        let body = Some(json!({"to": to, "reason": format!("to {to}")}));
        let (status, _, answer) = stack.send(flow, reqwest::Method::POST, &transitions, &user, Some(tag), body).await;
        assert_eq!((status, &answer["state"]), (200, &json!(to)), "{answer}");
    }
    stack.await_removal(&key, "xentri.website.published.v1").await;
    let live = read(&stack, flow, &user, &id).await;
    assert_eq!((&live["state"], &live["version"], &live["published_version"]), (&json!("live"), &json!(4), &json!(4)));
    assert!(stack.cached(&key).await, "read again from PostgreSQL and cached");

    // The published HTML: every user string escaped, no script anywhere.
    let response = stack
        .client
        .get(stack.url(&format!("{SITES}/{id}/html/home")))
        .bearer_auth(&user)
        .send()
        .await
        .expect("the api answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let html = response.text().await.expect("html");
    assert!(!html.contains("<script"), "{html}");
    for escaped in [
        "<title>Home · Acme &lt;Bakery&gt;</title>",
        "<h1>Fresh bread</h1>",
        "<p>&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;</p>",
        "<img src=\"https://example.com/bread.png?a=1&amp;b=&quot;2&quot;\" alt=\"&quot;&gt;&lt;script&gt;x()&lt;/script&gt;\">",
        "<a href=\"/about\" rel=\"noopener noreferrer\">About &lt;us&gt;</a>",
    ] {
        assert!(html.contains(escaped), "expected {escaped} in\n{html}");
    }
    let about = stack.client.get(stack.url(&format!("{SITES}/{id}/html/about"))).bearer_auth(&user).send().await;
    assert_eq!(about.expect("the api answers").status(), 200, "every page is published");

    let expected = [
        "xentri.website.created.v1",
        "xentri.website.updated.v1",
        "xentri.website.updated.v1",
        "xentri.website.build_requested.v1",
        "xentri.website.published.v1",
    ];
    let events = flow_events(&stack, flow, &user, expected.len()).await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, expected, "in order");
    assert!(events.iter().all(|e| e["correlation_id"] == flow.correlation_id && e["trace_id"] == TRACE_ID));
    assert!(events.iter().all(|e| e["payload"]["site_id"] == json!(id)), "{events:?}");
    let job = &events[3];
    assert_eq!(events[4]["causation_id"], job["id"], "the build's event is caused by its job");
    assert_eq!(events[4]["payload"]["build_job_id"], job["id"]);
    assert_eq!(events[4]["payload"]["pages"], json!(["home", "about"]));
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // An edit of the live site takes it back to draft; what is published stays served.
    let (status, _, edited) = stack
        .send(
            flow,
            reqwest::Method::PATCH,
            &format!("{SITES}/{id}"),
            &user,
            Some("\"4\""),
            Some(json!({"name": "Acme"})),
        )
        .await;
    assert_eq!((status, &edited["state"]), (200, &json!("draft")), "{edited}");
    let still = stack.client.get(stack.url(&format!("{SITES}/{id}/html/home"))).bearer_auth(&user).send().await;
    assert_eq!(still.expect("the api answers").status(), 200);
    stack.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_build_that_keeps_failing_is_dead_lettered_then_replayed_live(pool: PgPool) {
    let failing = [("XENTRI_WORKER__TEST_FAILING_SITE_BUILDS", "3"), ("XENTRI_WORKER__RETRY__BASE_MS", "20")];
    let stack = Stack::start(&pool, |settings| settings.vars(&failing), Vec::new()).await;
    let flow = Flow { trace_id: TRACE_ID, correlation_id: "site-flow-2" };
    let org = Uuid::now_v7();
    let user = xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_1", Duration::from_secs(600)).expect("mint");
    let id = publish(&stack, flow, &user).await;

    // Three transient failures: the job is dead-lettered and the site failed.
    let dlq = stack.key("jobs:dlq");
    let dead: (String, String) = eventually(WITHIN, "the build job in jobs:dlq", || {
        let mut redis = stack.redis.clone();
        let dlq = dlq.clone();
        async move {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&dlq)
                .arg("-")
                .arg("+")
                .query_async(&mut redis)
                .await
                .map_err(|e| e.to_string())?;
            let entry = reply.ids.first().ok_or_else(|| "the DLQ is empty".to_owned())?;
            let attempts: String = entry.get("dlq_attempts").ok_or("no dlq_attempts")?;
            Ok((entry.id.clone(), attempts))
        }
    })
    .await;
    assert_eq!(dead.1, "3", "dead-lettered after three failures");
    // The read is awaited in PostgreSQL, not through the cache: a read racing
    // the invalidation could put the old version back for the TTL.
    let key = stack.key(&xentri_core::cache_keys::site(org, &id));
    state_becomes(&pool, &id, "failed").await;
    stack.await_removal(&key, "xentri.website.build_failed.v1").await;
    let failed = read(&stack, flow, &user, &id).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let reason = failed["failure_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("failed 3 times") && reason.contains("injected build failure"), "{reason}");
    let html = format!("{SITES}/{id}/html/home");
    let none = stack.client.get(stack.url(&html)).bearer_auth(&user).send().await.expect("the api answers");
    assert_eq!(none.status(), 404, "nothing is published");

    // dlq-tool replays the job once; the build runs again and the site goes live.
    let output = tokio::process::Command::new(binary("dlq-tool"))
        .current_dir(workspace())
        .env("XENTRI_ENV", "test")
        .env("REDIS_URL", redis_url())
        .env("XENTRI_REDIS__KEY_PREFIX", &stack.prefix)
        .args(["replay", "jobs:dlq", &dead.0])
        .output()
        .await
        .expect("dlq-tool runs");
    assert!(output.status.success(), "dlq-tool replay: {}", String::from_utf8_lossy(&output.stderr));
    state_becomes(&pool, &id, "live").await;
    stack.await_removal(&key, "xentri.website.published.v1").await;
    let live = read(&stack, flow, &user, &id).await;
    assert_eq!(live["state"], "live", "{live}");
    assert_eq!(live["failure_reason"], Value::Null);
    let served = stack.client.get(stack.url(&html)).bearer_auth(&user).send().await.expect("the api answers");
    assert_eq!(served.status(), 200);
    let len: usize = redis::cmd("XLEN").arg(&dlq).query_async(&mut stack.redis.clone()).await.expect("XLEN");
    assert_eq!(len, 0, "the DLQ is empty after the replay");

    let expected = [
        "xentri.website.created.v1",
        "xentri.website.updated.v1",
        "xentri.website.updated.v1",
        "xentri.website.build_requested.v1",
        "xentri.website.build_failed.v1",
        "xentri.website.published.v1",
    ];
    let events = flow_events(&stack, flow, &user, expected.len()).await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, expected, "one failure, one publication: the replay ran the build once");
    assert_eq!(events[4]["payload"]["dead_lettered"], true);
    assert_eq!(events[5]["payload"]["from"], "failed", "the replayed build took failed → live");
    stack.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_page_the_build_cannot_render_fails_the_site_with_its_reason(pool: PgPool) {
    let stack = Stack::start(&pool, |settings| settings, Vec::new()).await;
    let flow = Flow { trace_id: TRACE_ID, correlation_id: "site-flow-3" };
    let org = Uuid::now_v7();
    let user = xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_1", Duration::from_secs(600)).expect("mint");
    let post = reqwest::Method::POST;
    let (status, _, site) = stack.send(flow, post.clone(), SITES, &user, None, Some(new_site())).await;
    assert_eq!(status, 201, "{site}");
    let id = site["id"].as_str().expect("id").to_owned();
    // Pages written before a rule existed (the api refuses them now): the
    // build checks them again.
    let uuid: Uuid = id.parse().expect("uuid");
    sqlx::query(
        "UPDATE sites SET pages = jsonb_set(pages, '{0,blocks,2,src}', '\"javascript:alert(1)\"') WHERE id = $1",
    )
    .bind(uuid)
    .execute(&pool)
    .await
    .expect("stored pages");
    let transitions = format!("{SITES}/{id}/transitions");
    for (tag, to) in [("\"1\"", "preview"), ("\"2\"", "publishing")] {
        let (status, _, answer) =
            stack.send(flow, post.clone(), &transitions, &user, Some(tag), Some(json!({"to": to}))).await;
        assert_eq!(status, 200, "{answer}");
    }
    state_becomes(&pool, &id, "failed").await;
    let key = stack.key(&xentri_core::cache_keys::site(org, &id));
    stack.await_removal(&key, "xentri.website.build_failed.v1").await;
    let failed = read(&stack, flow, &user, &id).await;
    let reason = failed["failure_reason"].as_str().unwrap_or_default();
    assert_eq!(
        reason,
        "the pages cannot be rendered: /pages/0/blocks/2/src: must be an http(s):// URL or a path from /"
    );
    let dlq: usize =
        redis::cmd("XLEN").arg(stack.key("jobs:dlq")).query_async(&mut stack.redis.clone()).await.expect("XLEN");
    assert_eq!(dlq, 0, "content no retry can fix is not dead-lettered");
    let expected = [
        "xentri.website.created.v1",
        "xentri.website.updated.v1",
        "xentri.website.updated.v1",
        "xentri.website.build_requested.v1",
        "xentri.website.build_failed.v1",
    ];
    let events = flow_events(&stack, flow, &user, expected.len()).await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, expected);
    assert_eq!(
        (&events[4]["payload"]["reason"], &events[4]["payload"]["dead_lettered"]),
        (&json!(reason), &json!(false))
    );
    // The user takes it back to draft to fix it.
    let (status, _, answer) =
        stack.send(flow, post, &transitions, &user, Some("\"4\""), Some(json!({"to": "draft"}))).await;
    assert_eq!((status, &answer["state"], &answer["failure_reason"]), (200, &json!("draft"), &Value::Null), "{answer}");
    stack.stop().await;
}
