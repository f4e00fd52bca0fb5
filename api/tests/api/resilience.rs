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
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = ready_status(app).await;
        if status == want {
            return;
        }
        assert!(Instant::now() < deadline, "readiness never became {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
