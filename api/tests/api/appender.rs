//! Group commit: appends that wait together are written in one transaction,
//! each under its own org; a bad one fails alone.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;
use xentri_api::appender::{AppendError, AppendItem, Appender, AppenderConfig};
use xentri_api::db::Db;
use xentri_core::store::AppendOutcome;
use xentri_core::{Actor, EventType, NewEvent};

use crate::helpers::{DEADLINE, wait_until};

fn appender(pool: &PgPool) -> Appender {
    Appender::spawn(
        Db::new(pool.clone(), "xentri_api"),
        AppenderConfig { stream: "events:work".into(), key_ttl_secs: 60, writers: 1, batch_max: 64 },
    )
}

fn item(org_id: Uuid, key: &str, event_type: &str) -> AppendItem {
    AppendItem {
        event: NewEvent {
            id: Uuid::now_v7(),
            org_id,
            event_type: EventType::parse(event_type).expect("a valid type"),
            payload: serde_json::value::RawValue::from_string(format!(r#"{{"key":"{key}"}}"#)).expect("json"),
            actor: Actor::user("u1").expect("an actor"),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            correlation_id: "c1".into(),
            causation_id: None,
            occurred_at: chrono::Utc::now(),
        },
        key: key.to_owned(),
        request_hash: key.as_bytes().to_vec(),
    }
}

/// Holds the one writer in its first batch: the outbox is locked until the
/// returned transaction ends, and the writer is seen waiting for that lock.
async fn hold_the_writer(
    pool: &PgPool,
    appender: &Appender,
) -> (Transaction<'static, Postgres>, tokio::task::JoinHandle<()>) {
    let mut blocker = pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE outbox IN EXCLUSIVE MODE").execute(&mut *blocker).await.expect("lock");
    let first = {
        let appender = appender.clone();
        tokio::spawn(async move {
            let outcome = appender.append(item(Uuid::new_v4(), "first", "xentri.soul.updated.v1")).await;
            assert!(matches!(outcome, Ok(AppendOutcome::Appended(_))), "{outcome:?}");
        })
    };
    wait_until(DEADLINE, "the writer waiting for the outbox lock", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database())",
        )
        .fetch_one(pool)
        .await
        .expect("activity")
    })
    .await;
    (blocker, first)
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn appends_waiting_together_share_one_transaction_each_under_its_own_org(pool: PgPool) {
    let appender = appender(&pool);
    let (blocker, first) = hold_the_writer(&pool, &appender).await;

    let orgs: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let mut items: Vec<AppendItem> =
        (0..40).map(|n| item(orgs[n % orgs.len()], &format!("k-{n}"), "xentri.soul.updated.v1")).collect();
    // The same org and key twice in one batch: the second is in flight.
    items.push(item(orgs[0], "k-0", "xentri.soul.updated.v1"));
    let tasks: Vec<_> = items
        .iter()
        .cloned()
        .map(|item| {
            let appender = appender.clone();
            tokio::spawn(async move { appender.append(item).await })
        })
        .collect();
    wait_until(DEADLINE, "41 appends queued", || async { appender.queued() == 41 }).await;
    blocker.rollback().await.expect("release");
    first.await.expect("first append");

    let mut seqs = Vec::new();
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(AppendOutcome::Appended(seq)) if n < 40 => seqs.push(seq),
            Ok(AppendOutcome::KeyInFlight) if n == 40 => {}
            other => panic!("append {n}: {other:?}"),
        }
    }
    let transactions: i64 = sqlx::query_scalar("SELECT count(DISTINCT tx_id) FROM system_events WHERE seq = ANY($1)")
        .bind(&seqs)
        .fetch_one(&pool)
        .await
        .expect("tx ids");
    assert_eq!(transactions, 1, "the 40 waiting appends were written in one transaction");

    // Every row carries its own item's org, and each org's view holds its five.
    for appended in &items[..40] {
        let org: Uuid = sqlx::query_scalar("SELECT org_id FROM system_events WHERE id = $1")
            .bind(appended.event.id)
            .fetch_one(&pool)
            .await
            .expect("row");
        assert_eq!(org, appended.event.org_id);
    }
    for org in &orgs {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SELECT set_config('role', 'xentri_api', true), set_config('app.org_id', $1, true)")
            .bind(org.to_string())
            .execute(&mut *tx)
            .await
            .expect("scope");
        let visible: i64 =
            sqlx::query_scalar("SELECT count(*) FROM system_events").fetch_one(&mut *tx).await.expect("count");
        assert_eq!(visible, 5);
    }
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.expect("outbox");
    assert_eq!(outbox, 41);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn one_bad_append_in_a_batch_fails_alone(pool: PgPool) {
    let appender = appender(&pool);
    let (blocker, first) = hold_the_writer(&pool, &appender).await;
    let org = Uuid::new_v4();
    let tasks: Vec<_> = (0..11)
        .map(|n| {
            let mut item = item(org, &format!("k-{n}"), "xentri.soul.updated.v1");
            if n == 5 {
                // The database refuses a payload that is not an object (the api would have answered 422).
                item.event.payload = serde_json::value::RawValue::from_string("[5]".to_owned()).expect("json");
            }
            let appender = appender.clone();
            tokio::spawn(async move { appender.append(item).await })
        })
        .collect();
    wait_until(DEADLINE, "11 appends queued", || async { appender.queued() == 11 }).await;
    blocker.rollback().await.expect("release");
    first.await.expect("first append");

    for (n, task) in tasks.into_iter().enumerate() {
        match (n, task.await.expect("task")) {
            (5, Err(AppendError::Database(error))) => {
                assert!(matches!(*error, sqlx::Error::Database(_)), "{error}")
            }
            (5, other) => panic!("the bad append: {other:?}"),
            (_, Ok(AppendOutcome::Appended(_))) => {}
            (n, other) => panic!("append {n}: {other:?}"),
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM system_events").fetch_one(&pool).await.expect("count");
    assert_eq!(stored, 11, "the first append and the ten good ones");
}
