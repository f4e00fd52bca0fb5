//! What the runtime does on each de-duplication decision, in a running
//! worker: a recorded event is acked unhandled, and a duplicate that arrives
//! while the first copy runs waits for it, then is skipped. (The decision
//! itself is tested branch by branch in `runtime::dedup`.)

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_worker::handler::{Handler, Store};

use crate::helpers::{
    DEADLINE, Recorder, database_url, event, pending, prefix, redis, settings, start, wait_until, xadd_event,
};

fn recorder(group: &str, store: Store) -> Arc<Recorder> {
    let mut recorder = Recorder::new(group);
    recorder.store = store;
    Arc::new(recorder)
}

/// The count of `worker_messages_total` of `group` with `outcome`.
fn counted(group: &str, outcome: &str) -> String {
    let metrics = xentri_core::metrics::Metrics::install().render();
    let series = format!(r#"worker_messages_total{{stream="events:work",group="{group}",outcome="{outcome}"}} "#);
    metrics.lines().find_map(|line| line.strip_prefix(&series)).unwrap_or("0").to_owned()
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_event_recorded_as_processed_is_acked_without_its_handler(pool: PgPool) {
    let (in_redis, in_postgres) = (recorder("redis_done", Store::Redis), recorder("pg_done", Store::Postgres));
    let prefix = prefix();
    let handlers: Vec<Arc<dyn Handler>> = vec![in_redis.clone(), in_postgres.clone()];
    let worker = start(settings(&database_url(&pool.connect_options()), &prefix, &[]), handlers).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let sent = event(Uuid::new_v4(), 1);
    // Handled before, by another worker: each group's record is there.
    let record = format!("{prefix}processed:redis_done:{}", sent.id);
    let _: () = redis::cmd("SET").arg(&record).arg(1).query_async(&mut conn).await.expect("SET");
    sqlx::query("INSERT INTO processed_events (group_name, event_id) VALUES ('pg_done', $1)")
        .bind(sent.id)
        .execute(&pool)
        .await
        .expect("a record");
    xadd_event(&mut conn, &work, &sent).await;
    wait_until(DEADLINE, "acked by both groups", || async {
        let mut c = conn.clone();
        counted("redis_done", "skipped") == "1"
            && counted("pg_done", "skipped") == "1"
            && pending(&mut c, &work, "redis_done").await == 0
            && pending(&mut c, &work, "pg_done").await == 0
    })
    .await;
    assert_eq!(in_redis.calls().len(), 0, "the Redis-store handler did not run");
    assert_eq!(in_postgres.calls().len(), 0, "the Postgres-store handler did not run");
    assert_eq!(counted("redis_done", "ack"), "0");
    assert_eq!(counted("pg_done", "ack"), "0");
    worker.stop().await;
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
