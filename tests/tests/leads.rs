//! Leads end to end, the api and the worker in one process on a fresh
//! database and Redis prefix: a lead created and moved through its lifecycle
//! to won over HTTP, its events listed in order under one correlation id, and
//! the cached first page of the list filled by the api and invalidated by the
//! worker's `cache_invalidation` group.

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
/// How long any one thing may take to happen.
const WITHIN: Duration = Duration::from_secs(15);
/// The trace every request of the flow continues.
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
/// The flow's correlation id.
const FLOW: &str = "lead-flow-1";
const LEADS: &str = "/api/v1/sales/leads";

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

    /// Waits until `key` is no longer in Redis.
    async fn await_removal(&self, key: &str, cause: &str) {
        let redis = &self.redis;
        eventually(WITHIN, &format!("{cause} to delete {key}"), || {
            let mut redis = redis.clone();
            let key = key.to_owned();
            async move {
                let exists: bool =
                    redis::cmd("EXISTS").arg(&key).query_async(&mut redis).await.map_err(|e| e.to_string())?;
                if exists { Err(format!("{key} is still cached")) } else { Ok(()) }
            }
        })
        .await;
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
async fn leads_flow_from_creation_to_a_won_deal(pool: PgPool) {
    let mut stack = Stack::start(&pool).await;
    let org = Uuid::now_v7();
    let user = xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_1", Duration::from_secs(600)).expect("mint");
    let post = reqwest::Method::POST;
    let key = format!("{}{}", stack.prefix, xentri_core::cache_keys::leads_list(org));

    // The first page, read once, is cached.
    let (status, _, page) = stack.send(reqwest::Method::GET, LEADS, &user, None, None).await;
    assert_eq!((status, &page["data"]), (200, &json!([])));
    let cached: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut stack.redis).await.expect("EXISTS");
    assert!(cached, "the first page is cached");

    // A creation makes the worker drop it.
    let new = json!({"name": "Ada Lovelace", "email": "ada@example.com", "company": "AE Ltd", "source": "form"});
    let (status, mut etag, lead) = stack.send(post.clone(), LEADS, &user, None, Some(new)).await;
    assert_eq!(status, 201, "{lead}");
    stack.await_removal(&key, "xentri.lead.created.v1").await;
    let (_, _, page) = stack.send(reqwest::Method::GET, LEADS, &user, None, None).await;
    assert_eq!(page["data"][0]["id"], lead["id"], "read again from PostgreSQL");

    // Through the lifecycle to won; each change drops the cached page again.
    let transitions = format!("{LEADS}/{}/transitions", lead["id"].as_str().expect("id"));
    for to in ["contacted", "qualified", "proposal", "won"] {
        let (status, _, _) = stack.send(reqwest::Method::GET, LEADS, &user, None, None).await;
        assert_eq!(status, 200);
        let cached: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut stack.redis).await.expect("EXISTS");
        assert!(cached, "the first page is cached before the transition to {to}");
        let body = json!({"to": to, "reason": format!("to {to}")});
        let (status, tag, answer) = stack.send(post.clone(), &transitions, &user, etag.as_deref(), Some(body)).await;
        assert_eq!((status, &answer["status"]), (200, &json!(to)), "{answer}");
        etag = tag;
        stack.await_removal(&key, "xentri.lead.updated.v1").await;
    }
    let (status, _, answer) =
        stack.send(post.clone(), &transitions, &user, etag.as_deref(), Some(json!({"to": "lost"}))).await;
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
        let (status, _, page) =
            stack.send(reqwest::Method::GET, &format!("/api/v1/events?correlation_id={FLOW}"), &user, None, None).await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if status == 200 && data.len() == expected.len() { Ok(data) } else { Err(format!("{status}: {page}")) }
    })
    .await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, expected, "in order");
    assert!(events.iter().all(|e| e["correlation_id"] == FLOW && e["trace_id"] == TRACE_ID), "{events:?}");
    assert!(events.iter().all(|e| e["payload"]["lead_id"] == lead["id"]), "{events:?}");
    assert_eq!(events[4]["payload"]["to"], "won");
    assert_eq!(events[5]["payload"]["reason"], "to won");
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    stack.stop().await;
}
