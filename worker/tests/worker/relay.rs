//! The relay: outbox rows reach their streams in position order, a batch per
//! round trip, and leave the outbox; one relay publishes at a time; a row
//! that commits late is published, never passed over; no transaction is open
//! while Redis answers.

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_worker::relay::Relay;
use xentri_worker::runtime::Shared;

use crate::helpers::{database_url, entries, outbox_visible, prefix, redis, settings, shared_state};

/// Appends `n` events and waits until the relay can see them.
async fn append(pool: &PgPool, org: Uuid, n: i64) {
    append_in(pool, org, n).await;
    outbox_visible(pool).await;
}

/// Appends `n` events with their outbox rows in one statement on `conn`;
/// returns their seqs.
async fn append_in<'c, E: sqlx::PgExecutor<'c>>(conn: E, org: Uuid, n: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "WITH ev AS (
            INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
            SELECT gen_random_uuid(), $1, 'xentri.soul.updated.v1', json_build_object('i', i), 'user:u',
                   '4bf92f3577b34da6a3ce929d0e0e4736', 'c', now()
            FROM generate_series(1, $2) AS i
            RETURNING seq, org_id
         ), ob AS (
            INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events:work', org_id FROM ev
         )
         SELECT seq FROM ev ORDER BY seq",
    )
    .bind(org)
    .bind(n)
    .fetch_all(conn)
    .await
    .expect("append")
}

async fn published_seqs(prefix: &str) -> Vec<i64> {
    let mut conn = redis().await;
    entries(&mut conn, &format!("{prefix}events:work"))
        .await
        .iter()
        .map(|e| e.decode().expect("well-formed entry").seq)
        .collect()
}

fn shared(pool: &PgPool, prefix: &str, batch: &str) -> Arc<Shared> {
    let settings =
        settings(&database_url(&pool.connect_options()), prefix, &[("XENTRI_WORKER__RELAY__BATCH_SIZE", batch)]);
    Arc::new(shared_state(pool, settings))
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn outbox_rows_are_published_in_order_and_removed(pool: PgPool) {
    let prefix = prefix();
    let mut relay = Relay::new(shared(&pool, &prefix, "100"));
    append(&pool, Uuid::new_v4(), 250).await;
    let mut batches = Vec::new();
    loop {
        let published = relay.publish_batch().await.expect("batch");
        if published == 0 {
            break;
        }
        batches.push(published);
    }
    assert_eq!(batches, [100, 100, 50], "one round trip per batch");
    let expected: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM system_events ORDER BY seq").fetch_all(&pool).await.expect("seqs");
    assert_eq!(published_seqs(&prefix).await, expected);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.expect("n");
    assert_eq!(left, 0);
    relay.end_session().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn one_relay_publishes_while_the_other_stands_by_then_takes_over(pool: PgPool) {
    let prefix = prefix();
    let (mut a, mut b) = (Relay::new(shared(&pool, &prefix, "50")), Relay::new(shared(&pool, &prefix, "50")));
    append(&pool, Uuid::new_v4(), 120).await;
    assert_eq!(a.publish_batch().await.expect("a"), 50, "the first relay takes the lock and publishes");
    assert_eq!(b.publish_batch().await.expect("b"), 0, "the second stands by");
    assert!(a.is_publishing() && !b.is_publishing());
    assert_eq!(a.publish_batch().await.expect("a"), 50);
    // The first relay's session ends (a stop, a lost connection): the second takes over.
    a.end_session().await;
    assert_eq!(b.publish_batch().await.expect("b"), 20, "the second took over where the outbox stands");
    assert!(b.is_publishing());
    let mut seqs = published_seqs(&prefix).await;
    assert_eq!(seqs.len(), 120, "no row published twice");
    seqs.dedup();
    assert_eq!(seqs.len(), 120);
    b.end_session().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_row_that_commits_late_is_published_after_the_rows_before_it_never_passed_over(pool: PgPool) {
    let prefix = prefix();
    let mut relay = Relay::new(shared(&pool, &prefix, "100"));
    let org = Uuid::new_v4();
    // An early writer takes its transaction id and stays open; later ones
    // append and commit, with lower seqs than the early writer will take.
    let mut early = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO processed_events (group_name, event_id) VALUES ('elsewhere', gen_random_uuid())")
        .execute(&mut *early)
        .await
        .expect("the early writer takes its transaction id");
    let later = append_in(&pool, org, 3).await;
    let early_seqs = append_in(&mut *early, org, 2).await;
    assert!(early_seqs[0] > later[2]);
    // Nothing is published past a transaction still running.
    assert_eq!(relay.publish_batch().await.expect("batch"), 0, "the later rows wait behind the open writer");
    early.commit().await.expect("commit");
    let mut published = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while published.len() < 5 {
        assert!(std::time::Instant::now() < deadline, "published only {published:?}");
        if relay.publish_batch().await.expect("batch") == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        published = published_seqs(&prefix).await;
    }
    assert_eq!(
        published,
        [early_seqs, later].concat(),
        "the early writer's rows first, then the later ones, each once"
    );
    relay.end_session().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_relay_lock_is_the_relay_class_of_the_two_key_form(pool: PgPool) {
    let prefix = prefix();
    let mut relay = Relay::new(shared(&pool, &prefix, "100"));
    append(&pool, Uuid::new_v4(), 3).await;
    // Another session holds (relay class, 0), as a publishing relay does.
    let mut other = pool.acquire().await.expect("a connection");
    let class = xentri_core::locks::LockClass::Relay.id();
    sqlx::query("SELECT pg_advisory_lock($1, 0)").bind(class).execute(&mut *other).await.expect("lock");
    assert_eq!(relay.publish_batch().await.expect("batch"), 0, "the lock is taken: no batch");
    sqlx::query("SELECT pg_advisory_unlock($1, 0)").bind(class).execute(&mut *other).await.expect("unlock");
    assert_eq!(relay.publish_batch().await.expect("batch"), 3);
    relay.end_session().await;
}
