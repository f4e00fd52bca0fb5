//! The api and the worker in one process, on the test's database and a Redis
//! key prefix of its own: what the end-to-end flow tests (`tests/e2e/flow.rs`,
//! `tests/e2e/soul.rs`, `tests/e2e/leads.rs`) start, drive over HTTP and stop.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;
use xentri_api::startup::Application;
use xentri_test_support::{
    TestSettings, database_url, delete_keys_under, eventually, redis_connection, unique_key_prefix,
};
use xentri_worker::app::Worker;
use xentri_worker::handler::Handler;

/// How long a stack's step (a key's removal, a stop) may take.
pub const WITHIN: Duration = Duration::from_secs(15);

/// The trace and correlation ids every request of one flow carries.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// W3C trace id (32 hex digits) the flow's requests continue.
    pub trace_id: &'static str,
    /// The flow's `X-Correlation-Id`.
    pub correlation_id: &'static str,
}

/// The api and a worker running in this process until [`Stack::stop`].
pub struct Stack {
    /// `http://…` of the api.
    pub address: String,
    /// A client of the api.
    pub client: reqwest::Client,
    /// This test's Redis key prefix.
    pub prefix: String,
    /// A Redis connection, for the test's own reads of the keys.
    pub redis: MultiplexedConnection,
    /// Stops and tasks of the api and the worker, in start order.
    running: Vec<(&'static str, oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Stack {
    /// Starts the api and a worker (the built-in groups plus `extra`) on the
    /// database of `pool` and a fresh key prefix, with the `test` profile,
    /// reads blocking 100 ms and the relay polling every 50 ms, and whatever
    /// `configure` adds.
    pub async fn start(
        pool: &PgPool,
        configure: impl FnOnce(TestSettings) -> TestSettings,
        extra: Vec<Arc<dyn Handler>>,
    ) -> Self {
        xentri_api::install_crypto_provider();
        let prefix = unique_key_prefix();
        let settings = configure(
            TestSettings::new(&database_url(&pool.connect_options()))
                .key_prefix(&prefix)
                .vars(&[("XENTRI_WORKER__BLOCK_MS", "100"), ("XENTRI_WORKER__RELAY__POLL_INTERVAL_MS", "50")]),
        )
        .load();
        let api = Application::build(settings.clone()).await.expect("the api builds");
        let address = format!("http://{}", api.address());
        let worker = Worker::build(settings, extra).await.expect("the worker builds");
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

    /// The api's URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The Redis key of logical name `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A request of `flow`: its trace and correlation id, a fresh idempotency
    /// key, `If-Match` when given; answers the status, the `ETag` and the
    /// body (JSON, else null).
    pub async fn send(
        &self,
        flow: Flow,
        method: reqwest::Method,
        path: &str,
        token: &str,
        if_match: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Option<String>, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("idempotency-key", Uuid::new_v4().to_string())
            .header("x-correlation-id", flow.correlation_id)
            .header("traceparent", format!("00-{}-00f067aa0ba902b7-01", flow.trace_id));
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

    /// Whether `key` (a full key, prefix included) is in Redis.
    pub async fn cached(&self, key: &str) -> bool {
        redis::cmd("EXISTS").arg(key).query_async(&mut self.redis.clone()).await.expect("EXISTS")
    }

    /// Waits until `key` (a full key) is no longer in Redis; `cause` names
    /// what should have removed it.
    pub async fn await_removal(&self, key: &str, cause: &str) {
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

    /// Stops the worker, then the api, and removes the test's Redis keys.
    pub async fn stop(mut self) {
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
