//! Postgres-store groups handle a read batch in one transaction; a failure in
//! it rolls the batch back and every entry is handled on its own, the failing
//! one continuing with its next attempt.

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_worker::handler::Store;

use crate::helpers::{
    DEADLINE, Recorder, Step, database_url, entries, event, pending, prefix, redis, settings, start, wait_until,
    xadd_event, xlen,
};

const BACKLOG: i64 = 50;

/// A Postgres-store recorder, with a backlog of `BACKLOG` events of one org
/// (seq 0, 1, …) waiting on the stream before the worker starts, so that the
/// first read takes them all.
async fn backlog_then_start(
    pool: &PgPool,
    group: &str,
    script: &[Step],
) -> (crate::helpers::TestWorker, Arc<Recorder>, String, Vec<xentri_core::StoredEvent>) {
    let mut recorder = Recorder::new(group).script(script);
    recorder.store = Store::Postgres;
    let recorder = Arc::new(recorder);
    let prefix = prefix();
    let mut conn = redis().await;
    let org = Uuid::new_v4();
    let sent: Vec<_> = (0..BACKLOG).map(|seq| event(org, seq)).collect();
    for event in &sent {
        xadd_event(&mut conn, &format!("{prefix}events:work"), event).await;
    }
    let handlers = vec![recorder.clone() as Arc<dyn xentri_worker::handler::Handler>];
    let worker = start(settings(&database_url(&pool.connect_options()), &prefix, &[]), handlers).await;
    (worker, recorder, prefix, sent)
}

async fn processed(pool: &PgPool, group: &str) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT processed_at) FROM processed_events WHERE group_name = $1")
        .bind(group)
        .fetch_one(pool)
        .await
        .expect("processed records")
}

