//! The relay: outbox rows reach their streams in seq order, once per batch,
//! and leave the outbox; two relays never publish the same row.

use sqlx::PgPool;
use uuid::Uuid;
use xentri_worker::runtime::Shared;

use crate::helpers::{database_url, entries, prefix, redis, settings, shared_state};

async fn append(pool: &PgPool, org: Uuid, n: i64) {
    sqlx::query(
        "WITH ev AS (
            INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
            SELECT gen_random_uuid(), $1, 'xentri.soul.updated.v1', jsonb_build_object('i', i), 'user:u',
                   '4bf92f3577b34da6a3ce929d0e0e4736', 'c', now()
            FROM generate_series(1, $2) AS i
            RETURNING seq, org_id
         )
         INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events:work', org_id FROM ev",
    )
    .bind(org)
    .bind(n)
    .execute(pool)
    .await
    .expect("append");
}

fn shared(pool: &PgPool, prefix: &str, batch: &str) -> Shared {
    let settings =
        settings(&database_url(&pool.connect_options()), prefix, &[("XENTRI_WORKER__RELAY__BATCH_SIZE", batch)]);
    shared_state(pool, settings)
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn outbox_rows_are_published_in_seq_order_and_removed(pool: PgPool) {
    let prefix = prefix();
    let shared = shared(&pool, &prefix, "100");
    append(&pool, Uuid::new_v4(), 250).await;
    let mut batches = Vec::new();
    loop {
        let published = xentri_worker::relay::publish_batch(&shared).await.expect("batch");
        if published == 0 {
            break;
        }
        batches.push(published);
    }
    assert_eq!(batches, [100, 100, 50], "one round trip per batch");
    let mut conn = redis().await;
    let seqs: Vec<i64> = entries(&mut conn, &format!("{prefix}events:work"))
        .await
        .iter()
        .map(|e| e.decode().expect("well-formed entry").seq)
        .collect();
    let expected: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM system_events ORDER BY seq").fetch_all(&pool).await.expect("seqs");
    assert_eq!(seqs, expected);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.expect("n");
    assert_eq!(left, 0);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn two_relays_at_once_publish_each_row_once(pool: PgPool) {
    let prefix = prefix();
    let (a, b) = (shared(&pool, &prefix, "50"), shared(&pool, &prefix, "50"));
    append(&pool, Uuid::new_v4(), 1000).await;
    let run = |relay: Shared| async move {
        let mut total = 0;
        loop {
            let published = xentri_worker::relay::publish_batch(&relay).await.expect("batch");
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&relay.db).await.expect("n");
            total += published;
            if left == 0 {
                return total;
            }
            if published == 0 {
                tokio::task::yield_now().await;
            }
        }
    };
    let (from_a, from_b) = tokio::join!(run(a), run(b));
    assert_eq!(from_a + from_b, 1000);
    let mut conn = redis().await;
    let mut ids: Vec<Uuid> = entries(&mut conn, &format!("{prefix}events:work"))
        .await
        .iter()
        .map(|e| e.decode().expect("entry").id)
        .collect();
    assert_eq!(ids.len(), 1000, "no row published twice");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn batches_after_a_cursor_skip_lower_rows_and_a_full_scan_catches_them(pool: PgPool) {
    let prefix = prefix();
    let shared = shared(&pool, &prefix, "100");
    append(&pool, Uuid::new_v4(), 10).await;
    let seqs: Vec<i64> =
        sqlx::query_scalar("SELECT event_seq FROM outbox ORDER BY 1").fetch_all(&pool).await.expect("seqs");
    // As if the relay had published up to the 5th row and the lower ones had committed late.
    let (published, highest) = xentri_worker::relay::publish_batch_after(&shared, Some(seqs[4])).await.expect("batch");
    assert_eq!(published, 5);
    assert_eq!(highest, Some(seqs[9]));
    let left: Vec<i64> =
        sqlx::query_scalar("SELECT event_seq FROM outbox ORDER BY 1").fetch_all(&pool).await.expect("left");
    assert_eq!(left, seqs[..5]);
    assert_eq!(xentri_worker::relay::publish_batch(&shared).await.expect("full scan"), 5);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.expect("n");
    assert_eq!(left, 0);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_relay_lock_is_the_relay_class_of_the_two_key_form(pool: PgPool) {
    let prefix = prefix();
    let shared = shared(&pool, &prefix, "100");
    append(&pool, Uuid::new_v4(), 3).await;
    // Another session holds (relay class, 0), as a publishing relay does.
    let mut other = pool.acquire().await.expect("a connection");
    let class = xentri_core::locks::LockClass::Relay.id();
    sqlx::query("SELECT pg_advisory_lock($1, 0)").bind(class).execute(&mut *other).await.expect("lock");
    assert_eq!(xentri_worker::relay::publish_batch(&shared).await.expect("batch"), 0, "the lock is taken: no batch");
    sqlx::query("SELECT pg_advisory_unlock($1, 0)").bind(class).execute(&mut *other).await.expect("unlock");
    assert_eq!(xentri_worker::relay::publish_batch(&shared).await.expect("batch"), 3);
}
