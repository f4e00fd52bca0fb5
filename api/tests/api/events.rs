//! Appending, fetching and listing events through the HTTP surface.

use std::collections::HashSet;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{
    TestApp, database_url, event_body, json, seed_events, settings, spawn_app, spawn_with, user_token, wait_listable,
};

async fn spawn(pool: &PgPool) -> TestApp {
    let options = pool.connect_options();
    spawn_with(settings(&database_url(&options), &[])).await
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn append_returns_the_stored_envelope_and_writes_the_outbox(pool: PgPool) {
    let app = spawn(&pool).await;
    let org = Uuid::new_v4();
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(user_token(org))
        .header("idempotency-key", "a-1")
        .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .json(&serde_json::json!({
            "type": "xentri.finance.invoice.created.v1",
            "payload": {"amount": 42, "currency": "EUR"},
            "correlation_id": "order-42",
            "causation_id": "cmd-7",
        }))
        .send()
        .await
        .expect("sent");
    let (status, headers, body) = json(response).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let id: Uuid = body["id"].as_str().and_then(|s| s.parse().ok()).expect("uuid id");
    assert_eq!(id.get_version_num(), 7);
    assert!(body["seq"].as_i64().is_some_and(|s| s > 0));
    assert_eq!(body["org_id"], org.to_string());
    assert_eq!(body["type"], "xentri.finance.invoice.created.v1");
    assert_eq!(body["payload"], serde_json::json!({"amount": 42, "currency": "EUR"}));
    assert_eq!(body["actor"], "user:user_test");
    assert_eq!(body["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(body["correlation_id"], "order-42");
    assert_eq!(body["causation_id"], "cmd-7");
    assert!(body["occurred_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    // The outbox row was written with the event.
    let outbox: Vec<(i64, String, Uuid)> =
        sqlx::query_as("SELECT event_seq, stream, org_id FROM outbox").fetch_all(&pool).await.expect("outbox");
    assert_eq!(outbox, vec![(body["seq"].as_i64().unwrap_or_default(), "events:work".to_owned(), org)]);

    // A read returns exactly what the append answered.
    let (status, _, fetched) = json(app.get_as(&user_token(org), &format!("/api/v1/events/{id}")).await).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, body);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn reads_answer_the_payload_byte_for_byte_as_the_append_did(pool: PgPool) {
    let app = spawn(&pool).await;
    let org = Uuid::new_v4();
    let token = user_token(org);
    // Key order that a jsonb column would have changed (shorter keys first).
    let body = serde_json::json!({"type": "xentri.soul.updated.v1", "payload": {"zz": 1, "aaa": [1.5, "é", null]}});
    let appended = app.post_event(&token, "bytes-1", body).await;
    assert_eq!(appended.status(), 201);
    let appended = appended.text().await.expect("body");
    assert!(appended.contains(r#""payload":{"aaa":[1.5,"é",null],"zz":1}"#), "{appended}");
    let envelope: serde_json::Value = serde_json::from_str(&appended).expect("json");
    let (id, seq) = (envelope["id"].as_str().expect("id"), envelope["seq"].as_i64().expect("seq"));

    let fetched = app.get_as(&token, &format!("/api/v1/events/{id}")).await.text().await.expect("body");
    assert_eq!(fetched, appended);
    wait_listable(&app, &token, seq).await;
    let page = app.get_as(&token, "/api/v1/events").await.text().await.expect("body");
    assert!(page.contains(&appended), "{page}");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn correlation_id_is_generated_when_absent(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let (status, _, body) =
        json(app.post_event(&user_token(Uuid::new_v4()), "g-1", event_body("xentri.soul.updated.v1")).await).await;
    assert_eq!(status, 201);
    assert!(body["correlation_id"].as_str().and_then(|c| c.parse::<Uuid>().ok()).is_some(), "{body}");
    assert_eq!(body["causation_id"], serde_json::Value::Null);
    assert_eq!(body["trace_id"].as_str().map(str::len), Some(32));
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn orgs_cannot_see_each_others_events(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let (org_a, org_b) = (Uuid::new_v4(), Uuid::new_v4());
    let (_, _, event) =
        json(app.post_event(&user_token(org_a), "iso-1", event_body("xentri.soul.updated.v1")).await).await;
    let id = event["id"].as_str().expect("id").to_owned();
    wait_listable(&app, &user_token(org_a), event["seq"].as_i64().expect("seq")).await;

    let (_, _, page) = json(app.get_as(&user_token(org_b), "/api/v1/events").await).await;
    assert_eq!(page["data"], serde_json::json!([]));

    let (status, _, missing_for_b) = json(app.get_as(&user_token(org_b), &format!("/api/v1/events/{id}")).await).await;
    assert_eq!(status, 404);
    let (status, _, truly_missing) =
        json(app.get_as(&user_token(org_b), &format!("/api/v1/events/{}", Uuid::now_v7())).await).await;
    assert_eq!(status, 404);
    assert_eq!(missing_for_b["type"], truly_missing["type"]);
    assert_eq!(missing_for_b["detail"], format!("Event {id} not found"));

    let (_, _, page) = json(app.get_as(&user_token(org_a), "/api/v1/events").await).await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn paging_returns_each_event_once_in_seq_order(pool: PgPool) {
    let app = spawn(&pool).await;
    let org = Uuid::new_v4();
    let mut seeded = seed_events(&pool, org, 2500, &["xentri.soul.updated.v1"]).await;
    seeded.sort_unstable();
    seed_events(&pool, Uuid::new_v4(), 100, &["xentri.soul.updated.v1"]).await;
    let token = user_token(org);
    wait_listable(&app, &token, seeded[seeded.len() - 1]).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(after) => format!("/api/v1/events?limit=300&after={after}"),
            None => "/api/v1/events?limit=300".to_owned(),
        };
        let (status, _, page) = json(app.get_as(&token, &path).await).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let data = page["data"].as_array().expect("data");
        seen.extend(data.iter().map(|e| e["seq"].as_i64().expect("seq")));
        if !page["has_more"].as_bool().expect("has_more") {
            break;
        }
        cursor = page["next"].as_str().map(str::to_owned);
        assert!(pages < 20, "paging does not end");
    }
    assert_eq!(pages, 9);
    assert_eq!(seen, seeded, "every event once, in seq order");

    let (_, _, default_page) = json(app.get_as(&token, "/api/v1/events").await).await;
    assert_eq!(default_page["data"].as_array().map(Vec::len), Some(50));
    assert_eq!(default_page["next"], seeded[49].to_string());
    app.stop().await;
}

async fn fetch_all(app: &TestApp, token: &str, query: String) -> Vec<serde_json::Value> {
    let (status, _, page) = json(app.get_as(token, &format!("/api/v1/events?limit=1000&{query}")).await).await;
    assert_eq!(status, 200, "{query}: {page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn filters_combine(pool: PgPool) {
    let app = spawn(&pool).await;
    let org = Uuid::new_v4();
    let types =
        ["xentri.soul.updated.v1", "xentri.lead.created.v1", "xentri.lead.updated.v1", "xentri.leadership.x.v1"];
    let seeded = seed_events(&pool, org, 280, &types).await;
    let token = user_token(org);
    wait_listable(&app, &token, seeded.iter().copied().max().unwrap_or_default()).await;
    let fetch = |query: &str| fetch_all(&app, &token, query.to_owned());

    let exact = fetch("type=xentri.lead.created.v1").await;
    assert_eq!(exact.len(), 70);
    assert!(exact.iter().all(|e| e["type"] == "xentri.lead.created.v1"));

    // The prefix is a whole segment: `xentri.lead.*` does not match `xentri.leadership…`.
    let prefix = fetch("type=xentri.lead.*").await;
    assert_eq!(prefix.len(), 140);
    let kinds: HashSet<&str> = prefix.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds, HashSet::from(["xentri.lead.created.v1", "xentri.lead.updated.v1"]));

    let combined = fetch("type=xentri.lead.*&correlation_id=corr-3").await;
    assert!(!combined.is_empty());
    assert!(
        combined
            .iter()
            .all(|e| e["correlation_id"] == "corr-3"
                && e["type"].as_str().is_some_and(|t| t.starts_with("xentri.lead.")))
    );
    assert_eq!(combined.len(), prefix.iter().filter(|e| e["correlation_id"] == "corr-3").count());

    // Seeded events occurred one second apart, the last one now.
    let all = fetch("").await;
    let since = all[100]["occurred_at"].as_str().expect("time").to_owned();
    let until = all[200]["occurred_at"].as_str().expect("time").to_owned();
    let window = fetch(&format!("since={since}&until={until}")).await;
    assert_eq!(window.len(), 100);
    assert_eq!(window[0]["seq"], all[100]["seq"]);
    let window_typed = fetch(&format!("since={since}&until={until}&type=xentri.soul.updated.v1")).await;
    assert_eq!(window_typed.len(), 25);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn tailing_never_skips_a_late_commit(pool: PgPool) {
    let app = spawn(&pool).await;
    let org = Uuid::new_v4();
    let token = user_token(org);

    // A writer takes a lower seq and stays open. It skips the append lock
    // (triggers off for its session), as a writer outside the api could: the
    // read side must hold on its own.
    let mut slow = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *slow).await.expect("no triggers");
    let slow_seq: i64 = sqlx::query_scalar(
        "INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
         VALUES (gen_random_uuid(), $1, 'xentri.soul.updated.v1', '{}', 'user:slow', 't', 'c', now()) RETURNING seq",
    )
    .bind(org)
    .fetch_one(&mut *slow)
    .await
    .expect("slow insert");

    // A later writer (higher seq) commits first.
    let (status, _, fast) = json(app.post_event(&token, "tail-1", event_body("xentri.soul.updated.v1")).await).await;
    assert_eq!(status, 201);
    let fast_seq = fast["seq"].as_i64().expect("seq");
    assert!(fast_seq > slow_seq);

    // A read now must not hand out a cursor past the open lower seq.
    let (_, _, first) = json(app.get_as(&token, "/api/v1/events").await).await;
    let first_seqs: Vec<i64> =
        first["data"].as_array().expect("data").iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(first_seqs.is_empty(), "exposed {first_seqs:?} while seq {slow_seq} is uncommitted");

    slow.commit().await.expect("commit");

    // Keep polling with the last cursor, as a tailing client does.
    let mut cursor = first["next"].as_str().map(str::to_owned);
    let mut tailed = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !tailed.contains(&fast_seq) {
        assert!(std::time::Instant::now() < deadline, "tailing never reached {fast_seq}; got {tailed:?}");
        let path = match &cursor {
            Some(after) => format!("/api/v1/events?after={after}"),
            None => "/api/v1/events".to_owned(),
        };
        let (_, _, page) = json(app.get_as(&token, &path).await).await;
        tailed.extend(page["data"].as_array().expect("data").iter().filter_map(|e| e["seq"].as_i64()));
        cursor = page["next"].as_str().map(str::to_owned).or(cursor);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(tailed, vec![slow_seq, fast_seq], "the late commit is still delivered, in seq order");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_append_takes_its_seq_only_after_the_appender_before_it_committed(pool: PgPool) {
    let app = spawn(&pool).await;
    let org = Uuid::new_v4();
    let token = user_token(org);

    // An appender takes a seq and stays open, holding the append lock.
    let mut first = pool.begin().await.expect("begin");
    let (first_seq, first_tx): (i64, String) = sqlx::query_as(
        "INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
         VALUES (gen_random_uuid(), $1, 'xentri.soul.updated.v1', '{}', 'user:first', 't', 'c', now())
         RETURNING seq, tx_id::text",
    )
    .bind(org)
    .fetch_one(&mut *first)
    .await
    .expect("first insert");

    // The api's append waits for it instead of taking a seq beside it.
    let post = {
        let (client, url, token) = (app.client.clone(), app.url("/api/v1/events"), token.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", "after-first")
                .json(&event_body("xentri.soul.updated.v1"))
                .send()
                .await
                .expect("sent")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                            WHERE wait_event = 'advisory' AND datname = current_database())",
        )
        .fetch_one(&pool)
        .await
        .expect("activity");
        if waiting {
            break;
        }
        assert!(!post.is_finished(), "the append finished while an earlier appender was open");
        assert!(std::time::Instant::now() < deadline, "the append never waited for the append lock");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!post.is_finished());
    first.commit().await.expect("commit");

    let (status, _, appended) = json(post.await.expect("post")).await;
    assert_eq!(status, 201, "{appended}");
    let seq = appended["seq"].as_i64().expect("seq");
    assert!(seq > first_seq);
    let tx: String = sqlx::query_scalar("SELECT tx_id::text FROM system_events WHERE seq = $1")
        .bind(seq)
        .fetch_one(&pool)
        .await
        .expect("tx id");
    assert!(tx.parse::<u64>().expect("xid") > first_tx.parse::<u64>().expect("xid"));
    app.stop().await;
}
