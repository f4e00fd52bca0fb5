//! Graceful shutdown: no new connections, the in-flight request finishes.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app;

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn in_flight_request_finishes_after_shutdown_signal(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    // Headers and half the body: the request is in flight, waiting for the rest.
    stream.write_all(b"POST /health HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n12345").await.expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.in_flight() == 0 {
        assert!(Instant::now() < deadline, "request never reached the server");
        tokio::task::yield_now().await;
    }

    let address_for_probe = address.clone();
    let stopping = tokio::spawn(app.stop());
    // Once shutdown starts, new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&address_for_probe).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after the shutdown signal");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    stream.write_all(b"67890").await.expect("rest of the body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read until close");
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    stopping.await.expect("server drained and stopped");
}
