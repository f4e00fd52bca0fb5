//! The Lua scripts of `xentri_core::scripts` run against a real Redis: the
//! replay rule is tested where it runs (there is no second copy of it in
//! Rust). Each test works under a key prefix of its own.

// Tests: a failed step panics with its cause, failing the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redis::Value;
use redis::aio::MultiplexedConnection;
use uuid::Uuid;
use xentri_core::scripts::REPLAY;

async fn connect() -> MultiplexedConnection {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    redis::Client::open(url).expect("a Redis URL").get_multiplexed_async_connection().await.expect("Redis answers")
}

/// `jobs:dlq` and `jobs:work` under a fresh prefix.
fn streams() -> (String, String) {
    let prefix = format!("t-{}:", Uuid::new_v4());
    (format!("{prefix}jobs:dlq"), format!("{prefix}jobs:work"))
}

async fn xadd(conn: &mut MultiplexedConnection, key: &str, fields: &[(&str, &str)]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*");
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    cmd.query_async(conn).await.expect("XADD")
}

/// Every entry of `key`: its id and its fields, in the order they were written.
async fn entries(conn: &mut MultiplexedConnection, key: &str) -> Vec<(String, Vec<(String, String)>)> {
    let reply: Value = redis::cmd("XRANGE").arg(key).arg("-").arg("+").query_async(conn).await.expect("XRANGE");
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).expect("UTF-8"),
        other => panic!("not a string: {other:?}"),
    };
    let Value::Array(items) = reply else { panic!("not an array: {reply:?}") };
    items
        .iter()
        .map(|item| {
            let Value::Array(parts) = item else { panic!("not an entry: {item:?}") };
            let Value::Array(flat) = &parts[1] else { panic!("no fields: {item:?}") };
            (text(&parts[0]), flat.chunks(2).map(|pair| (text(&pair[0]), text(&pair[1]))).collect())
        })
        .collect()
}

async fn remove(conn: &mut MultiplexedConnection, keys: &[&str]) {
    let _: i64 = redis::cmd("DEL").arg(keys).query_async(conn).await.expect("DEL");
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A dead letter as the worker writes it, of an entry replayed once before
/// (so it already carries a `target_group`).
const DEAD: [(&str, &str); 9] = [
    ("id", "0193a8f2-0000-7000-8000-000000000001"),
    ("type", "xentri.soul.updated.v1"),
    ("payload", "{}"),
    ("target_group", "earlier"),
    ("dlq_stream", "jobs:work"),
    ("dlq_id", "1732600000000-0"),
    ("dlq_group", "cache_invalidation"),
    ("dlq_error", "boom"),
    ("dlq_failed_at", "2026-11-26T10:00:00Z"),
];

#[tokio::test]
async fn replay_puts_the_entry_back_without_its_dlq_fields_for_the_group_that_gave_up_once() {
    let mut conn = connect().await;
    let (dlq, work) = streams();
    let id = xadd(&mut conn, &dlq, &DEAD).await;

    let replayed: Option<String> =
        REPLAY.key(&dlq).key(&work).arg(&id).arg("").invoke_async(&mut conn).await.expect("replayed");
    let on_work = entries(&mut conn, &work).await;
    assert_eq!(on_work.len(), 1);
    assert_eq!(Some(&on_work[0].0), replayed.as_ref());
    // The original fields in their order, the earlier target_group gone, the
    // failed group as the new one.
    assert_eq!(
        on_work[0].1,
        owned(&[
            ("id", "0193a8f2-0000-7000-8000-000000000001"),
            ("type", "xentri.soul.updated.v1"),
            ("payload", "{}"),
            ("target_group", "cache_invalidation"),
        ])
    );
    assert!(entries(&mut conn, &dlq).await.is_empty(), "moved, not copied");

    // A second replay of the same id (another operator) finds nothing.
    let again: Option<String> =
        REPLAY.key(&dlq).key(&work).arg(&id).arg("").invoke_async(&mut conn).await.expect("answered");
    assert_eq!(again, None);
    assert_eq!(entries(&mut conn, &work).await.len(), 1, "delivered once");
    remove(&mut conn, &[&dlq, &work]).await;
}

#[tokio::test]
async fn replay_to_a_named_group_and_refusal_when_no_group_is_known() {
    let mut conn = connect().await;
    let (dlq, work) = streams();
    let id = xadd(&mut conn, &dlq, &DEAD).await;
    let _: String =
        REPLAY.key(&dlq).key(&work).arg(&id).arg("event_counts").invoke_async(&mut conn).await.expect("replayed");
    let on_work = entries(&mut conn, &work).await;
    assert_eq!(on_work[0].1.last(), Some(&("target_group".to_owned(), "event_counts".to_owned())));

    // Written by hand, without dlq_group: no group to aim at, so it stays.
    let orphan = xadd(&mut conn, &dlq, &[("id", "x"), ("dlq_error", "boom")]).await;
    let refused: Result<Option<String>, redis::RedisError> =
        REPLAY.key(&dlq).key(&work).arg(&orphan).arg("").invoke_async(&mut conn).await;
    let error = refused.expect_err("refused");
    assert!(error.to_string().contains("entry has no dlq_group and no target group was given"), "{error}");
    assert_eq!(entries(&mut conn, &dlq).await.len(), 1, "the refused entry stays in the DLQ");
    assert_eq!(entries(&mut conn, &work).await.len(), 1);
    remove(&mut conn, &[&dlq, &work]).await;
}
