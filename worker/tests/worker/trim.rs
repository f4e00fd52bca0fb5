//! Safe trimming: never past an entry some group has not acknowledged; the cap
//! bounds only what every group has acknowledged; DLQs are never trimmed.

use redis::aio::MultiplexedConnection;
use sqlx::PgPool;
use uuid::Uuid;
use xentri_worker::runtime::Shared;

use crate::helpers::{
    database_url, entries, event, prefix, read_group, redis, settings, shared_state, xadd_event, xlen,
};

fn shared(pool: &PgPool, prefix: &str, cap: &str) -> Shared {
    shared_state(pool, settings(&database_url(&pool.connect_options()), prefix, &[("XENTRI_STREAMS__WORK_CAP", cap)]))
}

async fn read(conn: &mut MultiplexedConnection, key: &str, group: &str, count: usize) -> Vec<String> {
    read_group(conn, key, group, count).await.into_iter().map(|i| i.id).collect()
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn trimming_keeps_everything_a_group_still_needs(pool: PgPool) {
    let prefix = prefix();
    let shared = shared(&pool, &prefix, "5");
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let mut ids = Vec::new();
    for seq in 0..30 {
        ids.push(xadd_event(&mut conn, &work, &event(Uuid::new_v4(), seq)).await);
    }
    for group in ["fast", "slow"] {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&work)
            .arg(group)
            .arg("0")
            .query_async(&mut conn)
            .await
            .expect("group");
    }
    // fast reads and acks 25; slow reads 10 and acks only the first 4.
    let fast = read(&mut conn, &work, "fast", 25).await;
    let _: i64 = redis::cmd("XACK").arg(&work).arg("fast").arg(&fast).query_async(&mut conn).await.expect("ack");
    let slow = read(&mut conn, &work, "slow", 10).await;
    let _: i64 = redis::cmd("XACK").arg(&work).arg("slow").arg(&slow[..4]).query_async(&mut conn).await.expect("ack");

    let removed = xentri_worker::trimmer::trim(&shared, "events:work").await.expect("trim");
    assert_eq!(removed, 4, "only the entries both groups acknowledged, though the cap is 5");
    let left = entries(&mut conn, &work).await;
    assert_eq!(left.first().map(|e| e.id.clone()), Some(ids[4].clone()), "slow's oldest pending entry stays");

    // Once slow catches up and acks everything, the cap applies.
    let rest = read(&mut conn, &work, "slow", 100).await;
    let all: Vec<&String> = slow[4..].iter().chain(rest.iter()).collect();
    let _: i64 = redis::cmd("XACK").arg(&work).arg("slow").arg(&all).query_async(&mut conn).await.expect("ack");
    let rest = read(&mut conn, &work, "fast", 100).await;
    let _: i64 = redis::cmd("XACK").arg(&work).arg("fast").arg(&rest).query_async(&mut conn).await.expect("ack");
    xentri_worker::trimmer::trim(&shared, "events:work").await.expect("trim");
    assert_eq!(xlen(&mut conn, &work).await, 5);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_stream_without_groups_is_not_trimmed(pool: PgPool) {
    let prefix = prefix();
    let shared = shared(&pool, &prefix, "3");
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    for seq in 0..10 {
        xadd_event(&mut conn, &work, &event(Uuid::new_v4(), seq)).await;
    }
    // A group created later starts at the oldest entry: it must find all ten.
    assert_eq!(xentri_worker::trimmer::trim(&shared, "events:work").await.expect("trim"), 0);
    assert_eq!(xlen(&mut conn, &work).await, 10);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn unread_entries_are_never_trimmed(pool: PgPool) {
    let prefix = prefix();
    let shared = shared(&pool, &prefix, "2");
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&work)
        .arg("lagging")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("group");
    for seq in 0..10 {
        xadd_event(&mut conn, &work, &event(Uuid::new_v4(), seq)).await;
    }
    assert_eq!(xentri_worker::trimmer::trim(&shared, "events:work").await.expect("trim"), 0);
    assert_eq!(xlen(&mut conn, &work).await, 10);

    // DLQs are never trimmed, whatever their length.
    let dlq = format!("{prefix}events:dlq");
    for seq in 0..10 {
        xadd_event(&mut conn, &dlq, &event(Uuid::new_v4(), seq)).await;
    }
    let refused = xentri_worker::trimmer::trim(&shared, "events:dlq").await;
    assert!(refused.is_err(), "a DLQ is not a work stream");
    assert_eq!(xlen(&mut conn, &dlq).await, 10);
}

/// A group whose first two runs take long (its lane is busy), then quick.
struct Busy {
    runs: std::sync::atomic::AtomicUsize,
    handled: std::sync::Mutex<std::collections::HashSet<Uuid>>,
}

impl xentri_worker::handler::Handler for Busy {
    fn group(&self) -> &str {
        "busy"
    }

    fn streams(&self) -> Vec<String> {
        vec!["events:work".to_owned()]
    }

    fn accepts(&self, _event_type: &str) -> bool {
        true
    }

    fn handling(&self) -> xentri_worker::handler::Handling<'_> {
        xentri_worker::handler::Handling::Redis(self)
    }
}

