//! The write path without a global lock, through the built binaries: two api
//! processes and a writer outside the api append at once while clients tail
//! every org, and none of them misses or repeats an event; the relay holds no
//! transaction while Redis answers.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;
use xentri_core::store::{AppendOutcome, NewEventRecord, TxId, append_events};
use xentri_e2e::processes::{BACKLOG_TYPES, Database, seed_backlog, start_api, start_worker};
use xentri_e2e::{delete_keys_under, eventually, redis_connection, redis_url, unique_key_prefix};

/// The dev secret of `config/test.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// Events in all.
const EVENTS: usize = 20_000;
/// Of which the writer outside the api appends.
const DIRECT: usize = 4_000;
/// Its batch: one transaction, events of every org.
const DIRECT_BATCH: usize = 40;
/// Orgs the events are spread over, each tailed by its own client.
const ORGS: usize = 4;
/// Requests in flight per api process.
const IN_FLIGHT: usize = 16;

fn token(org: Uuid) -> String {
    xentri_api::auth::token::dev_token(DEV_SECRET, org, "user_tail", Duration::from_secs(3600))
        .expect("a dev token is minted")
}

/// Posts events `next..` (shared counter, up to `until`) to the api at `base`,
/// `IN_FLIGHT` at a time, spread over `orgs`; returns the non-201 answers.
async fn post(base: String, orgs: Arc<Vec<Uuid>>, next: Arc<AtomicUsize>, until: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let tokens: Arc<Vec<String>> = Arc::new(orgs.iter().map(|org| token(*org)).collect());
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (client, tokens, next, base) = (client.clone(), tokens.clone(), next.clone(), base.clone());
        posters.spawn(async move {
            let mut failures = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= until {
                    return failures;
                }
                let response = client
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(&tokens[n % tokens.len()])
                    .header("Idempotency-Key", format!("tail-{n}"))
                    .json(&serde_json::json!({
                        "type": "xentri.soul.updated.v1",
                        "payload": xentri_test_support::valid_payload_with("xentri.soul.updated.v1", serde_json::json!({"n": n})),
                    }))
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 201 => {}
                    Ok(response) => failures.push(format!("{n}: {}", response.status())),
                    Err(error) => failures.push(format!("{n}: {error}")),
                }
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = posters.join_next().await {
        failures.extend(done.expect("a poster task"));
    }
    failures
}

/// The writer outside the api: batches of events of every org through
/// `append_events`, each transaction taking its id first and appending a
/// moment later, so its events have a transaction id below others' that
/// commit before it (the interleaving a `seq` cursor would skip on).
async fn write_directly(pool: PgPool, orgs: Arc<Vec<Uuid>>) {
    for batch in 0..DIRECT / DIRECT_BATCH {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SELECT pg_current_xact_id()").execute(&mut *tx).await.expect("the transaction id is taken");
        tokio::time::sleep(Duration::from_millis(5 + (batch % 4) as u64 * 5)).await;
        let ids: Vec<Uuid> = (0..DIRECT_BATCH).map(|_| Uuid::now_v7()).collect();
        let now = chrono::Utc::now();
        let records: Vec<NewEventRecord<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| NewEventRecord {
                org_id: orgs[i % orgs.len()],
                idempotency_key: None,
                request_hash: None,
                id: *id,
                event_type: "xentri.lead.created.v1",
                payload: "{}",
                actor: "service:direct",
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
                correlation_id: "direct",
                causation_id: None,
                occurred_at: now,
            })
            .collect();
        let outcomes =
            append_events(&mut tx, "xentri_api", "events:work", 60.0, &records).await.expect("append_events");
        assert!(outcomes.iter().all(|o| matches!(o, AppendOutcome::Appended(_))), "{outcomes:?}");
        tx.commit().await.expect("commit");
    }
}

