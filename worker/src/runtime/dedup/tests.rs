//! The de-duplication decision, branch by branch, against real Redis and
//! PostgreSQL: a lane is built by hand and asked directly.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::mpsc;
use xentri_test_support::{TestSettings, database_url, redis_url, stored_event, unique_key_prefix};

use super::*;
use crate::handler::{
    BoxFuture, Handler, HandlerError, PgDelivery, PostgresStoreHandler, RedisDelivery, RedisStoreHandler, Store,
};
use crate::runtime::Shared;
use crate::runtime::acker::Ack;
use crate::runtime::telemetry::LaneMetrics;

const GROUP: &str = "dedup";

/// A group of either store whose handler is never run: only asked about.
struct Probe(Store);

impl Handler for Probe {
    fn group(&self) -> &str {
        GROUP
    }

    fn streams(&self) -> Vec<String> {
        vec!["events:work".to_owned()]
    }

    fn accepts(&self, _event_type: &str) -> bool {
        true
    }

    fn handling(&self) -> Handling<'_> {
        match self.0 {
            Store::Redis => Handling::Redis(self),
            Store::Postgres => Handling::Postgres(self),
        }
    }
}

impl RedisStoreHandler for Probe {
    fn handle<'a>(&'a self, _delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async { Ok(()) })
    }
}

impl PostgresStoreHandler for Probe {
    fn handle<'a>(&'a self, _delivery: PgDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A lane of group [`GROUP`] on `pool`, under a Redis key prefix of its own;
/// the receiver keeps its ack channel open.
fn lane(pool: &PgPool, store: Store) -> (Lane, mpsc::Receiver<Ack>) {
    let settings = TestSettings::new(&database_url(&pool.connect_options())).key_prefix(&unique_key_prefix()).load();
    let redis = xentri_core::redis_pool::connect_lazy(&settings.redis).expect("redis pool");
    let client = redis::Client::open(redis_url()).expect("redis url");
    let shared = Arc::new(Shared::new(redis, client, pool.clone(), Arc::new(settings)));
    let (acks, received) = mpsc::channel(16);
    let lane = Lane {
        stream_key: shared.keys.key("events:work"),
        dlq_key: shared.keys.key("events:dlq"),
        consumer: shared.consumer_name(),
        shared,
        handler: Arc::new(Probe(store)),
        group: GROUP.to_owned(),
        stream: "events:work".to_owned(),
        dlq: "events:dlq".to_owned(),
        slots: crate::runtime::slots::Slots::new(1),
        in_flight: Mutex::default(),
        dedup: Memory::default(),
        acks,
        metrics: LaneMetrics::new("events:work", GROUP),
    };
    (lane, received)
}

fn event() -> StoredEvent {
    stored_event(Uuid::new_v4(), 1)
}

/// The decision on one delivery of `event` with `standing`.
async fn ask<'l>(lane: &'l Lane, event: &StoredEvent, standing: &mut Standing<'l>, records: Records<'_>) -> Decision {
    let mut decisions = decide(lane, &mut [Ask { event, standing }], records).await.expect("a decision");
    assert_eq!(decisions.len(), 1, "one decision per ask");
    decisions.remove(0)
}

/// The decision on one delivery of `event` with `standing`, in a new
/// transaction of a Postgres-store group, and that transaction.
async fn ask_in_transaction<'l>(
    lane: &'l Lane,
    event: &StoredEvent,
    standing: &mut Standing<'l>,
) -> (Decision, sqlx::Transaction<'static, sqlx::Postgres>) {
    let mut tx = begin(lane).await;
    let decision = ask(lane, event, standing, Records::Postgres(&mut tx)).await;
    (decision, tx)
}

/// An attempt of a Postgres-store group that the decision lets run, and whose
/// transaction then rolls back (the handler failed).
async fn an_attempt_rolled_back<'l>(lane: &'l Lane, event: &StoredEvent, standing: &mut Standing<'l>) {
    let (decision, tx) = ask_in_transaction(lane, event, standing).await;
    assert_eq!(decision, Decision::Handle);
    drop(tx);
}

async fn begin(lane: &Lane) -> sqlx::Transaction<'static, sqlx::Postgres> {
    xentri_core::db::begin_as(&lane.shared.db, xentri_core::roles::WORKER, None).await.expect("a transaction")
}

