//! A dead letter's whole life: its handler fails three times, the entry is
//! dead-lettered, `dlq-tool replay` puts it back, and the handler (now
//! succeeding) processes it once while the other groups on the stream skip it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_e2e::{
    TestSettings, binary, database_url, delete_keys_under, eventually, redis_connection, redis_url, unique_key_prefix,
    workspace,
};
use xentri_test_support::EventFixture;
use xentri_worker::app::Worker;
use xentri_worker::handler::{BoxFuture, Handler, HandlerError, RedisDelivery, RedisStoreHandler};
use xentri_worker::testing::Group;

const WITHIN: Duration = Duration::from_secs(15);

/// Fails its first `failures` calls, then succeeds; records what it handled.
struct Flaky {
    failures: usize,
    calls: AtomicUsize,
    handled: Mutex<Vec<Uuid>>,
}

impl Flaky {
    /// Group `group`, failing its first `failures` calls.
    fn group(group: &str, failures: usize) -> Arc<Group<Self>> {
        Arc::new(Group::redis(group, Self { failures, calls: AtomicUsize::new(0), handled: Mutex::default() }))
    }
}

impl RedisStoreHandler for Flaky {
    fn handle<'a>(&'a self, delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
                return Err(HandlerError::transient("downstream timed out"));
            }
            self.handled.lock().map_err(|_| HandlerError::permanent("poisoned"))?.push(delivery.event.id);
            Ok(())
        })
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_dead_letter_replayed_with_dlq_tool_is_processed_once_by_its_group(pool: PgPool) {
    let prefix = unique_key_prefix();
    let settings = TestSettings::new(&database_url(&pool.connect_options()))
        .key_prefix(&prefix)
        .fast_worker()
        .var("XENTRI_WORKER__RETRY__BASE_MS", "20")
        .load();
    let (flaky, bystander) = (Flaky::group("billing", 3), Flaky::group("audit", 0));
    let handlers: Vec<Arc<dyn Handler>> = vec![flaky.clone(), bystander.clone()];
    let worker = Worker::build(settings, handlers).await.expect("worker builds");
    let running = worker.spawn();

    let event = EventFixture::default()
        .event_type("xentri.finance.invoice.created.v1")
        .payload(serde_json::json!({}))
        .actor("service:billing")
        .correlation_id("invoice-7")
        .stored();
    let mut conn = redis_connection().await;
    let mut xadd = redis::cmd("XADD");
    xadd.arg(format!("{prefix}events:work")).arg("*");
    for (name, value) in xentri_core::stream::encode(&event) {
        xadd.arg(name).arg(value);
    }
    let _: String = xadd.query_async(&mut conn).await.expect("xadd");

    let dlq = format!("{prefix}events:dlq");
    let dead_id: String = eventually(WITHIN, "the entry in events:dlq after three failures", || {
        let mut conn = conn.clone();
        let dlq = dlq.clone();
        async move {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&dlq)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            reply.ids.first().map(|e| e.id.clone()).ok_or_else(|| "the DLQ is empty".to_owned())
        }
    })
    .await;
    assert_eq!(bystander.handled.lock().expect("lock").as_slice(), [event.id], "the other group handled it first time");

    let output = tokio::process::Command::new(binary("dlq-tool"))
        .current_dir(workspace())
        .env("XENTRI_ENV", "test")
        .env("REDIS_URL", redis_url())
        .env("XENTRI_REDIS__KEY_PREFIX", &prefix)
        .args(["replay", "events:dlq", &dead_id])
        .output()
        .await
        .expect("dlq-tool runs");
    assert!(output.status.success(), "dlq-tool replay: {}", String::from_utf8_lossy(&output.stderr));

    eventually(WITHIN, "the replayed entry processed by billing", || {
        let handled = flaky.handled.lock().map(|h| h.clone()).unwrap_or_default();
        async move { if handled == [event.id] { Ok(()) } else { Err(format!("billing handled {handled:?}")) } }
    })
    .await;
    let len: usize = redis::cmd("XLEN").arg(&dlq).query_async(&mut conn).await.expect("xlen");
    assert_eq!(len, 0, "the DLQ is empty after the replay");
    // The replay carries target_group: audit acks it without handling it again.
    eventually(WITHIN, "both groups done with both entries", || {
        let mut conn = conn.clone();
        let key = format!("{prefix}events:work");
        async move {
            let groups: redis::streams::StreamInfoGroupsReply =
                redis::cmd("XINFO").arg("GROUPS").arg(&key).query_async(&mut conn).await.map_err(|e| e.to_string())?;
            let done = groups.groups.iter().all(|g| g.entries_read == Some(2) && g.pending == 0);
            if done { Ok(()) } else { Err(format!("{:?}", groups.groups)) }
        }
    })
    .await;
    assert_eq!(bystander.handled.lock().expect("lock").len(), 1, "audit skipped the replay");
    assert_eq!(flaky.handled.lock().expect("lock").len(), 1, "billing processed it once");

    running.stop().await.expect("worker stops");
    let _ = delete_keys_under(&mut conn, &prefix).await;
}
