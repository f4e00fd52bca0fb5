//! The Soul end to end, the api and the worker in one process on a fresh
//! database and Redis prefix: a whole Soul Generation Flow over HTTP, its
//! events listed in order under one correlation id, and its cached read filled
//! by the api and invalidated by the worker's `cache_invalidation` group.

// Tests: a failed step panics with its cause, failing the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;
use xentri_api::startup::Application;
use xentri_core::Settings;
use xentri_e2e::{
    config_dir, database_url, delete_keys_under, eventually, redis_connection, redis_url, unique_key_prefix,
};
use xentri_worker::app::Worker;

/// The dev secret of `config/test.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// The agent service's secret, configured for this test.
const AGENT_SECRET: &str = "soul-agent-secret";
/// How long any one thing may take to happen.
const WITHIN: Duration = Duration::from_secs(15);
/// The trace every request of the flow continues.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The flow's correlation id.
const FLOW: &str = "soul-flow-1";

struct Stack {
    address: String,
    client: reqwest::Client,
    prefix: String,
    redis: MultiplexedConnection,
    running: Vec<(&'static str, oneshot::Sender<()>, JoinHandle<()>)>,
}

fn settings(database_url: &str, prefix: &str) -> Settings {
    let vars = [
        ("DATABASE_URL", database_url),
        ("REDIS_URL", &redis_url()),
        ("XENTRI_REDIS__KEY_PREFIX", prefix),
        ("XENTRI_API__PORT", "0"),
        ("XENTRI_DATABASE__MIGRATE_ON_START", "false"),
        ("XENTRI_AUTH__SERVICES__SOUL_AGENT", AGENT_SECRET),
        ("XENTRI_WORKER__PORT", "0"),
        ("XENTRI_WORKER__BLOCK_MS", "100"),
        ("XENTRI_WORKER__RELAY__POLL_INTERVAL_MS", "50"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()));
    Settings::load_from(&config_dir(), Some("test"), vars).expect("test settings load")
}

impl Stack {
    async fn start(pool: &PgPool) -> Self {
        xentri_api::install_crypto_provider();
        let prefix = unique_key_prefix();
        let settings = settings(&database_url(&pool.connect_options()), &prefix);
        let api = Application::build(settings.clone()).await.expect("the api builds");
        let address = format!("http://{}", api.address());
        let worker = Worker::build(settings, Vec::new()).await.expect("the worker builds");
        let mut running = Vec::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(api.run_until_stopped(async {
            let _ = stopped.await;
        }));
        running.push(("api", stop, task));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            worker
                .run_until_stopped(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the worker runs until stopped")
        });
        running.push(("worker", stop, task));
        Self { address, client: reqwest::Client::new(), prefix, redis: redis_connection().await, running }
    }

    /// A request of the flow: the flow's trace and correlation id, a fresh
    /// idempotency key, and `If-Match` when given.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        if_match: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Option<String>, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token)
            .header("idempotency-key", Uuid::new_v4().to_string())
            .header("x-correlation-id", FLOW)
            .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"));
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the api answers");
        let status = response.status().as_u16();
        let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.json().await.unwrap_or(Value::Null);
        (status, etag, body)
    }

    async fn stop(mut self) {
        for (name, stop, task) in self.running.drain(..).rev() {
            let _ = stop.send(());
            tokio::time::timeout(WITHIN, task)
                .await
                .unwrap_or_else(|_| panic!("expected the {name} to stop within {WITHIN:?}"))
                .unwrap_or_else(|error| panic!("expected the {name} to stop cleanly, it failed: {error}"));
        }
        delete_keys_under(&mut self.redis, &self.prefix).await.expect("the test's Redis keys are deleted");
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_soul_flows_from_creation_to_a_changed_approval(pool: PgPool) {
    let mut stack = Stack::start(&pool).await;
    let org = Uuid::now_v7();
    let user = xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_1", Duration::from_secs(600)).expect("mint");
    let agent = xentri_api::auth::token::service_token(AGENT_SECRET, "soul_agent", org, Duration::from_secs(300))
        .expect("mint");
    let post = reqwest::Method::POST;

    let (status, mut etag, _) = stack.send(post.clone(), "/api/v1/soul", &user, None, None).await;
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
        let (status, tag, answer) = stack.send(method, path, token, etag.as_deref(), Some(body.clone())).await;
        assert_eq!(status, 200, "{body} answered {answer}");
        etag = tag;
    }

    // The read is cached; changing the approved Soul makes the worker drop it.
    let (status, tag, soul) = stack.send(reqwest::Method::GET, "/api/v1/soul", &user, None, None).await;
    assert_eq!((status, &soul["state"]), (200, &json!("approved")));
    assert_eq!(tag, etag);
    let key = format!("{}{}", stack.prefix, xentri_core::cache_keys::soul(org));
    let cached: Option<String> =
        redis::cmd("HGET").arg(&key).arg("version").query_async(&mut stack.redis).await.expect("HGET");
    assert_eq!(cached.map(|v| format!("\"{v}\"")), etag, "the read is cached at its version");
    let (status, _, _) = stack
        .send(post.clone(), "/api/v1/soul/transitions", &user, etag.as_deref(), Some(json!({"to": "editing"})))
        .await;
    assert_eq!(status, 200);
    let redis = &stack.redis;
    eventually(WITHIN, &format!("xentri.soul.updated.v1 to delete {key}"), || {
        let mut redis = redis.clone();
        let key = key.clone();
        async move {
            let exists: bool =
                redis::cmd("EXISTS").arg(&key).query_async(&mut redis).await.map_err(|e| e.to_string())?;
            if exists { Err(format!("{key} is still cached")) } else { Ok(()) }
        }
    })
    .await;
    let (status, _, soul) = stack.send(reqwest::Method::GET, "/api/v1/soul", &user, None, None).await;
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
        let (status, _, page) =
            stack.send(reqwest::Method::GET, &format!("/api/v1/events?correlation_id={FLOW}"), &user, None, None).await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if status == 200 && data.len() == expected.len() { Ok(data) } else { Err(format!("{status}: {page}")) }
    })
    .await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, expected, "in order");
    assert!(events.iter().all(|e| e["correlation_id"] == FLOW && e["trace_id"] == TRACE_ID), "{events:?}");
    assert_eq!(events[4]["actor"], "service:soul_agent", "the draft is the agent's");
    assert_eq!(events[9]["payload"]["content"]["mission"], "Small teams ship with us.");
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    stack.stop().await;
}
