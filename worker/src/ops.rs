//! The worker's own HTTP port: `GET /health` and `GET /metrics` (Prometheus).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;
use xentri_core::metrics::Metrics;

/// Serves until `shutdown`.
pub async fn run(listener: TcpListener, metrics: Metrics, shutdown: CancellationToken) -> anyhow::Result<()> {
    let health = warp::path!("health").and(warp::get()).map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let scrape = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(metrics.render(), "content-type", "text/plain; version=0.0.4; charset=utf-8")
    });
    let routes = health.or(scrape);
    warp::serve(routes).incoming(listener).graceful(async move { shutdown.cancelled().await }).run().await;
    Ok(())
}

/// Binds the ops listener.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
