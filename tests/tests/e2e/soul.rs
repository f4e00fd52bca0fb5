//! The Soul end to end, the api and the worker in one process on a fresh
//! database and Redis prefix: a whole Soul Generation Flow over HTTP, its
//! events listed in order under one correlation id, and its cached read filled
//! by the api and invalidated by the worker's `cache_invalidation` group.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use xentri_e2e::eventually;
use xentri_e2e::stack::{Flow, Stack, WITHIN};

/// The dev secret of `config/test.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// The agent service's secret, configured for this test.
const AGENT_SECRET: &str = "soul-agent-secret";
/// The trace every request of the flow continues.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The flow's correlation id.
const FLOW_ID: &str = "soul-flow-1";
/// The flow's requests.
const FLOW: Flow = Flow { trace_id: TRACE_ID, correlation_id: FLOW_ID };

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_soul_flows_from_creation_to_a_changed_approval(pool: PgPool) {
    let mut stack =
        Stack::start(&pool, |settings| settings.var("XENTRI_AUTH__SERVICES__SOUL_AGENT", AGENT_SECRET), Vec::new())
            .await;
    let org = Uuid::now_v7();
    let user = xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_1", Duration::from_secs(600)).expect("mint");
    let agent = xentri_api::auth::token::service_token(AGENT_SECRET, "soul_agent", org, Duration::from_secs(300))
        .expect("mint");
    let post = reqwest::Method::POST;

    let (status, mut etag, _) = stack.send(FLOW, post.clone(), "/api/v1/soul", &user, None, None).await;
    assert_eq!(status, 201);
    let steps: [(&str, Value); 8] = [
        (&user, json!({"to": "conversing"})),
        (&user, json!({"to": "conversing", "sections": {"mission": "We help small teams ship."}})),
        (&user, json!({"to": "drafting", "reason": "enough answers"})),
        (&agent, json!({"to": "review_pending", "sections": {"mission": "Ship, small teams.", "voice": "warm"}})),
        (&user, json!({"to": "editing"})),
        (&user, json!({"content": {"mission": "Small teams ship with us.", "voice": "warm"}})),
        (&user, json!({"to": "review_pending"})),
        (&user, json!({"to": "approved"})),
    ];
    for (token, body) in steps {
        let (method, path) = if body.get("content").is_some() {
            (reqwest::Method::PUT, "/api/v1/soul")
        } else {
            (post.clone(), "/api/v1/soul/transitions")
        };
        let (status, tag, answer) = stack.send(FLOW, method, path, token, etag.as_deref(), Some(body.clone())).await;
        assert_eq!(status, 200, "{body} answered {answer}");
        etag = tag;
    }

    // The read is cached; changing the approved Soul makes the worker drop it.
    let (status, tag, soul) = stack.send(FLOW, reqwest::Method::GET, "/api/v1/soul", &user, None, None).await;
    assert_eq!((status, &soul["state"]), (200, &json!("approved")));
    assert_eq!(tag, etag);
    let key = stack.key(&xentri_core::cache_keys::soul(org));
    let cached: Option<String> =
        redis::cmd("HGET").arg(&key).arg("version").query_async(&mut stack.redis).await.expect("HGET");
    assert_eq!(cached.map(|v| format!("\"{v}\"")), etag, "the read is cached at its version");
    let (status, _, _) = stack
        .send(FLOW, post.clone(), "/api/v1/soul/transitions", &user, etag.as_deref(), Some(json!({"to": "editing"})))
        .await;
    assert_eq!(status, 200);
    stack.await_removal(&key, "xentri.soul.updated.v1").await;
    let (status, _, soul) = stack.send(FLOW, reqwest::Method::GET, "/api/v1/soul", &user, None, None).await;
    assert_eq!((status, &soul["state"]), (200, &json!("editing")), "read again from PostgreSQL");

    let expected = [
        "xentri.soul.initiated.v1",
        "xentri.soul.transitioned.v1",
        "xentri.soul.transitioned.v1",
        "xentri.soul.transitioned.v1",
        "xentri.soul.transitioned.v1",
        "xentri.soul.transitioned.v1",
        "xentri.soul.content_replaced.v1",
        "xentri.soul.transitioned.v1",
        "xentri.soul.transitioned.v1",
        "xentri.soul.created.v1",
        "xentri.soul.transitioned.v1",
        "xentri.soul.updated.v1",
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
    assert_eq!(events[4]["actor"], "service:soul_agent", "the draft is the agent's");
    assert_eq!(events[9]["payload"]["content"]["mission"], "Small teams ship with us.");
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    stack.stop().await;
}
