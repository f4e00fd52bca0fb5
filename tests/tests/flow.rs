//! The api and the worker in one process, on a fresh database and Redis prefix
//! per test: an event posted over HTTP goes through the outbox, the relay and
//! the events stream to every group that takes its type, once, and the
//! built-in groups act on it.

// Tests: a failed step panics with its cause, failing the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;
use xentri_api::startup::Application;
use xentri_core::Settings;
use xentri_e2e::{GroupProgress, unique_key_prefix};
use xentri_e2e::{TestSettings, database_url, delete_keys_under, eventually, group_progress, redis_connection};
use xentri_worker::app::Worker;
use xentri_worker::handler::{BoxFuture, Handler, HandlerError, Handling, RedisDelivery, RedisStoreHandler};

/// The dev secret of `config/default.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// The events work stream (logical name, `config/default.toml`).
const EVENTS: &str = "events:work";
/// How long any one thing may take to happen.
const WITHIN: Duration = Duration::from_secs(15);

const SOUL_UPDATED: &str = "xentri.soul.updated.v1";
const LEAD_CREATED: &str = "xentri.lead.created.v1";
const WEBSITE_PUBLISHED: &str = "xentri.website.published.v1";

/// A test group on the events stream that records the ids of the events it
/// was handed.
struct Recorder {
    /// Its group name.
    group: &'static str,
    /// The types it takes.
    accepts: &'static [&'static str],
    /// Event ids, in the order they were handled.
    handled: Mutex<Vec<Uuid>>,
}

impl Recorder {
    fn new(group: &'static str, accepts: &'static [&'static str]) -> Arc<Self> {
        Arc::new(Self { group, accepts, handled: Mutex::new(Vec::new()) })
    }

    fn handled(&self) -> Vec<Uuid> {
        self.handled.lock().expect("recorder lock is not poisoned").clone()
    }
}

impl Handler for Recorder {
    fn group(&self) -> &str {
        self.group
    }

    fn streams(&self) -> Vec<String> {
        vec![EVENTS.to_owned()]
    }

    fn accepts(&self, event_type: &str) -> bool {
        self.accepts.contains(&event_type)
    }
    fn handling(&self) -> Handling<'_> {
        Handling::Redis(self)
    }
}

impl RedisStoreHandler for Recorder {
    fn handle<'a>(&'a self, delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            self.handled.lock().map_err(|_| HandlerError::permanent("recorder lock poisoned"))?.push(delivery.event.id);
            Ok(())
        })
    }
}

