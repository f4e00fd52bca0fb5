//! The consumer-group runtime in a whole worker: reclaim, poison, targeting,
//! two workers sharing a group. One handler on its own (retry, DLQ routing,
//! malformed entries, duplicates) is in `handling.rs`.

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_core::StoredEvent;
use xentri_worker::handler::Store;
use xentri_worker::testing::{Group, HandlerHarness, Scripted};

use crate::helpers::{
    DEADLINE, Recorder, database_url, event, pending, prefix, read_group_as, redis, settings, start, wait_until, xadd,
    xadd_event,
};

async fn setup(
    pool: &PgPool,
    recorders: &[Arc<Recorder>],
    extra: &[(&str, &str)],
) -> (crate::helpers::TestWorker, String) {
    let prefix = prefix();
    let handlers = recorders.iter().map(|r| r.clone() as Arc<dyn xentri_worker::handler::Handler>).collect();
    let worker = start(settings(&database_url(&pool.connect_options()), &prefix, extra), handlers).await;
    (worker, prefix)
}

/// Creates `group` on the work stream under `prefix`, adds an event and has
/// consumer `crashed-1` of the group read it and die without acking; returns
/// the event and its entry id.
async fn read_by_a_crashed_consumer(prefix: &str, group: &str) -> (StoredEvent, String) {
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&work)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("group");
    let sent = event(Uuid::new_v4(), 1);
    let id = xadd_event(&mut conn, &work, &sent).await;
    let read = read_group_as(&mut conn, &work, group, "crashed-1", 1).await;
    assert_eq!(read.len(), 1);
    assert_eq!(pending(&mut conn, &work, group).await, 1);
    (sent, id)
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn entries_left_by_a_crashed_consumer_are_reclaimed(pool: PgPool) {
    let prefix = prefix();
    let (sent, id) = read_by_a_crashed_consumer(&prefix, "reclaimer").await;
    let settings = settings(&database_url(&pool.connect_options()), &prefix, &[]);
    let harness =
        HandlerHarness::start_with(settings, &pool, Arc::new(Group::redis("reclaimer", Scripted::default()))).await;
    let call = harness.handled(sent.id).await;
    harness.acked(&id).await;
    assert_eq!(call.attempt, 1, "a reclaim is not a failed attempt");
    harness.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_entry_that_keeps_killing_consumers_is_poison(pool: PgPool) {
    let prefix = prefix();
    let (_, id) = read_by_a_crashed_consumer(&prefix, "careful").await;
    // Delivered five times already (the default cap), each time to a consumer that died.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(format!("{prefix}events:work"))
        .arg("careful")
        .arg("crashed-5")
        .arg(0)
        .arg(&id)
        .arg("RETRYCOUNT")
        .arg(5)
        .query_async(&mut redis().await)
        .await
        .expect("claim");
    let settings = settings(&database_url(&pool.connect_options()), &prefix, &[]);
    let harness =
        HandlerHarness::start_with(settings, &pool, Arc::new(Group::redis("careful", Scripted::default()))).await;
    let dead = harness.dead_lettered(&id).await;
    harness.acked(&id).await;
    assert!(dead.get("dlq_error").is_some_and(|e| e.starts_with("poison: delivered 5 times")), "{dead:?}");
    assert!(harness.calls().is_empty(), "never handed to the handler again");
    harness.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn replayed_entries_go_only_to_their_target_group(pool: PgPool) {
    let target = Arc::new(Recorder::new("target"));
    let bystander = Arc::new(Recorder::new("bystander"));
    let (worker, prefix) = setup(&pool, &[target.clone(), bystander.clone()], &[]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let mut fields: Vec<(String, String)> =
        xentri_core::stream::encode(&event(Uuid::new_v4(), 1)).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    fields.push(("target_group".to_owned(), "target".to_owned()));
    // A hand replay with redis-cli keeps the dlq_* fields: they are ignored.
    fields.push(("dlq_error".to_owned(), "boom".to_owned()));
    xadd(&mut conn, &work, &fields).await;
    wait_until(DEADLINE, "handled by the target, acked by both", || async {
        let mut c = conn.clone();
        target.finished() == 1
            && pending(&mut c, &work, "target").await == 0
            && pending(&mut c, &work, "bystander").await == 0
    })
    .await;
    wait_until(DEADLINE, "bystander read it", || async {
        let mut c = conn.clone();
        let groups: redis::streams::StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(&work).query_async(&mut c).await.expect("groups");
        groups.groups.iter().all(|g| g.entries_read == Some(1) && g.pending == 0)
    })
    .await;
    assert_eq!(bystander.calls().len(), 0);
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn two_workers_share_the_work_and_each_event_takes_effect_once(pool: PgPool) {
    let make = || {
        let mut r = Recorder::new("shared");
        r.store = Store::Postgres;
        Arc::new(r)
    };
    let (first, second) = (make(), make());
    let prefix = prefix();
    let url = database_url(&pool.connect_options());
    let w1 = start(settings(&url, &prefix, &[]), vec![first.clone()]).await;
    let w2 = start(settings(&url, &prefix, &[]), vec![second.clone()]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let org = Uuid::new_v4();
    for seq in 0..300 {
        xadd_event(&mut conn, &work, &event(org, seq)).await;
    }
    wait_until(DEADLINE, "all 300 handled", || async { first.finished() + second.finished() >= 300 }).await;
    wait_until(DEADLINE, "nothing pending", || async { pending(&mut conn.clone(), &work, "shared").await == 0 }).await;
    assert!(
        first.finished() > 0 && second.finished() > 0,
        "both workers took part: {} / {}",
        first.finished(),
        second.finished()
    );
    let count: i64 = sqlx::query_scalar("SELECT count FROM event_counts WHERE org_id = $1")
        .bind(org)
        .fetch_one(&pool)
        .await
        .expect("n");
    assert_eq!(count, 300);
    let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE group_name = 'shared'")
        .fetch_one(&pool)
        .await
        .expect("n");
    assert_eq!(processed, 300);
    w1.stop().await;
    w2.stop().await;
}
