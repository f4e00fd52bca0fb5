//! Safe trimming: never past an entry some group has not acknowledged; the cap
//! bounds only what every group has acknowledged; DLQs are never trimmed.

use redis::aio::MultiplexedConnection;
use sqlx::PgPool;
use uuid::Uuid;
use xentri_worker::runtime::Shared;

use crate::helpers::{database_url, entries, event, prefix, redis, settings, xadd_event, xlen};

async fn shared(pool: &PgPool, prefix: &str, cap: &str) -> Shared {
    let settings = settings(&database_url(&pool.connect_options()), prefix, &[("XENTRI_STREAMS__WORK_CAP", cap)]);
    let redis_pool = xentri_core::redis_pool::connect_lazy(&settings.redis).expect("pool");
    let client = redis::Client::open(crate::helpers::redis_url()).expect("client");
    Shared::new(redis_pool, client, pool.clone(), std::sync::Arc::new(settings))
}

async fn read(conn: &mut MultiplexedConnection, key: &str, group: &str, count: usize) -> Vec<String> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("c1")
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await
        .expect("read");
    reply.keys.into_iter().flat_map(|k| k.ids.into_iter().map(|i| i.id)).collect()
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn trimming_keeps_everything_a_group_still_needs(pool: PgPool) {
    let prefix = prefix();
    let shared = shared(&pool, &prefix, "5").await;
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
    let shared = shared(&pool, &prefix, "3").await;
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
    let shared = shared(&pool, &prefix, "2").await;
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