/// One org's tailing client: polls with `after` = the last `next` until
/// `done` is set and a poll returns nothing; returns the seqs in the order
/// it was given them.
async fn tail(base: String, org: Uuid, done: Arc<AtomicBool>) -> Vec<i64> {
    let client = reqwest::Client::new();
    let token = token(org);
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let finished = done.load(Ordering::Acquire);
        let url = match &cursor {
            Some(after) => format!("{base}/api/v1/events?limit=1000&after={after}"),
            None => format!("{base}/api/v1/events?limit=1000"),
        };
        let page: serde_json::Value = client
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("the list answers")
            .json()
            .await
            .expect("a JSON page");
        let data = page["data"].as_array().expect("data");
        seen.extend(data.iter().map(|e| e["seq"].as_i64().expect("seq")));
        cursor = page["next"].as_str().map(str::to_owned).or(cursor);
        if data.is_empty() {
            if finished {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `Ok` once every transaction still running on the server is younger than
/// `tx` (lists and the relay then see what it wrote).
async fn below_horizon(pool: &PgPool, tx: TxId) -> Result<(), String> {
    let passed: bool = sqlx::query_scalar("SELECT $1 < pg_snapshot_xmin(pg_current_snapshot())")
        .bind(tx)
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())?;
    if passed { Ok(()) } else { Err(format!("transaction {} is not yet below the horizon", tx.0)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_a_direct_writer_append_at_once_and_tailing_clients_see_every_event_once() {
    xentri_api::install_crypto_provider();
    let started = Instant::now();
    let database = Database::create("tail").await;
    let pool = database.pool().await;
    let prefix = unique_key_prefix();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (mut api_a, base_a) = start_api(&database.url, &redis_url(), &prefix, &[], log.clone()).await;
    let (mut api_b, base_b) = start_api(&database.url, &redis_url(), &prefix, &[], log.clone()).await;
    let orgs: Arc<Vec<Uuid>> = Arc::new((0..ORGS).map(|_| Uuid::now_v7()).collect());

    let done = Arc::new(AtomicBool::new(false));
    let tailers: Vec<_> = orgs
        .iter()
        .enumerate()
        .map(|(n, org)| tokio::spawn(tail(if n % 2 == 0 { &base_a } else { &base_b }.clone(), *org, done.clone())))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let over_http = EVENTS - DIRECT;
    let (from_a, from_b, ()) = tokio::join!(
        post(base_a.clone(), orgs.clone(), next.clone(), over_http),
        post(base_b.clone(), orgs.clone(), next.clone(), over_http),
        write_directly(pool.clone(), orgs.clone()),
    );
    assert!(from_a.is_empty() && from_b.is_empty(), "every post is a 201: {from_a:?} {from_b:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM system_events").fetch_one(&pool).await.expect("count");
    assert_eq!(stored, EVENTS as i64);
    let written = started.elapsed();

    // Every writer has committed: once the horizon has passed the last of
    // them, a poll that returns nothing means the tail is complete.
    let last_tx: TxId = sqlx::query_scalar("SELECT tx_id FROM system_events ORDER BY tx_id DESC LIMIT 1")
        .fetch_one(&pool)
        .await
        .expect("the last writer's transaction");
    eventually(Duration::from_secs(30), "the horizon to pass the last writer", || below_horizon(&pool, last_tx)).await;
    done.store(true, Ordering::Release);

    let mut per_org: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    for (org, tailer) in orgs.iter().zip(tailers) {
        per_org.insert(*org, tailer.await.expect("a tailer"));
    }
    for (n, (org, tailed)) in per_org.iter().enumerate() {
        let mut expected: Vec<i64> = sqlx::query_scalar("SELECT seq FROM system_events WHERE org_id = $1")
            .bind(org)
            .fetch_all(&pool)
            .await
            .expect("the org's events");
        assert_eq!(expected.len(), EVENTS / ORGS, "org {n}: its share of the events");
        let unique: HashSet<i64> = tailed.iter().copied().collect();
        assert_eq!(unique.len(), tailed.len(), "org {n}: an event was given twice");
        let mut sorted = tailed.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected, "org {n}: every event of the org, none skipped");
        // A stable order: reading the org from the start now gives the same sequence.
        let again = tail(base_a.clone(), *org, Arc::new(AtomicBool::new(true))).await;
        assert_eq!(&again, tailed, "org {n}: a second read gives the order the tail was given");
    }
    eprintln!("tail test: {EVENTS} events written in {written:?}, all checked after {:?}", started.elapsed());

    api_a.signal("-TERM").await;
    api_b.signal("-TERM").await;
    let mut conn = redis_connection().await;
    let _ = delete_keys_under(&mut conn, &prefix).await;
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_holds_no_transaction_while_redis_answers() {
    let database = Database::create("relaytx").await;
    let pool = database.pool().await;
    let prefix = unique_key_prefix();
    let log = Arc::new(Mutex::new(Vec::new()));
    let env = [("XENTRI_WORKER__PAUSE_AT", "relay.published"), ("XENTRI_TELEMETRY__LOG_FILTER", "warn,worker=info")];
    let mut worker = start_worker(&database.url, &prefix, &env, log.clone()).await;
    seed_backlog(&pool, 10, &[Uuid::now_v7()], &BACKLOG_TYPES).await;
    worker.wait_for("pause point reached", Duration::from_secs(30)).await;

    // Parked after its XADDs, before deleting their outbox rows: the session
    // holding the relay lock is idle, outside any transaction.
    let relay: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT a.state, a.backend_xid::text, a.backend_xmin::text
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.classid = $1::bigint::oid AND l.objid = 0 AND l.objsubid = 2
            AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(i64::from(xentri_core::locks::LockClass::Relay.id()))
    .fetch_all(&pool)
    .await
    .expect("the relay's session");
    assert_eq!(relay, [("idle".to_owned(), None, None)], "the relay's session, parked mid-batch");

    // So the horizon moves on: an event committed now passes it.
    let (seq, _) = seed_backlog(&pool, 1, &[Uuid::now_v7()], &BACKLOG_TYPES).await;
    let tx: TxId = sqlx::query_scalar("SELECT tx_id FROM system_events WHERE seq = $1")
        .bind(seq)
        .fetch_one(&pool)
        .await
        .expect("the new event's transaction");
    eventually(
        Duration::from_secs(10),
        "an event committed while the relay waits on Redis to pass the horizon",
        || below_horizon(&pool, tx),
    )
    .await;

    worker.signal("-KILL").await;
    let mut conn = redis_connection().await;
    let _ = delete_keys_under(&mut conn, &prefix).await;
    database.remove().await;
}
