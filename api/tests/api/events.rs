//! Appending, fetching and listing events through the HTTP surface.

use std::collections::HashSet;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use xentri_core::store::{AppendOutcome, NewEventRecord};

use crate::helpers::{
    SAMPLE_TYPE, TestApp, database_url, event_body, json, seed_events, settings, spawn_app, spawn_with, tail,
    user_token, wait_listable,
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
    let body = serde_json::json!({"type": SAMPLE_TYPE, "payload": {"zz": 1, "aaa": [1.5, "é", null]}});
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

/// A page is written from the rows directly (`api::listing`), not through the
/// documented types: it must still be, byte for byte, `EventPage` holding the
/// events as `GET /api/v1/events/{id}` renders them, for strings that need
/// escaping (payloads, and correlation ids written by SQL, which the api would
/// refuse), non-ASCII text, an absent and a present causation id, and
/// timestamps with and without a fraction.
#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn list_pages_are_the_documented_types_byte_for_byte(pool: PgPool) {
    let app = spawn(&pool).await;
    let org = Uuid::new_v4();
    let token = user_token(org);
    let bodies = [
        serde_json::json!({"type": SAMPLE_TYPE, "payload": {"quote": "\"q\" \\ \u{1}\n\t", "ü": "日本", "n": [1e10, -0.5, null]},
            "correlation_id": "corr-1:a.b_c", "causation_id": "cause-1"}),
        serde_json::json!({"type": SAMPLE_TYPE, "payload": {}}),
        serde_json::json!({"type": SAMPLE_TYPE, "payload": {"deep": {"a": [{"b": {"c": "</script>"}}]}}, "correlation_id": "c-2"}),
    ];
    let mut rendered = Vec::new();
    for (n, body) in bodies.into_iter().enumerate() {
        let appended = app.post_event(&token, &format!("bytes-{n}"), body).await;
        assert_eq!(appended.status(), 201);
        let envelope: serde_json::Value = serde_json::from_str(&appended.text().await.expect("body")).expect("json");
        let id = envelope["id"].as_str().expect("id").to_owned();
        rendered.push((envelope["seq"].as_i64().expect("seq"), id));
    }
    // Timestamps the api would not write itself: whole seconds, milliseconds.
    for (n, at) in ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.120Z"].into_iter().enumerate() {
        let (seq, id): (i64, Uuid) = sqlx::query_as(
            "INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
             VALUES (gen_random_uuid(), $1, $2, '{\"k\" : 1}', 'service:test', 't', $3, $4::timestamptz) RETURNING seq, id",
        )
        .bind(org)
        .bind(SAMPLE_TYPE)
        .bind(format!("seeded \"{n}\" é\\"))
        .bind(at)
        .fetch_one(&pool)
        .await
        .expect("seeded");
        rendered.push((seq, id.to_string()));
    }
    wait_listable(&app, &token, rendered.iter().map(|(seq, _)| *seq).max().unwrap_or_default()).await;

    let mut events = Vec::new();
    for (_, id) in &rendered {
        let fetched = app.get_as(&token, &format!("/api/v1/events/{id}")).await;
        assert_eq!(fetched.status(), 200);
        events.push(fetched.text().await.expect("body"));
    }
    let page = app.get_as(&token, "/api/v1/events?limit=4").await.text().await.expect("body");
    let parsed: serde_json::Value = serde_json::from_str(&page).expect("the page is JSON");
    let next = parsed["next"].as_str().expect("next");
    assert_eq!(page, format!(r#"{{"data":[{}],"next":"{next}","has_more":true}}"#, events[..4].join(",")));
    let last = app.get_as(&token, &format!("/api/v1/events?after={next}")).await.text().await.expect("body");
    let parsed: serde_json::Value = serde_json::from_str(&last).expect("the page is JSON");
    let next = parsed["next"].as_str().expect("next");
    assert_eq!(last, format!(r#"{{"data":[{}],"next":"{next}","has_more":false}}"#, events[4]));
    let empty = app.get_as(&token, &format!("/api/v1/events?after={next}")).await.text().await.expect("body");
    assert_eq!(empty, format!(r#"{{"data":[],"next":"{next}","has_more":false}}"#), "an empty page keeps the cursor");
    let none = app.get_as(&user_token(Uuid::new_v4()), "/api/v1/events").await.text().await.expect("body");
    assert_eq!(none, r#"{"data":[],"next":null,"has_more":false}"#);
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
    let next = default_page["next"].as_str().expect("an opaque cursor");
    let (_, _, second) = json(app.get_as(&token, &format!("/api/v1/events?limit=1&after={next}")).await).await;
    assert_eq!(second["data"][0]["seq"], seeded[50], "the cursor continues after the page's last event");
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

/// Appends one event per org in `orgs` with one call of `append_events` (the
/// api's own append function) in `tx`, as a writer outside the api would;
/// returns their seqs.
async fn append_in(tx: &mut sqlx::PgConnection, orgs: &[Uuid], actor: &str) -> Vec<i64> {
    let ids: Vec<Uuid> = orgs.iter().map(|_| Uuid::now_v7()).collect();
    let records: Vec<NewEventRecord<'_>> = orgs
        .iter()
        .zip(&ids)
        .map(|(org, id)| NewEventRecord {
            org_id: *org,
            idempotency_key: None,
            request_hash: None,
            id: *id,
            event_type: "xentri.soul.updated.v1",
            payload: "{}",
            actor,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
            correlation_id: "tail",
            causation_id: None,
            occurred_at: chrono::Utc::now(),
        })
        .collect();
    let outcomes = xentri_core::store::append_events(tx, "xentri_api", "events:work", 60.0, &records)
        .await
        .expect("append_events");
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            AppendOutcome::Appended(seq) => seq,
            other => panic!("not appended: {other:?}"),
        })
        .collect()
}

/// The interleaving a design that tails by `seq` skips on, for every org of
/// `orgs` (each transaction appends one event per org, as a batch):
/// - A takes its transaction id first (it writes elsewhere) and waits;
/// - B appends and stays open (its seqs are taken early, committed late);
/// - later transactions append through the api and commit;
/// - A appends (seqs above everyone's, transaction id below) and commits.
///
/// A client reading now may be given A's events but nothing else (B is still
/// running, and everything after it waits for it). Under `seq` order its
/// cursor would now be past B's and the api's events, and they would never
/// come. It keeps polling with its last cursor; B commits; it must get every
/// event exactly once, in a stable order: A's, B's, then the api's.
async fn interleave_early_id_late_append(pool: PgPool, orgs: &[Uuid]) {
    let app = spawn(&pool).await;

    let mut a = pool.begin().await.expect("begin A");
    sqlx::query("INSERT INTO processed_events (group_name, event_id) VALUES ('elsewhere', gen_random_uuid())")
        .execute(&mut *a)
        .await
        .expect("A writes first, taking its transaction id");
    let mut b = pool.begin().await.expect("begin B");
    let b_seqs = append_in(&mut b, orgs, "user:b").await;
    let mut api_seqs = vec![Vec::new(); orgs.len()];
    for round in 0..2 {
        for (n, org) in orgs.iter().enumerate() {
            let response = app
                .post_event(&user_token(*org), &format!("later-{round}"), event_body("xentri.soul.updated.v1"))
                .await;
            let (status, _, event) = json(response).await;
            assert_eq!(status, 201, "{event}");
            api_seqs[n].push(event["seq"].as_i64().expect("seq"));
        }
    }
    let a_seqs = append_in(&mut a, orgs, "user:a").await;
    a.commit().await.expect("commit A");
    assert!(a_seqs.iter().all(|a| api_seqs.iter().flatten().chain(&b_seqs).all(|other| a > other)));

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut seen = vec![Vec::new(); orgs.len()];
    let mut cursors: Vec<Option<String>> = vec![None; orgs.len()];
    // Until A's events are listed (other tests' transactions on the server
    // may hold the horizon back a moment): nothing else can be, B is open.
    for (n, org) in orgs.iter().enumerate() {
        while seen[n].is_empty() {
            assert!(std::time::Instant::now() < deadline, "A's event never became listable");
            let (seqs, cursor) = tail(&app, &user_token(*org), cursors[n].clone()).await;
            seen[n].extend(seqs);
            cursors[n] = cursor;
        }
        assert_eq!(seen[n], [a_seqs[n]], "only A's event is below the horizon while B runs");
    }
    b.commit().await.expect("commit B");

    for (n, org) in orgs.iter().enumerate() {
        let expected = [vec![a_seqs[n], b_seqs[n]], api_seqs[n].clone()].concat();
        while seen[n].len() < expected.len() {
            assert!(std::time::Instant::now() < deadline, "org {n}: tailing stopped at {:?} of {expected:?}", seen[n]);
            let (seqs, cursor) = tail(&app, &user_token(*org), cursors[n].clone()).await;
            seen[n].extend(seqs);
            cursors[n] = cursor;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(seen[n], expected, "org {n}: every event once, A's, B's, then the api's");
        let (more, _) = tail(&app, &user_token(*org), cursors[n].clone()).await;
        assert!(more.is_empty(), "org {n}: nothing after the last cursor, got {more:?}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn tailing_never_skips_a_transaction_that_took_its_id_early_and_appended_late(pool: PgPool) {
    interleave_early_id_late_append(pool, &[Uuid::new_v4()]).await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn tailing_never_skips_batches_of_several_orgs_appended_early_and_late(pool: PgPool) {
    let orgs: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    interleave_early_id_late_append(pool, &orgs).await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn appends_do_not_wait_for_each_other(pool: PgPool) {
    let app = spawn(&pool).await;
    let org = Uuid::new_v4();
    // A writer appends through the api's own function and stays open.
    let mut open = pool.begin().await.expect("begin");
    let open_seqs = append_in(&mut open, &[org], "user:open").await;
    // The api's append does not wait for it.
    let appended = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.post_event(&user_token(org), "beside-an-open-writer", event_body("xentri.soul.updated.v1")),
    )
    .await
    .expect("the append answered while another appending transaction was open");
    let (status, _, event) = json(appended).await;
    assert_eq!(status, 201, "{event}");
    assert!(event["seq"].as_i64().expect("seq") > open_seqs[0]);
    open.rollback().await.expect("rollback");
    app.stop().await;
}
