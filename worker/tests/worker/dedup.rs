//! What the runtime does on each de-duplication decision, in a running
//! worker: a recorded event is acked unhandled, and a duplicate that arrives
//! while the first copy runs waits for it, then is skipped. (The decision
//! itself is tested branch by branch in `runtime::dedup`.)

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_worker::handler::{Handler, Store};
use xentri_worker::testing::{Group, HandlerHarness, Scripted};

use crate::helpers::{
    DEADLINE, Recorder, database_url, event, pending, prefix, redis, settings, start, wait_until, xadd_event,
};

/// The count of `worker_messages_total` of `group` with `outcome`.
fn counted(group: &str, outcome: &str) -> String {
    let metrics = xentri_core::metrics::Metrics::install().render();
    let series = format!(r#"worker_messages_total{{stream="events:work",group="{group}",outcome="{outcome}"}} "#);
    metrics.lines().find_map(|line| line.strip_prefix(&series)).unwrap_or("0").to_owned()
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_event_recorded_as_processed_is_acked_without_its_handler(pool: PgPool) {
    // Counters register with the recorder installed when a lane starts.
    xentri_core::metrics::Metrics::install();
    let groups = [Group::redis("redis_done", Scripted::default()), Group::postgres("pg_done", Scripted::default())];
    let sent = event(Uuid::new_v4(), 1);
    for group in groups {
        let name = group.group().to_owned();
        let harness = HandlerHarness::start(&pool, Arc::new(group)).await;
        // Handled before, by another worker: its record is there (each group
        // looks in its own store only).
        let record = format!("{}processed:{name}:{}", harness.key_prefix(), sent.id);
        let _: () = redis::cmd("SET").arg(&record).arg(1).query_async(&mut harness.redis()).await.unwrap();
        sqlx::query("INSERT INTO processed_events (group_name, event_id) VALUES ($1, $2)")
            .bind(&name)
            .bind(sent.id)
            .execute(&pool)
            .await
            .unwrap();
        let entry = harness.push(&sent).await;
        harness.acked(&entry).await;
        assert!(harness.calls().is_empty(), "the handler of {name} did not run");
        assert_eq!(counted(&name, "skipped"), "1");
        assert_eq!(counted(&name, "ack"), "0");
        harness.stop().await;
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_duplicate_arriving_while_the_first_copy_runs_waits_for_it_then_is_skipped(pool: PgPool) {
    let make = |group: &str, store: Store| {
        let mut recorder = Recorder::new(group);
        recorder.store = store;
        // Long enough for the second copy to arrive while the first runs.
        recorder.delay = Duration::from_millis(300);
        Arc::new(recorder)
    };
    let (in_redis, in_postgres) = (make("redis_wait", Store::Redis), make("pg_wait", Store::Postgres));
    let prefix = prefix();
    let handlers: Vec<Arc<dyn Handler>> = vec![in_redis.clone(), in_postgres.clone()];
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let sent = event(Uuid::new_v4(), 1);
    // Both copies wait on the stream, so that one read takes them together.
    xadd_event(&mut conn, &work, &sent).await;
    xadd_event(&mut conn, &work, &sent).await;
    let worker = start(settings(&database_url(&pool.connect_options()), &prefix, &[]), handlers).await;
    wait_until(DEADLINE, "both copies settled by both groups", || async {
        let mut c = conn.clone();
        ["redis_wait", "pg_wait"].iter().all(|group| counted(group, "ack") == "1" && counted(group, "skipped") == "1")
            && pending(&mut c, &work, "redis_wait").await == 0
            && pending(&mut c, &work, "pg_wait").await == 0
    })
    .await;
    assert_eq!(in_redis.calls().len(), 1, "the Redis-store handler ran once");
    assert_eq!(in_postgres.calls().len(), 1, "the Postgres-store handler ran once");
    let count: i64 = sqlx::query_scalar("SELECT count FROM event_counts WHERE org_id = $1")
        .bind(sent.org_id)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 1, "the Postgres effect happened once");
    let record = format!("{prefix}processed:redis_wait:{}", sent.id);
    let recorded: bool = redis::cmd("EXISTS").arg(&record).query_async(&mut conn).await.expect("EXISTS");
    assert!(recorded, "the Redis record written with the ack");
    worker.stop().await;
}
