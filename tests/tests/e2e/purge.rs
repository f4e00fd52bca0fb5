//! The purge of expired idempotency keys against a backlog of 100,000: it
//! deletes in chunks, each its own short transaction, and every tenant's
//! lists and appends keep answering while it runs: between two chunks no
//! purge transaction is open to hold back the commit horizon lists read
//! below, nor row locks an append reusing an expired key would wait on.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;
use xentri_api::startup::Application;
use xentri_core::Settings;
use xentri_e2e::{TestSettings, database_url, eventually, unique_key_prefix};
use xentri_worker::purge::{self, Progress, Purge};

/// The dev secret of `config/test.toml`.
const DEV_SECRET: &str = "xentri-local-dev-secret-change-me";
/// Expired keys to purge.
const KEYS: i64 = 100_000;
/// Rows per purge transaction.
const CHUNK: u32 = 1_000;
/// Orgs the keys belong to; the test's org is the first.
const ORGS: usize = 10;
/// The bound on any one answer of the api, and on an event showing up in a list.
const WITHIN: Duration = Duration::from_secs(15);
const TYPE: &str = "xentri.soul.updated.v1";

fn settings(database_url: &str) -> Settings {
    TestSettings::new(database_url).key_prefix(&unique_key_prefix()).load()
}

/// A client of the api for one org.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    address: String,
    token: String,
}

/// What the test saw at a chunk boundary: the chunks done, the expired keys
/// another session still saw, and the ids of the two events appended (a
/// fresh key, an expired key taken over) once both showed in the list.
type Check = (u64, i64, Result<(Uuid, Uuid), String>);

/// What an append answered.
#[derive(Debug)]
struct Appended {
    status: u16,
    replayed: bool,
    id: Option<Uuid>,
}

impl Client {
    /// Posts an event under `key`.
    async fn append(&self, key: &str) -> Result<Appended, String> {
        let response = self
            .http
            .post(format!("{}/api/v1/events", self.address))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"type": TYPE, "payload": xentri_test_support::valid_payload_with(TYPE, serde_json::json!({"key": key}))}))
            .send()
            .await
            .map_err(|e| format!("append under {key} got no answer within {WITHIN:?}: {e}"))?;
        let status = response.status().as_u16();
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        let body: serde_json::Value = response.json().await.map_err(|e| format!("append answer is not JSON: {e}"))?;
        let id = body["id"].as_str().and_then(|id| id.parse().ok());
        Ok(Appended { status, replayed, id })
    }

    /// The org's events (the first page of up to 1,000).
    async fn list(&self) -> Result<Vec<Uuid>, String> {
        let response = self
            .http
            .get(format!("{}/api/v1/events?limit=1000", self.address))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("list got no answer within {WITHIN:?}: {e}"))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.map_err(|e| format!("list answer is not JSON: {e}"))?;
        if status != 200 {
            return Err(format!("list answered {status}: {body}"));
        }
        Ok(body["data"]
            .as_array()
            .map(|events| events.iter().filter_map(|e| e["id"].as_str().and_then(|id| id.parse().ok())).collect())
            .unwrap_or_default())
    }

    /// Appends under `key`, expects a fresh 201, and waits until the event
    /// shows in the org's list; returns its id.
    async fn append_and_list(&self, key: &str) -> Result<Uuid, String> {
        let appended = self.append(key).await?;
        let id = match appended {
            Appended { status: 201, replayed: false, id: Some(id) } => id,
            other => return Err(format!("expected a fresh 201 for key {key}, got {other:?}")),
        };
        xentri_e2e::poll_until(WITHIN, || async {
            if self.list().await?.contains(&id) { Ok(()) } else { Err(format!("event {id} is not listed yet")) }
        })
        .await?;
        Ok(id)
    }
}

