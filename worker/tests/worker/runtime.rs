//! The consumer-group runtime: success, retry with backoff, DLQ routing,
//! malformed entries, reclaim, poison, duplicates, targeting, two workers.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_worker::handler::Store;

use crate::helpers::{
    Recorder, Step, database_url, entries, event, eventually, pending, prefix, redis, settings, start, xadd,
    xadd_event, xlen,
};

async fn setup(
    pool: &PgPool,
    recorders: &[Arc<Recorder>],
    extra: &[(&str, &str)],
) -> (crate::helpers::TestWorker, String) {
    let prefix = prefix();
    let handlers = recorders.iter().map(|r| r.clone() as Arc<dyn xentri_worker::handler::Handler>).collect();
    let worker = start(settings(&database_url(&pool.connect_options()), &prefix, extra), handlers).await;
    (worker, prefix)
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn transient_failures_are_retried_with_backoff(pool: PgPool) {
    let recorder = Arc::new(Recorder::new("retrying").script(&[Step::Transient, Step::Transient, Step::Ok]));
    let (worker, prefix) = setup(&pool, std::slice::from_ref(&recorder), &[]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let sent = event(Uuid::new_v4(), 1);
    eventually("group created", || {
        let mut conn = conn.clone();
        let work = work.clone();
        async move { redis::cmd("EXISTS").arg(&work).query_async::<bool>(&mut conn).await.unwrap_or(false) }
    })
    .await;
    xadd_event(&mut conn, &work, &sent).await;
    eventually("third attempt succeeded and was acked", || async {
        recorder.finished() == 3 && pending(&mut conn.clone(), &work, "retrying").await == 0
    })
    .await;
    let calls = recorder.calls();
    assert!(calls.iter().all(|c| c.event_id == sent.id));
    assert_eq!(calls.iter().map(|c| c.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    // Base 100 ms, factor 3, no jitter: 100 ms then 300 ms between attempts.
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(100) && gaps[0] < Duration::from_millis(250), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(300) && gaps[1] < Duration::from_millis(450), "{gaps:?}");
    let metrics = xentri_core::metrics::Metrics::install().render();
    assert!(
        metrics.contains(r#"worker_messages_total{stream="events:work",group="retrying",outcome="retry"} 2"#),
        "two retries counted:\n{metrics}"
    );
    assert_eq!(xlen(&mut conn, &format!("{prefix}events:dlq")).await, 0);
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn three_failures_dead_letter_the_entry_with_every_field(pool: PgPool) {
    let recorder = Arc::new(Recorder::new("failing").script(&[Step::Transient, Step::Transient, Step::Transient]));
    let (worker, prefix) = setup(&pool, std::slice::from_ref(&recorder), &[]).await;
    let mut conn = redis().await;
    let (work, dlq) = (format!("{prefix}events:work"), format!("{prefix}events:dlq"));
    let sent = event(Uuid::new_v4(), 7);
    let origin_id = xadd_event(&mut conn, &work, &sent).await;
    eventually("dead-lettered", || async { xlen(&mut conn.clone(), &dlq).await == 1 }).await;
    assert_eq!(recorder.calls().len(), 3);
    let dead = entries(&mut conn, &dlq).await.remove(0);
    assert_eq!(dead.decode().expect("original fields kept"), sent);
    assert_eq!(dead.get("dlq_stream"), Some("events:work"));
    assert_eq!(dead.get("dlq_id"), Some(origin_id.as_str()));
    assert_eq!(dead.get("dlq_group"), Some("failing"));
    assert!(dead.get("dlq_consumer").is_some_and(|c| c.contains(&std::process::id().to_string())));
    assert_eq!(dead.get("dlq_attempts"), Some("3"));
    assert_eq!(dead.get("dlq_error"), Some("scripted transient failure"));
    assert!(dead.get("dlq_failed_at").is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    assert_eq!(pending(&mut conn, &work, "failing").await, 0, "origin acked");
    eventually("dead-letter hook called", || async {
        recorder.dead_letters.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_permanent_failure_dead_letters_after_one_attempt(pool: PgPool) {
    let recorder = Arc::new(Recorder::new("strict").script(&[Step::Permanent]));
    let (worker, prefix) = setup(&pool, std::slice::from_ref(&recorder), &[]).await;
    let mut conn = redis().await;
    let (work, dlq) = (format!("{prefix}events:work"), format!("{prefix}events:dlq"));
    xadd_event(&mut conn, &work, &event(Uuid::new_v4(), 1)).await;
    eventually("dead-lettered", || async { xlen(&mut conn.clone(), &dlq).await == 1 }).await;
    assert_eq!(recorder.calls().len(), 1);
    let dead = entries(&mut conn, &dlq).await.remove(0);
    assert_eq!(dead.get("dlq_attempts"), Some("1"));
    assert_eq!(dead.get("dlq_error"), Some("permanent: scripted permanent failure"));
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn malformed_entries_are_dead_lettered_and_consuming_goes_on(pool: PgPool) {
    let recorder = Arc::new(Recorder::new("sturdy"));
    let (worker, prefix) = setup(&pool, std::slice::from_ref(&recorder), &[]).await;
    let mut conn = redis().await;
    let (work, dlq) = (format!("{prefix}events:work"), format!("{prefix}events:dlq"));
    let mut bad_payload: Vec<(String, String)> =
        xentri_core::stream::encode(&event(Uuid::new_v4(), 1)).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (k, v) in &mut bad_payload {
        if k == "payload" {
            *v = "{not json".to_owned();
        }
    }
    xadd(&mut conn, &work, &bad_payload).await;
    xadd(&mut conn, &work, &[("hello".to_owned(), "world".to_owned())]).await;
    let good = event(Uuid::new_v4(), 2);
    xadd_event(&mut conn, &work, &good).await;
    eventually("good entry handled", || async { recorder.finished() == 1 }).await;
    eventually("both malformed entries dead-lettered", || async { xlen(&mut conn.clone(), &dlq).await == 2 }).await;
    assert_eq!(recorder.calls()[0].event_id, good.id);
    // Entries run concurrently: the DLQ order is not the stream order.
    let mut errors: Vec<String> =
        entries(&mut conn, &dlq).await.iter().filter_map(|e| e.get("dlq_error").map(str::to_owned)).collect();
    errors.sort();
    assert!(errors[0].starts_with("malformed entry: invalid field `payload`"), "{errors:?}");
    assert_eq!(errors[1], "malformed entry: missing field `id`");
    eventually("nothing pending", || async { pending(&mut conn.clone(), &work, "sturdy").await == 0 }).await;
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_entry_that_is_not_text_is_dead_lettered_unread_with_what_can_be_kept(pool: PgPool) {
    let recorder = Arc::new(Recorder::new("strict"));
    let (worker, prefix) = setup(&pool, std::slice::from_ref(&recorder), &[]).await;
    let mut conn = redis().await;
    let (work, dlq) = (format!("{prefix}events:work"), format!("{prefix}events:dlq"));
    // A whole event whose payload holds a byte that is not UTF-8: with the
    // byte replaced it would still parse as JSON, and a handler would run on
    // a payload nobody sent.
    let sent = event(Uuid::new_v4(), 1);
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&work).arg("*");
    for (name, value) in xentri_core::stream::encode(&sent) {
        match name {
            "payload" => cmd.arg(name).arg(&b"{\"note\":\"caf\xe9\"}"[..]),
            _ => cmd.arg(name).arg(value),
        };
    }
    let _: String = cmd.query_async(&mut conn).await.expect("xadd");
    let good = event(Uuid::new_v4(), 2);
    xadd_event(&mut conn, &work, &good).await;
    eventually("good entry handled", || async { recorder.finished() == 1 }).await;
    eventually("the entry dead-lettered", || async { xlen(&mut conn.clone(), &dlq).await == 1 }).await;
    let calls = recorder.calls();
    assert_eq!(calls.len(), 1, "no handler saw the entry that is not text");
    assert_eq!(calls[0].event_id, good.id);
    let dead = entries(&mut conn, &dlq).await;
    assert_eq!(dead[0].get("dlq_error"), Some("malformed entry: field `payload` is not a UTF-8 string"));
    assert_eq!(dead[0].get("payload"), Some("{\"note\":\"caf\u{fffd}\"}"), "kept, the bad byte replaced");
    assert_eq!(dead[0].get("id"), Some(sent.id.to_string().as_str()));
    eventually("nothing pending", || async { pending(&mut conn.clone(), &work, "strict").await == 0 }).await;
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn entries_left_by_a_crashed_consumer_are_reclaimed(pool: PgPool) {
    let recorder = Arc::new(Recorder::new("reclaimer"));
    let prefix = prefix();
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    // A consumer of the group reads an entry and dies without acking.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&work)
        .arg("reclaimer")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("group");
    let sent = event(Uuid::new_v4(), 1);
    xadd_event(&mut conn, &work, &sent).await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("reclaimer")
        .arg("crashed-1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&work)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("read");
    assert_eq!(pending(&mut conn, &work, "reclaimer").await, 1);

    let handlers = vec![recorder.clone() as Arc<dyn xentri_worker::handler::Handler>];
    let worker = start(settings(&database_url(&pool.connect_options()), &prefix, &[]), handlers).await;
    eventually("reclaimed and handled", || async {
        recorder.finished() == 1 && pending(&mut conn.clone(), &work, "reclaimer").await == 0
    })
    .await;
    let call = &recorder.calls()[0];
    assert_eq!(call.event_id, sent.id);
    assert_eq!(call.attempt, 1, "a reclaim is not a failed attempt");
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_entry_that_keeps_killing_consumers_is_poison(pool: PgPool) {
    let recorder = Arc::new(Recorder::new("careful"));
    let prefix = prefix();
    let mut conn = redis().await;
    let (work, dlq) = (format!("{prefix}events:work"), format!("{prefix}events:dlq"));
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&work)
        .arg("careful")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("group");
    let id = xadd_event(&mut conn, &work, &event(Uuid::new_v4(), 1)).await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("careful")
        .arg("crashed-1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&work)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("read");
    // Delivered five times already (the default cap), each time to a consumer that died.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&work)
        .arg("careful")
        .arg("crashed-5")
        .arg(0)
        .arg(&id)
        .arg("RETRYCOUNT")
        .arg(5)
        .query_async(&mut conn)
        .await
        .expect("claim");

    let handlers = vec![recorder.clone() as Arc<dyn xentri_worker::handler::Handler>];
    let worker = start(settings(&database_url(&pool.connect_options()), &prefix, &[]), handlers).await;
    eventually("poison dead-lettered", || async { xlen(&mut conn.clone(), &dlq).await == 1 }).await;
    let dead = entries(&mut conn, &dlq).await.remove(0);
    assert!(dead.get("dlq_error").is_some_and(|e| e.starts_with("poison: delivered 5 times")), "{dead:?}");
    assert_eq!(recorder.calls().len(), 0, "never handed to the handler again");
    assert_eq!(pending(&mut conn, &work, "careful").await, 0);
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn duplicate_deliveries_take_effect_once(pool: PgPool) {
    let mut in_postgres = Recorder::new("pg_once");
    in_postgres.store = Store::Postgres;
    let in_postgres = Arc::new(in_postgres);
    let in_redis = Arc::new(Recorder::new("redis_once"));
    let (worker, prefix) = setup(&pool, &[in_postgres.clone(), in_redis.clone()], &[]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let sent = event(Uuid::new_v4(), 1);
    // The relay publishes at least once: the same event twice.
    xadd_event(&mut conn, &work, &sent).await;
    xadd_event(&mut conn, &work, &sent).await;
    eventually("both entries acked by both groups", || async {
        let mut c = conn.clone();
        let done = entries(&mut c, &work).await.len() == 2;
        done && pending(&mut c, &work, "pg_once").await == 0
            && pending(&mut c, &work, "redis_once").await == 0
            && in_redis.finished() >= 1
            && in_postgres.finished() >= 1
    })
    .await;
    // Wait until each group has read both entries (its last-delivered id is the newest).
    eventually("both entries read", || async {
        let mut c = conn.clone();
        let groups: redis::streams::StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(&work).query_async(&mut c).await.expect("groups");
        groups.groups.iter().all(|g| g.entries_read == Some(2) && g.pending == 0)
    })
    .await;
    let count: i64 = sqlx::query_scalar("SELECT count FROM event_counts WHERE org_id = $1")
        .bind(sent.org_id)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 1, "the Postgres effect happened once");
    assert_eq!(in_redis.finished(), 1, "the Redis-recorded handler ran once");
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn replayed_entries_go_only_to_their_target_group(pool: PgPool) {
    let target = Arc::new(Recorder::new("target"));
    let bystander = Arc::new(Recorder::new("bystander"));
    let (worker, prefix) = setup(&pool, &[target.clone(), bystander.clone()], &[]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let mut fields: Vec<(String, String)> =
        xentri_core::stream::encode(&event(Uuid::new_v4(), 1)).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    fields.push(("target_group".to_owned(), "target".to_owned()));
    // A hand replay with redis-cli keeps the dlq_* fields: they are ignored.
    fields.push(("dlq_error".to_owned(), "boom".to_owned()));
    xadd(&mut conn, &work, &fields).await;
    eventually("handled by the target, acked by both", || async {
        let mut c = conn.clone();
        target.finished() == 1
            && pending(&mut c, &work, "target").await == 0
            && pending(&mut c, &work, "bystander").await == 0
    })
    .await;
    eventually("bystander read it", || async {
        let mut c = conn.clone();
        let groups: redis::streams::StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(&work).query_async(&mut c).await.expect("groups");
        groups.groups.iter().all(|g| g.entries_read == Some(1) && g.pending == 0)
    })
    .await;
    assert_eq!(bystander.calls().len(), 0);
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn two_workers_share_the_work_and_each_event_takes_effect_once(pool: PgPool) {
    let make = || {
        let mut r = Recorder::new("shared");
        r.store = Store::Postgres;
        Arc::new(r)
    };
    let (first, second) = (make(), make());
    let prefix = prefix();
    let url = database_url(&pool.connect_options());
    let w1 = start(settings(&url, &prefix, &[]), vec![first.clone()]).await;
    let w2 = start(settings(&url, &prefix, &[]), vec![second.clone()]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let org = Uuid::new_v4();
    for seq in 0..300 {
        xadd_event(&mut conn, &work, &event(org, seq)).await;
    }
    eventually("all 300 handled", || async { first.finished() + second.finished() >= 300 }).await;
    eventually("nothing pending", || async { pending(&mut conn.clone(), &work, "shared").await == 0 }).await;
    assert!(
        first.finished() > 0 && second.finished() > 0,
        "both workers took part: {} / {}",
        first.finished(),
        second.finished()
    );
    let count: i64 = sqlx::query_scalar("SELECT count FROM event_counts WHERE org_id = $1")
        .bind(org)
        .fetch_one(&pool)
        .await
        .expect("n");
    assert_eq!(count, 300);
    let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE group_name = 'shared'")
        .fetch_one(&pool)
        .await
        .expect("n");
    assert_eq!(processed, 300);
    w1.stop().await;
    w2.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_lost_processed_record_is_written_again_when_a_republished_event_is_skipped(pool: PgPool) {
    let recorder = Arc::new(Recorder::new("forgetful"));
    let (worker, prefix) = setup(&pool, std::slice::from_ref(&recorder), &[]).await;
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let sent = event(Uuid::new_v4(), 1);
    let record = format!("{prefix}processed:forgetful:{}", sent.id);
    xadd_event(&mut conn, &work, &sent).await;
    eventually("handled and recorded", || async {
        let mut c = conn.clone();
        pending(&mut c, &work, "forgetful").await == 0
            && redis::cmd("EXISTS").arg(&record).query_async::<bool>(&mut c).await.unwrap_or(false)
    })
    .await;
    // Redis loses the record (restarted empty, flushed); the event is republished.
    let _: () = redis::cmd("DEL").arg(&record).query_async(&mut conn).await.expect("DEL");
    xadd_event(&mut conn, &work, &sent).await;
    eventually("the republished entry acked and the record back", || async {
        let mut c = conn.clone();
        pending(&mut c, &work, "forgetful").await == 0
            && entries(&mut c, &work).await.len() == 2
            && redis::cmd("EXISTS").arg(&record).query_async::<bool>(&mut c).await.unwrap_or(false)
    })
    .await;
    let ttl: i64 = redis::cmd("TTL").arg(&record).query_async(&mut conn).await.expect("TTL");
    assert!(ttl > 0, "the record written again expires like the first: TTL {ttl}");
    assert_eq!(recorder.calls().len(), 1, "the handler ran once: the republished entry was a skip");
    worker.stop().await;
}
