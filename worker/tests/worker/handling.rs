//! One handler against a real stream through the runtime's lane, without the
//! rest of the worker (`xentri_worker::testing`): retry with backoff, dead
//! letters in the DLQ format, malformed and undecodable entries, duplicate
//! deliveries.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_core::stream::{encode, field};
use xentri_test_support::stored_event;
use xentri_worker::testing::{CallResult, Group, HandlerHarness, Scripted, Step};

use crate::helpers::counted_effects;

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn transient_failures_are_retried_with_backoff_then_succeed(pool: PgPool) {
    // Counters register with the recorder installed when the lane starts.
    let metrics = xentri_core::metrics::Metrics::install();
    let handler = Group::redis("retrying", Scripted::new(&[Step::Transient, Step::Transient]));
    let harness = HandlerHarness::start(&pool, Arc::new(handler)).await;
    let sent = stored_event(Uuid::new_v4(), 1);
    let entry = harness.push(&sent).await;
    harness.handled(sent.id).await;
    harness.acked(&entry).await;
    let calls = harness.calls();
    assert!(calls.iter().all(|c| c.event_id == sent.id && c.entry_id == entry));
    assert_eq!(
        calls.iter().map(|c| (c.attempt, c.result)).collect::<Vec<_>>(),
        [(1, CallResult::Transient), (2, CallResult::Transient), (3, CallResult::Ok)]
    );
    // Base 100 ms, factor 3, no jitter: 100 ms then 300 ms between attempts.
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(100) && gaps[0] < Duration::from_millis(250), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(300) && gaps[1] < Duration::from_millis(450), "{gaps:?}");
    let rendered = metrics.render();
    assert!(
        rendered.contains(r#"worker_messages_total{stream="events:work",group="retrying",outcome="retry"} 2"#),
        "two retries counted:\n{rendered}"
    );
    assert!(harness.dead_letters().await.is_empty());
    harness.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn three_transient_failures_dead_letter_the_entry_with_every_field(pool: PgPool) {
    let handler = Group::redis("failing", Scripted::new(&[Step::Transient, Step::Transient, Step::Transient]));
    let harness = HandlerHarness::start(&pool, Arc::new(handler)).await;
    let sent = stored_event(Uuid::new_v4(), 7);
    let entry = harness.push(&sent).await;
    let dead = harness.dead_lettered(&entry).await;
    harness.acked(&entry).await;
    assert_eq!(harness.calls().len(), 3);
    assert_eq!(dead.decode().expect("the original fields kept"), sent);
    assert_eq!(dead.get("dlq_stream"), Some("events:work"));
    assert_eq!(dead.get("dlq_group"), Some("failing"));
    assert!(dead.get("dlq_consumer").is_some_and(|c| c.contains(&std::process::id().to_string())));
    assert_eq!(dead.get("dlq_attempts"), Some("3"));
    assert_eq!(dead.get("dlq_error"), Some("scripted transient failure"));
    assert!(dead.get("dlq_failed_at").is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    let hooks = harness.dead_letter_hooks();
    assert_eq!(hooks.len(), 1, "the dead-letter hook called once");
    assert_eq!(hooks[0].id, entry);
    harness.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_permanent_failure_dead_letters_the_entry_in_the_dlq_format_after_one_attempt(pool: PgPool) {
    let handler = Group::redis("strict", Scripted::new(&[Step::Permanent]));
    let harness = HandlerHarness::start(&pool, Arc::new(handler)).await;
    let sent = stored_event(Uuid::new_v4(), 1);
    let entry = harness.push(&sent).await;
    let dead = harness.dead_lettered(&entry).await;
    harness.acked(&entry).await;
    assert_eq!(harness.calls().iter().map(|c| c.result).collect::<Vec<_>>(), [CallResult::Permanent]);
    // SPEC.md: every original field, plus the dlq_* fields and nothing else.
    let original = encode(&sent);
    for (name, value) in &original {
        assert_eq!(dead.get(name), Some(value.as_str()), "original field {name} kept");
    }
    let mut added: Vec<&str> =
        dead.fields.iter().map(|(k, _)| k.as_str()).filter(|k| !original.iter().any(|(o, _)| o == k)).collect();
    added.sort_unstable();
    assert_eq!(
        added,
        ["dlq_attempts", "dlq_consumer", "dlq_error", "dlq_failed_at", "dlq_group", "dlq_id", "dlq_stream"]
    );
    assert_eq!(dead.get("dlq_id"), Some(entry.as_str()));
    assert_eq!(dead.get("dlq_attempts"), Some("1"));
    assert_eq!(dead.get("dlq_error"), Some("permanent: scripted permanent failure"));
    assert_eq!(harness.pending().await, 0);
    harness.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn malformed_entries_are_dead_lettered_unhandled_and_consuming_goes_on(pool: PgPool) {
    let harness = HandlerHarness::start(&pool, Arc::new(Group::redis("sturdy", Scripted::default()))).await;
    let bad_json: Vec<(&str, String)> = encode(&stored_event(Uuid::new_v4(), 1))
        .into_iter()
        .map(|(k, v)| if k == field::PAYLOAD { (k, "{not json".to_owned()) } else { (k, v) })
        .collect();
    let bad_json = bad_json.iter().map(|(k, v)| (*k, v.as_bytes())).collect::<Vec<_>>();
    let not_json = harness.push_fields(&bad_json).await;
    let no_fields = harness.push_fields(&[("hello", b"world")]).await;
    let good = stored_event(Uuid::new_v4(), 2);
    harness.push(&good).await;
    harness.handled(good.id).await;
    let dead = harness.dead_lettered(&not_json).await;
    assert!(
        dead.get("dlq_error").is_some_and(|e| e.starts_with("malformed entry: invalid field `payload`")),
        "{dead:?}"
    );
    assert_eq!(dead.get("dlq_attempts"), Some("0"));
    let dead = harness.dead_lettered(&no_fields).await;
    assert_eq!(dead.get("dlq_error"), Some("malformed entry: missing field `id`"));
    assert_eq!(dead.get("hello"), Some("world"), "what there was is kept");
    harness.settled().await;
    assert_eq!(harness.calls().len(), 1, "no handler saw a malformed entry");
    harness.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_entry_that_is_not_text_is_dead_lettered_as_undecodable(pool: PgPool) {
    let harness = HandlerHarness::start(&pool, Arc::new(Group::redis("strict", Scripted::default()))).await;
    // A whole event whose payload holds a byte that is not UTF-8: with the
    // byte replaced it would still parse as JSON, and a handler would run on
    // a payload nobody sent.
    let sent = stored_event(Uuid::new_v4(), 1);
    let encoded = encode(&sent);
    let fields: Vec<(&str, &[u8])> = encoded
        .iter()
        .map(|(k, v)| if *k == field::PAYLOAD { (*k, &b"{\"note\":\"caf\xe9\"}"[..]) } else { (*k, v.as_bytes()) })
        .collect();
    let entry = harness.push_fields(&fields).await;
    let good = stored_event(Uuid::new_v4(), 2);
    harness.push(&good).await;
    harness.handled(good.id).await;
    let dead = harness.dead_lettered(&entry).await;
    harness.acked(&entry).await;
    assert_eq!(harness.calls().len(), 1, "no handler saw the entry that is not text");
    assert_eq!(dead.get("dlq_error"), Some("malformed entry: field `payload` is not a UTF-8 string"));
    assert_eq!(dead.get("payload"), Some("{\"note\":\"caf\u{fffd}\"}"), "kept, the bad byte replaced");
    assert_eq!(dead.get("id"), Some(sent.id.to_string().as_str()));
    harness.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_duplicate_delivery_runs_a_redis_store_handler_once(pool: PgPool) {
    let harness = HandlerHarness::start(&pool, Arc::new(Group::redis("redis_once", Scripted::default()))).await;
    let sent = stored_event(Uuid::new_v4(), 1);
    // The relay publishes at least once: the same event twice.
    let first = harness.push(&sent).await;
    harness.handled(sent.id).await;
    let second = harness.push(&sent).await;
    harness.acked(&first).await;
    harness.acked(&second).await;
    assert_eq!(harness.calls().len(), 1, "the handler ran once");
    let record = format!("{}processed:redis_once:{}", harness.key_prefix(), sent.id);
    let recorded: bool = redis::cmd("EXISTS").arg(&record).query_async(&mut harness.redis()).await.unwrap();
    assert!(recorded, "the Redis record written with the ack");
    harness.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn duplicate_deliveries_take_effect_once_in_postgres(pool: PgPool) {
    let handler = Group::postgres("pg_once", Scripted::default());
    let harness = HandlerHarness::start(&pool, Arc::new(handler)).await;
    let sent = stored_event(Uuid::new_v4(), 1);
    // Both copies in one read batch, and a third after the first is handled.
    harness.push(&sent).await;
    harness.push(&sent).await;
    harness.handled(sent.id).await;
    harness.push(&sent).await;
    harness.settled().await;
    assert_eq!(harness.calls().len(), 1, "the handler ran once");
    assert_eq!(counted_effects(&pool, sent.org_id).await, 1, "the Postgres effect happened once");
    harness.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_lost_processed_record_is_written_again_when_a_republished_event_is_skipped(pool: PgPool) {
    let harness = HandlerHarness::start(&pool, Arc::new(Group::redis("forgetful", Scripted::default()))).await;
    let mut conn = harness.redis();
    let sent = stored_event(Uuid::new_v4(), 1);
    let record = format!("{}processed:forgetful:{}", harness.key_prefix(), sent.id);
    let first = harness.push(&sent).await;
    harness.acked(&first).await;
    let recorded: bool = redis::cmd("EXISTS").arg(&record).query_async(&mut conn).await.unwrap();
    assert!(recorded, "the record is written before the ack");
    // Redis loses the record (restarted empty, flushed); the event is republished.
    let _: () = redis::cmd("DEL").arg(&record).query_async(&mut conn).await.unwrap();
    let again = harness.push(&sent).await;
    harness.acked(&again).await;
    let ttl: i64 = redis::cmd("TTL").arg(&record).query_async(&mut conn).await.unwrap();
    assert!(ttl > 0, "the record written again expires like the first: TTL {ttl}");
    assert_eq!(harness.calls().len(), 1, "the handler ran once: the republished entry was a skip");
    harness.stop().await;
}
