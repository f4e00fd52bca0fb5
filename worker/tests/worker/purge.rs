//! Purges delete in bounded chunks, each committed on its own, as the worker
//! role with only the grants it needs: processed records past their
//! retention go, younger ones stay.

use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use xentri_worker::jobs::{PURGE_PROCESSED_EVENTS, enqueue};
use xentri_worker::purge::{self, Progress, Purge};

use crate::helpers::{DEADLINE, database_url, prefix, settings, shared_state, start, wait_until};

const DAY_SECS: i64 = 86_400;
const WEEK: Duration = Duration::from_secs(7 * 86_400);

/// Adds `n` processed records of `group` handled `age_secs` ago (one second
/// apart, older first).
async fn seed(pool: &PgPool, group: &str, n: i64, age_secs: i64) {
    sqlx::query(
        "INSERT INTO processed_events (group_name, event_id, processed_at)
         SELECT $1, gen_random_uuid(), now() - make_interval(secs => $3 + i) FROM generate_series(1, $2) AS i",
    )
    .bind(group)
    .bind(n)
    .bind(age_secs as f64)
    .execute(pool)
    .await
    .expect("processed records seeded");
}

/// Records of `group` (the test pool is a superuser's: it sees every
/// committed row, and only committed rows).
async fn records(pool: &PgPool, group: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE group_name = $1")
        .bind(group)
        .fetch_one(pool)
        .await
        .expect("processed records counted")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn processed_records_older_than_the_retention_are_deleted_in_committed_chunks_and_younger_ones_kept(
    pool: PgPool,
) {
    let role = xentri_core::roles::WORKER;
    seed(&pool, "old", 5_000, 8 * DAY_SECS).await;
    seed(&pool, "young", 700, 6 * DAY_SECS).await;
    seed(&pool, "fresh", 300, 0).await;

    // Between chunks no purge transaction is open: another connection already
    // sees each chunk's rows gone.
    let seen = Mutex::new(Vec::new());
    let progress = purge::run(&pool, role, Purge::ProcessedEvents { retention: WEEK }, 1_000, |progress| {
        let (pool, seen) = (&pool, &seen);
        async move {
            let left = records(pool, "old").await;
            seen.lock().expect("not poisoned").push((progress.chunks, progress.rows, left));
            ControlFlow::Continue(())
        }
    })
    .await
    .expect("the purge runs as the worker role");

    assert_eq!(progress, Progress { rows: 5_000, chunks: 6, complete: true }, "5 full chunks, then an empty one");
    assert_eq!(
        seen.into_inner().expect("not poisoned"),
        [(1, 1_000, 4_000), (2, 2_000, 3_000), (3, 3_000, 2_000), (4, 4_000, 1_000), (5, 5_000, 0)],
        "each chunk committed on its own"
    );
    assert_eq!(records(&pool, "old").await, 0);
    assert_eq!((records(&pool, "young").await, records(&pool, "fresh").await), (700, 300));

    // A purge told to stop after a chunk leaves the rest for the next run.
    seed(&pool, "old", 2_500, 8 * DAY_SECS).await;
    let progress = purge::run(&pool, role, Purge::ProcessedEvents { retention: WEEK }, 1_000, |_| async {
        ControlFlow::Break(())
    })
    .await
    .expect("the purge runs");
    assert_eq!(progress, Progress { rows: 1_000, chunks: 1, complete: false });
    assert_eq!(records(&pool, "old").await, 1_500);

    // The worker role may delete processed records and expired keys, and
    // nothing broader.
    let privileges: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT t, p, has_table_privilege($1::name, t, p)
           FROM unnest(ARRAY['processed_events', 'idempotency_keys']) AS t,
                unnest(ARRAY['DELETE', 'UPDATE', 'TRUNCATE']) AS p
          ORDER BY 1, 2",
    )
    .bind(role)
    .fetch_all(&pool)
    .await
    .expect("privileges read");
    let granted: Vec<(&str, &str)> =
        privileges.iter().filter(|(_, _, granted)| *granted).map(|(t, p, _)| (t.as_str(), p.as_str())).collect();
    assert_eq!(granted, [("idempotency_keys", "DELETE"), ("processed_events", "DELETE")]);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_processed_records_purge_job_runs_in_the_jobs_group(pool: PgPool) {
    let extra = [
        ("XENTRI_WORKER__GROUPS__JOBS__ENABLED", "true"),
        ("XENTRI_WORKER__JOBS__PURGE_CHUNK_ROWS", "500"),
        // A run may take half of it: room for every chunk on a busy machine.
        ("XENTRI_WORKER__VISIBILITY_TIMEOUT_MS", "60000"),
    ];
    let settings = settings(&database_url(&pool.connect_options()), &prefix(), &extra);
    seed(&pool, "old", 2_200, 8 * DAY_SECS).await;
    seed(&pool, "young", 100, 6 * DAY_SECS).await;
    let worker = start(settings.clone(), Vec::new()).await;
    let shared = shared_state(&pool, settings);
    enqueue(&shared, PURGE_PROCESSED_EVENTS, serde_json::json!({})).await.expect("job enqueued");
    wait_until(DEADLINE, "the job purged every old record", || async { records(&pool, "old").await == 0 }).await;
    worker.stop().await;
    assert_eq!(records(&pool, "young").await, 100);
}