async fn counted(pool: &PgPool, org: Uuid) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(count), 0)::bigint FROM event_counts WHERE org_id = $1")
        .bind(org)
        .fetch_one(pool)
        .await
        .expect("event counts")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_read_batch_of_a_postgres_group_commits_in_one_transaction(pool: PgPool) {
    let (worker, recorder, prefix, sent) = backlog_then_start(&pool, "pg_batch", &[]).await;
    let work = format!("{prefix}events:work");
    let conn = redis().await;
    wait_until(DEADLINE, "the backlog handled and acked", || async {
        pending(&mut conn.clone(), &work, "pg_batch").await == 0 && processed(&pool, "pg_batch").await.0 == BACKLOG
    })
    .await;
    let (records, transactions) = processed(&pool, "pg_batch").await;
    assert_eq!(records, BACKLOG, "one processed record per event");
    // now() is the transaction's start: one value means one transaction.
    assert_eq!(transactions, 1, "the {BACKLOG} entries of one read committed in one transaction");
    assert_eq!(counted(&pool, sent[0].org_id).await, BACKLOG);
    assert_eq!(recorder.calls().len(), BACKLOG as usize, "each handler ran once");
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_permanent_failure_in_a_batch_dead_letters_that_entry_alone(pool: PgPool) {
    // Handling order is (org, type, seq): the third call is the event of seq 2.
    let (worker, recorder, prefix, sent) =
        backlog_then_start(&pool, "pg_strict", &[Step::Ok, Step::Ok, Step::Permanent]).await;
    let (work, dlq) = (format!("{prefix}events:work"), format!("{prefix}events:dlq"));
    let mut conn = redis().await;
    wait_until(DEADLINE, "the rest handled, the failing entry dead-lettered", || async {
        let mut c = conn.clone();
        pending(&mut c, &work, "pg_strict").await == 0
            && xlen(&mut c, &dlq).await == 1
            && processed(&pool, "pg_strict").await.0 == BACKLOG - 1
    })
    .await;
    let dead = entries(&mut conn, &dlq).await.remove(0);
    assert_eq!(dead.decode().expect("the dead letter keeps the event"), sent[2]);
    assert_eq!(dead.get("dlq_attempts"), Some("1"), "the attempt in the batch counts: not run again");
    let failing = recorder.calls().iter().filter(|c| c.event_id == sent[2].id).count();
    assert_eq!(failing, 1, "a permanent failure is not retried");
    assert_eq!(counted(&pool, sent[0].org_id).await, BACKLOG - 1, "the rolled-back effects happened once each");
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_transient_failure_in_a_batch_continues_with_that_entrys_second_attempt(pool: PgPool) {
    let (worker, recorder, prefix, sent) = backlog_then_start(&pool, "pg_retry", &[Step::Ok, Step::Transient]).await;
    let (work, dlq) = (format!("{prefix}events:work"), format!("{prefix}events:dlq"));
    let mut conn = redis().await;
    wait_until(DEADLINE, "every entry handled", || async {
        pending(&mut conn.clone(), &work, "pg_retry").await == 0 && processed(&pool, "pg_retry").await.0 == BACKLOG
    })
    .await;
    let attempts: Vec<u32> = recorder.calls().iter().filter(|c| c.event_id == sent[1].id).map(|c| c.attempt).collect();
    assert_eq!(attempts, [1, 2], "the failed attempt in the batch was the first");
    let others: Vec<u32> = recorder.calls().iter().filter(|c| c.event_id == sent[3].id).map(|c| c.attempt).collect();
    assert_eq!(others, [1], "an entry after the failure had no attempt in the batch");
    assert_eq!(counted(&pool, sent[0].org_id).await, BACKLOG, "exactly once each after the rollback");
    assert_eq!(xlen(&mut conn, &dlq).await, 0);
    worker.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn event_counts_counts_a_read_batch_of_several_orgs_and_types_exactly_in_one_transaction(pool: PgPool) {
    let prefix = prefix();
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    let orgs = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let types = ["xentri.soul.updated.v1", "xentri.lead.created.v1"];
    let mut expected = std::collections::BTreeMap::new();
    for seq in 0..60_i64 {
        let mut sent = event(orgs[seq as usize % 3], seq);
        let kind = types[(seq as usize / 3) % 2];
        sent.event_type = xentri_core::EventType::parse(kind).expect("a valid type");
        let (count, last) = expected.entry((sent.org_id, kind.to_owned())).or_insert((0_i64, 0_i64));
        *count += 1;
        *last = (*last).max(seq);
        xadd_event(&mut conn, &work, &sent).await;
    }
    let settings = settings(
        &database_url(&pool.connect_options()),
        &prefix,
        &[("XENTRI_WORKER__GROUPS__EVENT_COUNTS__ENABLED", "true")],
    );
    let worker = start(settings, Vec::new()).await;
    wait_until(DEADLINE, "the backlog counted", || async {
        pending(&mut conn.clone(), &work, "event_counts").await == 0 && processed(&pool, "event_counts").await.0 == 60
    })
    .await;
    assert_eq!(processed(&pool, "event_counts").await.1, 1, "one transaction for the read batch");
    let rows: Vec<(Uuid, String, i64, i64)> =
        sqlx::query_as("SELECT org_id, type, count, last_seq FROM event_counts ORDER BY org_id, type")
            .fetch_all(&pool)
            .await
            .expect("the projection");
    let got: std::collections::BTreeMap<(Uuid, String), (i64, i64)> =
        rows.into_iter().map(|(org, kind, count, last)| ((org, kind), (count, last))).collect();
    assert_eq!(got, expected, "a count and the highest seq per (org, type)");
    worker.stop().await;
}

/// `event_counts` transactions in different lane slots count the same org and
/// type without waiting on each other's row locks (a waiting transaction would
/// hold back the relay's commit horizon); two in the same slot do wait.
#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn count_transactions_in_other_slots_do_not_wait_for_each_other(pool: PgPool) {
    use xentri_core::{db::begin_as, roles::WORKER};
    use xentri_worker::handlers::counts::EventCounts;

    let counts = EventCounts::new(&settings(&database_url(&pool.connect_options()), &prefix(), &[]));
    let org = Uuid::new_v4();
    let events: Vec<_> = (1..=3).map(|seq| event(org, seq)).collect();
    let mut first = begin_as(&pool, WORKER, Some(org)).await.expect("first transaction");
    count_in(&counts, &mut first, &events[0], 0).await.expect("counted in slot 0");
    let org_after: String =
        sqlx::query_scalar("SELECT current_setting('app.org_id')").fetch_one(&mut *first).await.unwrap();
    assert_eq!(org_after, org.to_string(), "count_events sets the caller's org back");

    let mut second = begin_as(&pool, WORKER, Some(org)).await.expect("second transaction");
    sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *second).await.expect("lock timeout");
    count_in(&counts, &mut second, &events[1], 1).await.expect("slot 1 does not wait for slot 0's open transaction");
    second.commit().await.expect("second commits while the first is open");

    let mut third = begin_as(&pool, WORKER, Some(org)).await.expect("third transaction");
    sqlx::query("SET LOCAL lock_timeout = '100ms'").execute(&mut *third).await.expect("lock timeout");
    let waited = count_in(&counts, &mut third, &events[2], 0).await;
    assert!(waited.is_err(), "the same slot's row is locked by the open transaction");
    drop(third);

    first.commit().await.expect("first commits");
    assert_eq!(counted(&pool, org).await, 2, "the view adds the slots' rows up");
    let (count, last): (i64, i64) = sqlx::query_as("SELECT count, last_seq FROM event_counts WHERE org_id = $1")
        .bind(org)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((count, last), (2, 2), "one row per (org, type) in the view, with the highest seq");
}

/// `event_counts` counts `event` in `slot`, in `tx`.
async fn count_in(
    counts: &xentri_worker::handlers::counts::EventCounts,
    tx: &mut sqlx::PgConnection,
    event: &xentri_core::StoredEvent,
    slot: u16,
) -> Result<(), xentri_worker::handler::HandlerError> {
    use xentri_worker::handler::{Batch, PostgresStoreHandler};
    let events = [event];
    counts.handle_batch(Batch { events: &events, slot, tx }).expect("event_counts takes read batches").await
}
