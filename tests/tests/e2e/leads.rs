//! Leads end to end, the api and the worker in one process on a fresh
//! database and Redis prefix: a lead created and moved through its lifecycle
//! to won over HTTP, its events listed in order under one correlation id, and
//! the cached first page of the list filled by the api and invalidated by the
//! worker's `cache_invalidation` group.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use xentri_e2e::eventually;
use xentri_e2e::stack::{Flow, Stack, WITHIN};

/// The dev secret of `config/test.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// The trace every request of the flow continues.
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
/// The flow's correlation id.
const FLOW_ID: &str = "lead-flow-1";
/// The flow's requests.
const FLOW: Flow = Flow { trace_id: TRACE_ID, correlation_id: FLOW_ID };
const LEADS: &str = "/api/v1/sales/leads";

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn leads_flow_from_creation_to_a_won_deal(pool: PgPool) {
    let stack = Stack::start(&pool, |settings| settings, Vec::new()).await;
    let org = Uuid::now_v7();
    let user = xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_1", Duration::from_secs(600)).expect("mint");
    let post = reqwest::Method::POST;
    let key = stack.key(&xentri_core::cache_keys::leads_list(org));

    // The first page, read once, is cached.
    let (status, _, page) = stack.send(FLOW, reqwest::Method::GET, LEADS, &user, None, None).await;
    assert_eq!((status, &page["data"]), (200, &json!([])));
    assert!(stack.cached(&key).await, "the first page is cached");

    // A creation makes the worker drop it.
    let new = json!({"name": "Ada Lovelace", "email": "ada@example.com", "company": "AE Ltd", "source": "form"});
    let (status, mut etag, lead) = stack.send(FLOW, post.clone(), LEADS, &user, None, Some(new)).await;
    assert_eq!(status, 201, "{lead}");
    stack.await_removal(&key, "xentri.lead.created.v1").await;
    let (_, _, page) = stack.send(FLOW, reqwest::Method::GET, LEADS, &user, None, None).await;
    assert_eq!(page["data"][0]["id"], lead["id"], "read again from PostgreSQL");

    // Through the lifecycle to won; each change drops the cached page again.
    let transitions = format!("{LEADS}/{}/transitions", lead["id"].as_str().expect("id"));
    for to in ["contacted", "qualified", "proposal", "won"] {
        let (status, _, _) = stack.send(FLOW, reqwest::Method::GET, LEADS, &user, None, None).await;
        assert_eq!(status, 200);
        assert!(stack.cached(&key).await, "the first page is cached before the transition to {to}");
        let body = json!({"to": to, "reason": format!("to {to}")});
        let (status, tag, answer) =
            stack.send(FLOW, post.clone(), &transitions, &user, etag.as_deref(), Some(body)).await;
        assert_eq!((status, &answer["status"]), (200, &json!(to)), "{answer}");
        etag = tag;
        stack.await_removal(&key, "xentri.lead.updated.v1").await;
    }
    let (status, _, answer) =
        stack.send(FLOW, post.clone(), &transitions, &user, etag.as_deref(), Some(json!({"to": "lost"}))).await;
    assert_eq!((status, &answer["allowed_transitions"]), (409, &json!([])), "won is terminal");

    let expected = [
        "xentri.lead.created.v1",
        "xentri.lead.updated.v1",
        "xentri.lead.updated.v1",
        "xentri.lead.updated.v1",
        "xentri.lead.updated.v1",
        "xentri.deal.won.v1",
    ];
    let events: Vec<Value> = eventually(WITHIN, "every event of the flow to be listed", || async {
        let (status, _, page) = stack
            .send(FLOW, reqwest::Method::GET, &format!("/api/v1/events?correlation_id={FLOW_ID}"), &user, None, None)
            .await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if status == 200 && data.len() == expected.len() { Ok(data) } else { Err(format!("{status}: {page}")) }
    })
    .await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, expected, "in order");
    assert!(events.iter().all(|e| e["correlation_id"] == FLOW_ID && e["trace_id"] == TRACE_ID), "{events:?}");
    assert!(events.iter().all(|e| e["payload"]["lead_id"] == lead["id"]), "{events:?}");
    assert_eq!(events[4]["payload"]["to"], "won");
    assert_eq!(events[5]["payload"]["reason"], "to won");
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    stack.stop().await;
}
