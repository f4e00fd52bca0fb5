//! The api and the worker in one process, on a fresh database and Redis prefix
//! per test: an event posted over HTTP goes through the outbox, the relay and
//! the events stream to every group that takes its type, once, and the
//! built-in groups act on it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_e2e::stack::{Stack, WITHIN};
use xentri_e2e::{GroupProgress, eventually, group_progress};
use xentri_worker::handler::{BoxFuture, Handler, HandlerError, Handling, RedisDelivery, RedisStoreHandler};

/// The dev secret of `config/default.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// The events work stream (logical name, `config/default.toml`).
const EVENTS: &str = "events:work";

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

/// Starts the api and a worker running the built-in groups plus `extra`,
/// trimming every 200 ms.
async fn start(pool: &PgPool, extra: Vec<Arc<dyn Handler>>) -> Stack {
    Stack::start(pool, |settings| settings.var("XENTRI_WORKER__TRIM_INTERVAL_MS", "200"), extra).await
}

/// Posts an event for `org` and returns it as stored.
async fn post(stack: &Stack, org: Uuid, event_type: &str, payload: serde_json::Value) -> serde_json::Value {
    let token = xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_1", Duration::from_secs(600))
        .expect("a dev token is minted");
    let response = stack
        .client
        .post(stack.url("/api/v1/events"))
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
async fn settled(stack: &Stack, groups: &[&str]) -> Vec<GroupProgress> {
    let stream = stack.key(EVENTS);
    let redis = &stack.redis;
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
    let stack = start(&pool, vec![a.clone(), b.clone(), c.clone()]).await;
    let org = Uuid::now_v7();

    let event = post(
        &stack,
        org,
        SOUL_UPDATED,
        xentri_test_support::valid_payload_with(SOUL_UPDATED, serde_json::json!({"name": "Ada"})),
    )
    .await;
    let id: Uuid = event["id"].as_str().and_then(|id| id.parse().ok()).expect("the stored event has a UUID id");

    eventually(WITHIN, "recorder_a and recorder_b to have handled the event", || async {
        let (a, b) = (a.handled(), b.handled());
        if a.is_empty() || b.is_empty() { Err(format!("recorder_a {a:?}, recorder_b {b:?}")) } else { Ok(()) }
    })
    .await;
    let groups = ["recorder_a", "recorder_b", "recorder_c", "cache_invalidation", "event_counts"];
    let progress = settled(&stack, &groups).await;

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
    let mut stack = start(&pool, Vec::new()).await;
    let (org, other_org) = (Uuid::now_v7(), Uuid::now_v7());
    let soul = stack.key(&format!("soul:{org}"));
    let leads = stack.key(&format!("leads:list:{org}"));
    let (site_id, other_site_id) = (Uuid::now_v7(), Uuid::now_v7());
    let site = stack.key(&format!("site:{org}:{site_id}"));
    // Keys the events do not concern, which must stay.
    let other_soul = stack.key(&format!("soul:{other_org}"));
    let other_site = stack.key(&format!("site:{org}:{other_site_id}"));
    for key in [&soul, &leads, &site, &other_soul, &other_site] {
        redis::cmd("SET").arg(key).arg("cached").query_async::<()>(&mut stack.redis).await.expect("SET");
    }

    post(
        &stack,
        org,
        SOUL_UPDATED,
        xentri_test_support::valid_payload_with(SOUL_UPDATED, serde_json::json!({"name": "Ada"})),
    )
    .await;
    post(&stack, org, LEAD_CREATED, xentri_test_support::valid_payload_with(LEAD_CREATED, serde_json::json!({}))).await;
    post(
        &stack,
        org,
        WEBSITE_PUBLISHED,
        xentri_test_support::valid_payload_with(WEBSITE_PUBLISHED, serde_json::json!({"site_id": site_id})),
    )
    .await;

    for (key, event_type) in [(&soul, SOUL_UPDATED), (&leads, LEAD_CREATED), (&site, WEBSITE_PUBLISHED)] {
        stack.await_removal(key, event_type).await;
    }
    // The versioned keys keep their change's version as their floor, for as
    // long as the api would cache them; the leads list has none, and its
    // generation is raised instead, for as long as a cached list lives.
    for (key, version) in [(&soul, Some(2)), (&site, Some(4)), (&leads, None)] {
        let floor = xentri_core::cache_keys::floor(key);
        let (value, ttl): (Option<i64>, i64) =
            redis::pipe().get(&floor).pttl(&floor).query_async(&mut stack.redis).await.expect("GET, PTTL");
        assert_eq!(value, version, "the floor of {key}");
        if version.is_some() {
            assert!(ttl > 0 && ttl <= 300_000, "the floor of {key} lives as a cached answer would: {ttl} ms");
        }
    }
    let generation = xentri_core::cache_keys::generation(&leads);
    let (value, ttl): (Option<i64>, i64) =
        redis::pipe().get(&generation).pttl(&generation).query_async(&mut stack.redis).await.expect("GET, PTTL");
    assert_eq!(value, Some(1), "one lead event raised the list's generation once");
    assert!(ttl > 0 && ttl <= 60_000, "the generation lives as a cached list would: {ttl} ms");
    settled(&stack, &["cache_invalidation"]).await;
    for key in [&other_soul, &other_site] {
        assert!(stack.cached(key).await, "expected {key}, which no event concerned, to stay cached");
    }
    stack.stop().await;
}
