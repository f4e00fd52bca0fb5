//! Graceful shutdown: what a worker has read it finishes and acks; what it has
//! not read is left to the next worker; nothing is lost or handled twice.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    DEADLINE, Recorder, database_url, event, pending, prefix, redis, settings, start, wait_until, xadd_event,
};

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn in_flight_handlers_complete_and_are_acked(pool: PgPool) {
    let mut slow = Recorder::new("slow");
    slow.delay = Duration::from_millis(500);
    let slow = Arc::new(slow);
    let prefix = prefix();
    let url = database_url(&pool.connect_options());
    // Two handlers at a time, two entries per read: the lane reads ahead
    // max(concurrency, read count) × 2 = 4 entries, far fewer than the ten.
    let small = [
        ("XENTRI_WORKER__GROUPS__SLOW__ENABLED", "true"),
        ("XENTRI_WORKER__GROUPS__SLOW__CONCURRENCY", "2"),
        ("XENTRI_WORKER__READ_COUNT", "2"),
    ];
    let worker = start(settings(&url, &prefix, &small), vec![slow.clone()]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    for seq in 0..10 {
        xadd_event(&mut conn, &work, &event(Uuid::new_v4(), seq)).await;
    }
    // Stop while the first handlers run (half a second each).
    wait_until(DEADLINE, "handlers in flight", || async { !slow.calls().is_empty() }).await;
    worker.stop().await;
    let calls = slow.calls();
    assert!(calls.iter().all(|c| c.finished), "every started handler finished: {calls:?}");
    // What it had read it finished; it read nothing more once stopping.
    assert!((1..=4).contains(&calls.len()), "at most the 4 entries read ahead: {} handled", calls.len());
    let still_pending = pending(&mut conn, &work, "slow").await;
    assert_eq!(still_pending, 0, "nothing read is left unacked");

    // A new worker handles the rest, and nothing twice.
    let rest = Arc::new(Recorder::new("slow"));
    let worker = start(settings(&url, &prefix, &small), vec![rest.clone()]).await;
    wait_until(DEADLINE, "the rest handled", || async { calls.len() + rest.finished() == 10 }).await;
    let mut all: Vec<Uuid> = calls.iter().chain(rest.calls().iter()).map(|c| c.event_id).collect();
    assert_eq!(all.len(), 10, "ten handler runs in all");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10, "each event handled exactly once across the two workers");
    worker.stop().await;
}