/// The api and the worker running in-process against one test database.
struct Stack {
    /// `http://…` of the api.
    address: String,
    client: reqwest::Client,
    /// This test's Redis key prefix.
    prefix: String,
    redis: MultiplexedConnection,
    /// Stops and tasks of the api and the worker.
    running: Vec<(&'static str, oneshot::Sender<()>, JoinHandle<()>)>,
}

/// `config/test.toml` with the test's database and prefix, ports 0 and short
/// worker timings.
fn settings(database_url: &str, prefix: &str) -> Settings {
    TestSettings::new(database_url)
        .key_prefix(prefix)
        .vars(&[
            ("XENTRI_WORKER__BLOCK_MS", "100"),
            ("XENTRI_WORKER__RELAY__POLL_INTERVAL_MS", "50"),
            ("XENTRI_WORKER__TRIM_INTERVAL_MS", "200"),
        ])
        .load()
}

impl Stack {
    /// Starts the api and a worker running the built-in groups plus `extra`.
    async fn start(pool: &PgPool, extra: Vec<Arc<dyn Handler>>) -> Self {
        xentri_api::install_crypto_provider();
        let prefix = unique_key_prefix();
        let settings = settings(&database_url(&pool.connect_options()), &prefix);
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

    /// The Redis key of logical name `name`.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Posts an event for `org` and returns it as stored.
    async fn post(&self, org: Uuid, event_type: &str, payload: serde_json::Value) -> serde_json::Value {
        let token = xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_1", Duration::from_secs(600))
            .expect("a dev token is minted");
        let response = self
            .client
            .post(format!("{}/api/v1/events", self.address))
            .bearer_auth(token)
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .json(&serde_json::json!({"type": event_type, "payload": payload}))
            .send()
            .await
            .expect("the api answers");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("the api answers with JSON");
        assert_eq!(status, 201, "expected the event to be stored (201), got {body}");
        body
    }

    /// Waits until every group on the events stream has been delivered every
    /// entry and has acknowledged them all, and returns the groups' progress.
    async fn settled(&mut self, groups: &[&str]) -> Vec<GroupProgress> {
        let stream = self.key(EVENTS);
        let redis = &mut self.redis;
        eventually(WITHIN, "every group to have read and acknowledged every entry", || {
            let stream = stream.clone();
            let mut redis = redis.clone();
            async move {
                let progress = group_progress(&mut redis, &stream).await.map_err(|e| e.to_string())?;
                let missing: Vec<&&str> = groups.iter().filter(|g| !progress.iter().any(|p| p.name == **g)).collect();
                let behind: Vec<&GroupProgress> = progress.iter().filter(|p| !p.read_all || p.pending > 0).collect();
                if missing.is_empty() && behind.is_empty() {
                    Ok(progress)
                } else {
                    Err(format!("groups not created yet: {missing:?}; groups behind: {behind:?}"))
                }
            }
        })
        .await
    }

    /// Stops the worker and the api and removes the test's Redis keys.
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

async fn event_count(pool: &PgPool, org: Uuid, event_type: &str) -> Option<i64> {
    // The test pool connects as a superuser, which row-level security does not bind.
    sqlx::query_scalar("SELECT count FROM event_counts WHERE org_id = $1 AND type = $2")
        .bind(org)
        .bind(event_type)
        .fetch_optional(pool)
        .await
        .expect("event_counts is readable")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_event_posted_to_the_api_reaches_a_handler_of_each_group_that_takes_its_type_once(pool: PgPool) {
    let a = Recorder::new("recorder_a", &[SOUL_UPDATED]);
    let b = Recorder::new("recorder_b", &[SOUL_UPDATED]);
    let c = Recorder::new("recorder_c", &[LEAD_CREATED]);
    let mut stack = Stack::start(&pool, vec![a.clone(), b.clone(), c.clone()]).await;
    let org = Uuid::now_v7();

    let event = stack.post(org, SOUL_UPDATED, serde_json::json!({"name": "Ada"})).await;
    let id: Uuid = event["id"].as_str().and_then(|id| id.parse().ok()).expect("the stored event has a UUID id");

    eventually(WITHIN, "recorder_a and recorder_b to have handled the event", || async {
        let (a, b) = (a.handled(), b.handled());
        if a.is_empty() || b.is_empty() { Err(format!("recorder_a {a:?}, recorder_b {b:?}")) } else { Ok(()) }
    })
    .await;
    let groups = ["recorder_a", "recorder_b", "recorder_c", "cache_invalidation", "event_counts"];
    let progress = stack.settled(&groups).await;

    assert_eq!(a.handled(), [id], "expected recorder_a to have handled event {id} exactly once");
    assert_eq!(b.handled(), [id], "expected recorder_b to have handled event {id} exactly once");
    assert_eq!(
        c.handled(),
        Vec::<Uuid>::new(),
        "expected recorder_c, which takes only {LEAD_CREATED}, to have handled nothing"
    );
    assert!(
        progress.iter().all(|p| p.pending == 0),
        "expected no entry pending in any group on {EVENTS}, got {progress:?}"
    );
    assert_eq!(
        event_count(&pool, org, SOUL_UPDATED).await,
        Some(1),
        "expected event_counts to count the one {SOUL_UPDATED} of org {org} once"
    );
    stack.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn events_invalidate_the_cached_reads_they_change(pool: PgPool) {
    let mut stack = Stack::start(&pool, Vec::new()).await;
    let (org, other_org) = (Uuid::now_v7(), Uuid::now_v7());
    let soul = stack.key(&format!("soul:{org}"));
    let leads = stack.key(&format!("leads:list:{org}"));
    let site = stack.key(&format!("site:{org}:s1"));
    // Keys the events do not concern, which must stay.
    let other_soul = stack.key(&format!("soul:{other_org}"));
    let other_site = stack.key(&format!("site:{org}:s2"));
    for key in [&soul, &leads, &site, &other_soul, &other_site] {
        redis::cmd("SET").arg(key).arg("cached").query_async::<()>(&mut stack.redis).await.expect("SET");
    }

    stack.post(org, SOUL_UPDATED, serde_json::json!({"name": "Ada"})).await;
    stack.post(org, LEAD_CREATED, serde_json::json!({"lead_id": "l1"})).await;
    stack.post(org, WEBSITE_PUBLISHED, serde_json::json!({"site_id": "s1"})).await;

    for (key, event_type) in [(&soul, SOUL_UPDATED), (&leads, LEAD_CREATED), (&site, WEBSITE_PUBLISHED)] {
        let redis = &stack.redis;
        eventually(WITHIN, &format!("{event_type} to delete {key}"), || {
            let mut redis = redis.clone();
            async move {
                let exists: bool =
                    redis::cmd("EXISTS").arg(key).query_async(&mut redis).await.map_err(|e| e.to_string())?;
                if exists { Err(format!("{key} is still cached")) } else { Ok(()) }
            }
        })
        .await;
    }
    stack.settled(&["cache_invalidation"]).await;
    for key in [&other_soul, &other_site] {
        let exists: bool = redis::cmd("EXISTS").arg(key).query_async(&mut stack.redis).await.expect("EXISTS");
        assert!(exists, "expected {key}, which no event concerned, to stay cached");
    }
    stack.stop().await;
}