async fn set_redis_record(lane: &Lane, event: &StoredEvent) {
    let mut conn = lane.shared.redis.get().await.expect("redis");
    let key = record_key(lane, &event.id.to_string());
    redis::cmd("SET").arg(&key).arg(1).query_async::<()>(&mut conn).await.expect("SET");
}

async fn postgres_records(pool: &PgPool, event: &StoredEvent) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE group_name = $1 AND event_id = $2")
        .bind(GROUP)
        .bind(event.id)
        .fetch_one(pool)
        .await
        .expect("processed records")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_new_event_of_a_redis_store_group_is_handled_and_held(pool: PgPool) {
    let (lane, _acks) = lane(&pool, Store::Redis);
    let sent = event();
    let mut first = Standing::new(None);
    assert_eq!(ask(&lane, &sent, &mut first, Records::Redis).await, Decision::Handle);
    let mut second = Standing::new(None);
    assert_eq!(ask(&lane, &sent, &mut second, Records::Redis).await, Decision::WaitForHolder, "held by the first");
    assert_eq!(ask(&lane, &sent, &mut first, Records::Redis).await, Decision::Handle, "a later attempt");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_delivery_waits_for_its_holder_then_sees_what_it_did(pool: PgPool) {
    let (lane, _acks) = lane(&pool, Store::Redis);
    let sent = event();
    let never = CancellationToken::new();

    // The holder fails and lets go: the waiting delivery runs.
    let mut holder = Standing::new(None);
    assert_eq!(ask(&lane, &sent, &mut holder, Records::Redis).await, Decision::Handle);
    let mut waiting = Standing::new(None);
    assert_eq!(ask(&lane, &sent, &mut waiting, Records::Redis).await, Decision::WaitForHolder);
    drop(holder);
    assert!(holder_gone(&lane, sent.id, &never).await);
    assert_eq!(ask(&lane, &sent, &mut waiting, Records::Redis).await, Decision::Handle);

    // It succeeds: the next one skips, and writes the record its ack has not
    // written yet.
    let mut next = Standing::new(Some(false));
    assert_eq!(ask(&lane, &sent, &mut next, Records::Redis).await, Decision::WaitForHolder);
    let record = waiting.handled(&lane, &sent);
    assert_eq!(record, Some(record_key(&lane, &sent.id.to_string())), "the ack writes the record");
    assert!(holder_gone(&lane, sent.id, &never).await);
    let record_again = record_key(&lane, &sent.id.to_string());
    assert_eq!(
        ask(&lane, &sent, &mut next, Records::Redis).await,
        Decision::AckDuplicate(Duplicate::DoneHere { record_again })
    );
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn waiting_for_a_holder_ends_at_shutdown(pool: PgPool) {
    let (lane, _acks) = lane(&pool, Store::Redis);
    let sent = event();
    let mut holder = Standing::new(None);
    assert_eq!(ask(&lane, &sent, &mut holder, Records::Redis).await, Decision::Handle);
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    assert!(!holder_gone(&lane, sent.id, &shutdown).await, "left pending");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_redis_record_makes_a_duplicate_whether_prefetched_or_looked_up(pool: PgPool) {
    let (lane, _acks) = lane(&pool, Store::Redis);
    let sent = event();
    assert_eq!(
        ask(&lane, &sent, &mut Standing::new(Some(true)), Records::Redis).await,
        Decision::AckDuplicate(Duplicate::InRedis),
        "prefetched"
    );
    set_redis_record(&lane, &sent).await;
    assert_eq!(
        ask(&lane, &sent, &mut Standing::new(None), Records::Redis).await,
        Decision::AckDuplicate(Duplicate::InRedis),
        "looked up"
    );
    // Done here lately and recorded: nothing to write again.
    Standing::new(None).handled(&lane, &sent);
    assert_eq!(
        ask(&lane, &sent, &mut Standing::new(None), Records::Redis).await,
        Decision::AckDuplicate(Duplicate::InRedis)
    );
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_prefetch_answers_for_each_entry_of_a_read_batch(pool: PgPool) {
    let (lane, _acks) = lane(&pool, Store::Redis);
    let (recorded, new) = (event(), event());
    set_redis_record(&lane, &recorded).await;
    let entry = |fields: Vec<(&str, String)>| StreamEntry {
        id: "1-0".to_owned(),
        fields: fields.into_iter().map(|(name, value)| (name.to_owned(), value)).collect(),
    };
    let entries = [
        entry(xentri_core::stream::encode(&recorded)),
        entry(vec![("hello", "world".to_owned())]),
        entry(xentri_core::stream::encode(&new)),
    ];
    assert_eq!(prefetch(&lane, &entries).await, [Some(true), None, Some(false)]);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_postgres_store_group_records_in_the_transaction_at_every_attempt(pool: PgPool) {
    let (lane, _acks) = lane(&pool, Store::Postgres);
    let sent = event();
    let mut standing = Standing::new(None);

    // The first attempt fails: its record goes with its rollback.
    an_attempt_rolled_back(&lane, &sent, &mut standing).await;
    assert_eq!(postgres_records(&pool, &sent).await, 0);

    // The second, holding its claim, records again; the commit keeps it.
    let (decision, tx) = ask_in_transaction(&lane, &sent, &mut standing).await;
    assert_eq!(decision, Decision::Handle);
    tx.commit().await.expect("commit");
    assert_eq!(postgres_records(&pool, &sent).await, 1);
    assert_eq!(standing.handled(&lane, &sent), None, "no Redis record to write");

    // Recently done means nothing to a Postgres-store group: the record does.
    let mut tx = begin(&lane).await;
    assert_eq!(
        ask(&lane, &sent, &mut Standing::new(None), Records::Postgres(&mut tx)).await,
        Decision::AckDuplicate(Duplicate::InPostgres)
    );
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_committed_record_makes_a_duplicate_even_for_a_delivery_holding_its_claim(pool: PgPool) {
    let (lane, _acks) = lane(&pool, Store::Postgres);
    let sent = event();
    let mut standing = Standing::new(None);
    an_attempt_rolled_back(&lane, &sent, &mut standing).await;
    // Meanwhile another worker handles the event.
    sqlx::query("INSERT INTO processed_events (group_name, event_id) VALUES ($1, $2)")
        .bind(GROUP)
        .bind(sent.id)
        .execute(&pool)
        .await
        .expect("a record");
    let mut tx = begin(&lane).await;
    assert_eq!(
        ask(&lane, &sent, &mut standing, Records::Postgres(&mut tx)).await,
        Decision::AckDuplicate(Duplicate::InPostgres)
    );
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_read_batch_of_a_postgres_store_group_is_decided_in_one_transaction(pool: PgPool) {
    let (lane, _acks) = lane(&pool, Store::Postgres);
    let (recorded, in_flight, new) = (event(), event(), event());
    sqlx::query("INSERT INTO processed_events (group_name, event_id) VALUES ($1, $2)")
        .bind(GROUP)
        .bind(recorded.id)
        .execute(&pool)
        .await
        .expect("a record");
    // Another delivery of `in_flight` runs in its own transaction, its record
    // written and not committed.
    let mut holder = Standing::new(None);
    let mut holder_tx = begin(&lane).await;
    assert_eq!(ask(&lane, &in_flight, &mut holder, Records::Postgres(&mut holder_tx)).await, Decision::Handle);

    let mut standings: Vec<Standing<'_>> = (0..3).map(|_| Standing::new(None)).collect();
    let events = [&recorded, &in_flight, &new];
    let mut asks: Vec<Ask<'_, '_>> =
        events.iter().zip(standings.iter_mut()).map(|(event, standing)| Ask { event, standing }).collect();
    let mut tx = begin(&lane).await;
    // Were the held event's record written here, this would wait on the
    // holder's row until it ended.
    let decisions = tokio::time::timeout(Duration::from_secs(5), decide(&lane, &mut asks, Records::Postgres(&mut tx)))
        .await
        .expect("no wait on the holder's row")
        .expect("decisions");
    assert_eq!(decisions, [Decision::AckDuplicate(Duplicate::InPostgres), Decision::WaitForHolder, Decision::Handle]);
    tx.commit().await.expect("commit");
    holder_tx.commit().await.expect("commit");
    assert_eq!(postgres_records(&pool, &new).await, 1);
    assert_eq!(postgres_records(&pool, &in_flight).await, 1, "recorded once, by its holder");
}
