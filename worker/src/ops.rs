//! The worker's own HTTP port: `GET /health` (every supervised task's state),
//! `GET /health/ready` (503 while a critical task is down) and `GET /metrics`
//! (Prometheus).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;
use warp::http::StatusCode;
use xentri_core::metrics::Metrics;

use crate::supervisor::Health;

/// Serves until `shutdown`.
pub async fn run(
    listener: TcpListener,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let live = health.clone();
    let status = warp::path!("health").and(warp::get()).map(move || {
        let ready = live.ready();
        warp::reply::json(&serde_json::json!({
            "status": if ready { "ok" } else { "degraded" },
            "tasks": live.snapshot(),
        }))
    });
    let ready = warp::path!("health" / "ready").and(warp::get()).map(move || {
        let down: Vec<String> = health
            .snapshot()
            .into_iter()
            .filter(|(_, task)| task.critical && task.state != crate::supervisor::TaskState::Running)
            .map(|(name, _)| name)
            .collect();
        let (code, body) = if down.is_empty() {
            (StatusCode::OK, serde_json::json!({"status": "ready"}))
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "not ready", "down": down}))
        };
        warp::reply::with_status(warp::reply::json(&body), code)
    });
    let scrape = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(metrics.render(), "content-type", "text/plain; version=0.0.4; charset=utf-8")
    });
    let routes = status.or(ready).or(scrape);
    warp::serve(routes).incoming(listener).graceful(async move { shutdown.cancelled().await }).run().await;
    Ok(())
}

/// Binds the ops listener.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
