//! PostgreSQL or Redis away: fast 503s, readiness says which, and recovery
//! without a restart. PostgreSQL is taken away by a proxy that stops serving,
//! not by stopping the machine's server.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{TestApp, json, settings, spawn_with};

/// A TCP proxy to PostgreSQL that can be switched off (listener closed and
/// every proxied connection dropped) and on again at the same port.
struct Proxy {
    port: u16,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(port: u16, target: (String, u16)) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("proxy binds");
        let port = listener.local_addr().expect("addr").port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let registry = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let copy = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().expect("lock").push(copy);
            }
        });
        tasks.lock().expect("lock").push(accept);
        Self { port, tasks }
    }

    fn stop(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
    }
}

async fn ready_status(app: &TestApp) -> (u16, serde_json::Value) {
    let (status, _, body) = json(app.get("/health/ready").await).await;
    (status, body)
}

async fn wait_ready(app: &TestApp, want: u16) {
    crate::helpers::eventually(crate::helpers::DEADLINE, &format!("readiness {want}"), || async {
        let (status, body) = ready_status(app).await;
        if status == want { Ok(()) } else { Err(format!("{status} {body}")) }
    })
    .await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn postgres_outage_is_a_fast_503_and_recovers(_: PgPoolOptions, options: PgConnectOptions) {
    let target = (options.get_host().to_owned(), options.get_port());
    let proxy = Proxy::start(0, target.clone()).await;
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        options.get_username(),
        proxy.port,
        options.get_database().unwrap_or("postgres")
    );
    let app = spawn_with(settings(&url, &[("XENTRI_DATABASE__ACQUIRE_TIMEOUT_MS", "500")])).await;
    wait_ready(&app, 200).await;

    proxy.stop();
    let started = Instant::now();
    // Readiness reuses its answer for `api.readiness_cache_ms` (1 s): the
    // outage shows once that has passed, and a ping then fails fast.
    wait_ready(&app, 503).await;
    let (status, body) = ready_status(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["detail"], "Unavailable: postgres");
    assert!(started.elapsed() < Duration::from_secs(5), "failed fast, took {:?}", started.elapsed());
    for lang in ["en", "de"] {
        let response = app.client.get(app.url("/health/ready")).header("accept-language", lang).send().await;
        let (_, _, body) = json(response.expect("sent")).await;
        insta::assert_json_snapshot!(format!("service_unavailable_{lang}"), body, {".trace_id" => "[trace_id]"});
    }

    let _back = Proxy::start(proxy.port, target).await;
    wait_ready(&app, 200).await;
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn redis_outage_is_named_by_readiness(_: PgPoolOptions, options: PgConnectOptions) {
    // Nothing listens on port 1.
    let url = crate::helpers::database_url(&options);
    let app = spawn_with(settings(&url, &[("REDIS_URL", "redis://127.0.0.1:1/0")])).await;
    let (status, body) = ready_status(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["detail"], "Unavailable: redis");
    app.stop().await;
}

/// PostgreSQL ends the api's sessions under load (`pg_terminate_backend`: the
/// same FATAL 57P01 "terminating connection due to administrator command" a
/// fast shutdown sends to every session): every answer is a 201 or a 503
/// problem with `Retry-After`, never a 500, and every 201 has its event.
#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn sessions_ended_by_postgres_answer_503_never_500(pool: sqlx::PgPool) {
    let url = crate::helpers::database_url(&pool.connect_options());
    let app = Arc::new(spawn_with(settings(&url, &[("XENTRI_DATABASE__ACQUIRE_TIMEOUT_MS", "500")])).await);
    let token = crate::helpers::user_token(uuid::Uuid::now_v7());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..16 {
        let (app, token, stop) = (app.clone(), token.clone(), stop.clone());
        writers.spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("ended-{writer}-{n}");
                let response = app.post_event(&token, &key, crate::helpers::event_body("xentri.soul.updated.v1")).await;
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").is_some();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                answers.push((status, retry_after, body));
                n += 1;
            }
            answers
        });
    }
    // End every session of the api, ten times over two seconds.
    let mut ended = 0i64;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ended += sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'xentri-api') AS t",
        )
        .fetch_one(&pool)
        .await
        .expect("sessions ended");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answers = Vec::new();
    while let Some(writer) = writers.join_next().await {
        answers.extend(writer.expect("a writer does not panic"));
    }
    let count = |status: u16| answers.iter().filter(|(s, _, _)| *s == status).count();
    eprintln!("{ended} sessions ended; answers: {} x 201, {} x 503, {} in all", count(201), count(503), answers.len());
    assert!(ended > 0, "expected api sessions to end");
    assert!(count(503) > 0, "expected some requests to meet an ended session");
    assert_eq!(count(201) + count(503), answers.len(), "expected only 201 and 503, got {:?}", {
        let mut other: Vec<u16> = answers.iter().map(|(s, _, _)| *s).filter(|s| *s != 201 && *s != 503).collect();
        other.dedup();
        other
    });
    for (status, retry_after, body) in &answers {
        if *status == 503 {
            assert!(retry_after, "expected Retry-After on every 503");
            assert_eq!(body["type"], "https://xentri.io/errors/service-unavailable", "{body}");
        }
    }
    let created: Vec<uuid::Uuid> = answers
        .iter()
        .filter(|(s, _, _)| *s == 201)
        .filter_map(|(_, _, body)| body["id"].as_str().and_then(|id| id.parse().ok()))
        .collect();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM system_events WHERE id = ANY($1)")
        .bind(&created)
        .fetch_one(&pool)
        .await
        .expect("system_events readable");
    assert_eq!(stored as usize, created.len(), "expected every 201 to have its event");
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}
