//! Graceful shutdown: in-flight handlers finish and are acked; none lost or repeated.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Recorder, database_url, event, eventually, pending, prefix, redis, settings, start, xadd_event};

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn in_flight_handlers_complete_and_are_acked(pool: PgPool) {
    let mut slow = Recorder::new("slow");
    slow.delay = Duration::from_millis(300);
    let slow = Arc::new(slow);
    let prefix = prefix();
    let url = database_url(&pool.connect_options());
    let two_at_a_time =
        [("XENTRI_WORKER__GROUPS__SLOW__ENABLED", "true"), ("XENTRI_WORKER__GROUPS__SLOW__CONCURRENCY", "2")];
    let worker = start(settings(&url, &prefix, &two_at_a_time), vec![slow.clone()]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    for seq in 0..6 {
        xadd_event(&mut conn, &work, &event(Uuid::new_v4(), seq)).await;
    }
    eventually("handlers in flight", || async { !slow.calls().is_empty() }).await;
    let started_before_stop = slow.calls().len();
    worker.stop().await;
    let calls = slow.calls();
    assert!(calls.iter().all(|c| c.finished), "every started handler finished: {calls:?}");
    assert!(calls.len() >= started_before_stop);
    // What finished is acked; what never started is still in the stream for the next worker.
    let still_pending = pending(&mut conn, &work, "slow").await;
    assert_eq!(still_pending, 0, "nothing handled is left unacked");

    // A new worker handles the rest; nothing is handled twice.
    let rest = Arc::new(Recorder::new("slow"));
    let worker = start(settings(&url, &prefix, &[]), vec![rest.clone()]).await;
    eventually("the rest handled", || async { calls.len() + rest.finished() == 6 }).await;
    let mut all: Vec<Uuid> = calls.iter().chain(rest.calls().iter()).map(|c| c.event_id).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "each event handled exactly once across the two workers");
    worker.stop().await;
}