impl xentri_worker::handler::RedisStoreHandler for Busy {
    fn handle<'a>(
        &'a self,
        delivery: xentri_worker::handler::RedisDelivery<'a>,
    ) -> xentri_worker::handler::BoxFuture<'a, Result<(), xentri_worker::handler::HandlerError>> {
        Box::pin(async move {
            if self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            }
            self.handled.lock().expect("lock").insert(delivery.event.id);
            Ok(())
        })
    }
}

/// The stream vanishes (Redis restarted empty, a flush, a failover) while one
/// group is busy: the other group recreates the stream and reads on, the
/// trimmer runs with a small cap — and the busy group, whose consumer group
/// is recreated later, must still find every entry appended meanwhile.
#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_group_recreated_late_after_its_stream_vanished_misses_nothing(pool: PgPool) {
    let prefix = prefix();
    let quick = std::sync::Arc::new(crate::helpers::Recorder::new("quick"));
    let busy = std::sync::Arc::new(Busy { runs: Default::default(), handled: Default::default() });
    let settings = settings(
        &database_url(&pool.connect_options()),
        &prefix,
        &[
            ("XENTRI_STREAMS__WORK_CAP", "20"),
            ("XENTRI_WORKER__GROUPS__BUSY__ENABLED", "true"),
            ("XENTRI_WORKER__GROUPS__BUSY__CONCURRENCY", "1"),
            ("XENTRI_WORKER__READ_COUNT", "1"),
        ],
    );
    let worker = crate::helpers::start(settings, vec![quick.clone(), busy.clone()]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    // Both groups exist once the worker runs.
    crate::helpers::wait_until(crate::helpers::DEADLINE, "both groups created", || {
        let mut conn = conn.clone();
        let work = work.clone();
        async move {
            let groups: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
                redis::cmd("XINFO").arg("GROUPS").arg(&work).query_async(&mut conn).await;
            groups.is_ok_and(|g| g.groups.len() == 2)
        }
    })
    .await;
    // Keep the busy group's lane occupied, then lose the stream.
    for seq in 0..2 {
        xadd_event(&mut conn, &work, &event(Uuid::new_v4(), seq)).await;
    }
    crate::helpers::wait_until(crate::helpers::DEADLINE, "the busy group started", || async {
        busy.runs.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
    .await;
    let _: () = redis::cmd("DEL").arg(&work).query_async(&mut conn).await.expect("DEL");
    let mut appended = std::collections::HashSet::new();
    for seq in 0..200 {
        let sent = event(Uuid::new_v4(), 100 + seq);
        appended.insert(sent.id);
        xadd_event(&mut conn, &work, &sent).await;
    }
    crate::helpers::wait_until(
        crate::helpers::DEADLINE,
        "the busy group handled every entry appended after the stream vanished",
        || async {
            let handled = busy.handled.lock().expect("lock");
            appended.iter().all(|id| handled.contains(id))
        },
    )
    .await;
    assert!(quick.calls().len() >= 200, "the quick group read on");
    worker.stop().await;
}
