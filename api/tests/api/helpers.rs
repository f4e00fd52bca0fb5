//! `spawn_app`: the api in-process on port 0 against a test database.

use std::path::PathBuf;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use xentri_api::startup::Application;
use xentri_api::state::AppState;
use xentri_core::Settings;

/// A running api and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// The URL of the database behind `options` (trust auth, no password).
pub fn database_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

/// Test settings: `config/test.toml`, port 0, the given database, plus `extra`.
pub fn settings(database_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars = vec![
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("XENTRI_API__PORT".to_owned(), "0".to_owned()),
        ("XENTRI_DATABASE__MIGRATE_ON_START".to_owned(), "false".to_owned()),
    ];
    if let Ok(redis) = std::env::var("REDIS_URL") {
        vars.push(("REDIS_URL".to_owned(), redis));
    }
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Settings::load_from(&config_dir(), Some("test"), vars).expect("test settings load")
}

pub async fn spawn_app(options: PgConnectOptions) -> TestApp {
    spawn_with(settings(&database_url(&options), &[])).await
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    let app = Application::build(settings).await.expect("application builds");
    let address = format!("http://{}", app.address());
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp { address, client: reqwest::Client::new(), state, shutdown: Some(tx), handle: Some(handle) }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    /// Signals shutdown and waits for the server to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task ends cleanly");
        }
    }
}

/// Status, headers and JSON body of a response.
pub async fn json(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.expect("JSON body");
    (status, headers, body)
}