/// Expired keys still in the table, as another session sees them (a
/// superuser's: row-level security does not hide other orgs' keys).
async fn expired_keys(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE expires_at <= now()")
        .fetch_one(pool)
        .await
        .expect("idempotency keys are countable")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn lists_and_appends_keep_answering_while_100000_expired_idempotency_keys_are_purged(pool: PgPool) {
    xentri_api::install_crypto_provider();
    let orgs: Vec<Uuid> = (0..ORGS).map(|_| Uuid::now_v7()).collect();
    // Key i expires i ms after the first, a day ago: the purge takes them
    // oldest first, so the last keys of the test's org (i = KEYS, KEYS - 10)
    // are still there at any chunk boundary before the last.
    sqlx::query(
        "INSERT INTO idempotency_keys (org_id, key, request_hash, response_status, response_body, expires_at)
         SELECT ($1::uuid[])[(1 + i % $3)::int], 'expired-' || i, '\\x00'::bytea, 201, '{}',
                now() - interval '1 day' + i * interval '1 millisecond'
           FROM generate_series(1, $2) AS i",
    )
    .bind(&orgs)
    .bind(KEYS)
    .bind(ORGS as i32)
    .execute(&pool)
    .await
    .expect("expired keys seeded");
    assert_eq!(expired_keys(&pool).await, KEYS);

    let settings = settings(&database_url(&pool.connect_options()));
    let api = Application::build(settings).await.expect("the api builds");
    let address = format!("http://{}", api.address());
    let (stop_api, stopped) = oneshot::channel::<()>();
    let api = tokio::spawn(api.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let token = xentri_api::auth::token::dev_token(DEV_SECRET, orgs[0], "user_purge", Duration::from_secs(3_600))
        .expect("a dev token is minted");
    let http = reqwest::Client::builder().timeout(WITHIN).build().expect("an HTTP client");
    let client = Client { http, address, token };

    // Other clients append and list all the while the purge runs.
    let traffic_start = Arc::new(Notify::new());
    let traffic_stop = Arc::new(AtomicBool::new(false));
    let traffic_rounds = Arc::new(AtomicUsize::new(0));
    let traffic = tokio::spawn({
        let (client, start, stop, rounds) =
            (client.clone(), traffic_start.clone(), traffic_stop.clone(), traffic_rounds.clone());
        async move {
            start.notified().await;
            let mut answered = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                answered.push(client.append_and_list(&format!("traffic-{}", Uuid::new_v4())).await);
                rounds.fetch_add(1, Ordering::SeqCst);
            }
            answered
        }
    });

    // At two chunk boundaries, with the purge under way, an append with a
    // fresh key and one reusing an expired key not purged yet each get a
    // fresh 201, and both events show in the org's list.
    let checks: Mutex<Vec<Check>> = Mutex::new(Vec::new());
    let progress = purge::run(&pool, xentri_core::roles::WORKER, Purge::ExpiredIdempotencyKeys, CHUNK, |progress| {
        let (pool, client, checks) = (&pool, &client, &checks);
        let (traffic_start, traffic_rounds) = (&traffic_start, &traffic_rounds);
        async move {
            if progress.chunks == 1 {
                traffic_start.notify_one();
            }
            let reused = match progress.chunks {
                1 => KEYS,
                50 => KEYS - ORGS as i64,
                _ => return ControlFlow::Continue(()),
            };
            // What the chunks so far deleted is committed: another session sees it gone.
            let expired = expired_keys(pool).await;
            let appended = async {
                let fresh = client.append_and_list(&format!("fresh-{}", Uuid::new_v4())).await?;
                let taken_over = client.append_and_list(&format!("expired-{reused}")).await?;
                Ok::<_, String>((fresh, taken_over))
            }
            .await;
            checks.lock().expect("not poisoned").push((progress.chunks, expired, appended));
            if progress.chunks == 50 {
                // The other clients' appends and lists answered meanwhile too.
                eventually(WITHIN, "three rounds of the other clients during the purge", || async {
                    let rounds = traffic_rounds.load(Ordering::SeqCst);
                    if rounds >= 3 { Ok(()) } else { Err(format!("{rounds} rounds")) }
                })
                .await;
            }
            ControlFlow::Continue(())
        }
    })
    .await
    .expect("the purge runs as the worker role");

    traffic_stop.store(true, Ordering::SeqCst);
    let answered = traffic.await.expect("the other clients ran");
    let checks = checks.into_inner().expect("not poisoned");
    let _ = stop_api.send(());
    api.await.expect("the api stops");

    // 100,000 keys, less the two an append took over (no longer expired), in
    // 99 full chunks and a last one.
    assert_eq!(progress, Progress { rows: KEYS as u64 - 2, chunks: 100, complete: true });
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert_eq!((checks[0].0, checks[0].1), (1, KEYS - i64::from(CHUNK)), "the first chunk is committed on its own");
    assert_eq!((checks[1].0, checks[1].1), (50, KEYS - 50 * i64::from(CHUNK) - 1), "so is the fiftieth");
    for (chunk, _, appended) in &checks {
        assert!(appended.is_ok(), "after chunk {chunk}: {appended:?}");
    }
    assert!(answered.len() >= 3, "the other clients ran {} rounds during the purge", answered.len());
    let failed: Vec<&String> = answered.iter().filter_map(|answer| answer.as_ref().err()).collect();
    assert!(failed.is_empty(), "requests issued during the purge failed: {failed:?}");
    assert_eq!(expired_keys(&pool).await, 0, "every expired key is gone");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'expired-%'")
        .fetch_one(&pool)
        .await
        .expect("keys counted");
    assert_eq!(kept, 2, "the two keys appends took over are live again and kept");
}
