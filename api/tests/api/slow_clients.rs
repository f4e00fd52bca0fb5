//! Slow and idle clients cannot starve the api: header and body deadlines,
//! the keep-alive idle timeout, the connection cap, and authentication before
//! the body is read.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::helpers::{TestApp, database_url, event_body, settings, spawn_with, user_token};

async fn spawn(options: &PgConnectOptions, extra: &[(&str, &str)]) -> TestApp {
    spawn_with(settings(&database_url(options), extra)).await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("connect")
}

/// Reads until the server closes the connection or `within` has passed;
/// returns what arrived, and whether (and how soon) the connection closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&received).into_owned(), Some(started.elapsed()));
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), None),
        }
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_client_sending_one_header_byte_per_second_is_disconnected_within_the_header_timeout(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = spawn(
        &options,
        &[("XENTRI_API__HEADER_READ_TIMEOUT_MS", "2000"), ("XENTRI_API__KEEP_ALIVE_TIMEOUT_MS", "60000")],
    )
    .await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    let mut closed_after = None;
    // 33 bytes at one per second would take 33 s; the head must be whole in 2 s.
    for byte in b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n".iter().take(10) {
        if stream.write_all(&[*byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(1)).await;
        assert!(received.is_empty(), "answered a request whose head never arrived: {received}");
        if closed.is_some() {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the connection was still open after 10 header bytes in 10 s");
    assert!(closed_after >= Duration::from_millis(1500), "closed after {closed_after:?}, before the timeout");
    assert!(closed_after < Duration::from_secs(5), "closed only after {closed_after:?}");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn(
        &options,
        &[("XENTRI_API__HEADER_READ_TIMEOUT_MS", "60000"), ("XENTRI_API__KEEP_ALIVE_TIMEOUT_MS", "1000")],
    )
    .await;
    let mut stream = connect(&app).await;
    assert!(health_on(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Kept alive, then idle: closed after about a second, not kept forever.
    let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(received.is_empty(), "{received}");
    let closed = closed.expect("the idle connection was still open after 10 s");
    assert!(closed >= Duration::from_millis(800), "closed after {closed:?}, before the idle timeout");
    assert!(closed < Duration::from_secs(5), "closed only after {closed:?}");
    app.stop().await;
}

/// Sends a `GET /health` on `stream` and reads its whole answer.
async fn health_on(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("request");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains(r#"{"status":"ok"}"#) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answered within 5 s")
            .expect("read");
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_kept_alive_connection_idle_longer_than_the_header_timeout_serves_its_next_request(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // The head timeout runs from a head's first byte, not from the last
    // answer: idle time between requests is the keep-alive timeout's alone.
    // Were it not, a client reusing a connection idle past the head timeout
    // would have its request cut off unanswered.
    let app = spawn(
        &options,
        &[("XENTRI_API__HEADER_READ_TIMEOUT_MS", "300"), ("XENTRI_API__KEEP_ALIVE_TIMEOUT_MS", "60000")],
    )
    .await;
    let mut stream = connect(&app).await;
    assert!(health_on(&mut stream).await.starts_with("HTTP/1.1 200"));
    let (received, closed) = read_until_closed(&mut stream, Duration::from_millis(1200)).await;
    assert!(received.is_empty() && closed.is_none(), "closed while idle after {closed:?}: {received}");
    assert!(health_on(&mut stream).await.starts_with("HTTP/1.1 200"), "the second request on the connection");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_body_that_does_not_arrive_within_the_deadline_is_408_and_the_connection_closed(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = spawn(&options, &[("XENTRI_API__BODY_READ_TIMEOUT_MS", "1000")]).await;
    let token = user_token(Uuid::new_v4());
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\nidempotency-key: slow-body\r\ncontent-length: 100\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(br#"{"type":"#).await.expect("a few body bytes");
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("https://xentri.io/errors/request-timeout"), "{answer}");
    let closed = closed.expect("the connection stays open after the 408");
    assert!(closed < Duration::from_secs(5), "answered only after {closed:?}");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_one_mebibyte_body_with_a_bad_or_missing_token_is_401_without_being_read(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // A body deadline far beyond the test's patience: only authenticating
    // before reading the body can answer in time.
    let app = spawn(&options, &[("XENTRI_API__BODY_READ_TIMEOUT_MS", "600000")]).await;
    for authorization in ["authorization: Bearer not-a-token\r\n", ""] {
        let mut stream = connect(&app).await;
        let head = format!(
            "POST /api/v1/events HTTP/1.1\r\nhost: x\r\n{authorization}content-type: application/json\r\nidempotency-key: big\r\ncontent-length: 1048576\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        // A few bytes of the announced mebibyte, and then nothing.
        stream.write_all(br#"{"type":"xentri.a.b.v1","payload":{"#).await.expect("a few body bytes");
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{authorization:?}: {answer:?}");
        assert!(answer.contains("https://xentri.io/errors/unauthorized"), "{answer}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_thousand_idle_connections_do_not_stop_a_normal_client_getting_its_201(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Timeouts far off: the cap alone has to keep room for the normal client.
    let cap = 100;
    let app = spawn(
        &options,
        &[
            ("XENTRI_API__MAX_CONNECTIONS", "100"),
            ("XENTRI_API__HEADER_READ_TIMEOUT_MS", "600000"),
            ("XENTRI_API__KEEP_ALIVE_TIMEOUT_MS", "600000"),
        ],
    )
    .await;
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(connect(&app).await);
    }
    let token = user_token(Uuid::new_v4());
    let response = tokio::time::timeout(
        Duration::from_secs(15),
        app.post_event(&token, "after-the-idle-ones", event_body("xentri.soul.updated.v1")),
    )
    .await
    .expect("the normal client was answered within 15 s");
    assert_eq!(response.status(), 201);
    // The cap held: the idle connections beyond it were closed to make room.
    let closed = futures_util::future::join_all(idle.iter_mut().map(|stream| async move {
        let mut buf = [0u8; 1];
        matches!(tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    }))
    .await
    .into_iter()
    .filter(|closed| *closed)
    .count();
    assert!(closed >= 1000 - cap, "only {closed} of 1,000 idle connections were closed with a cap of {cap}");
    app.stop().await;
}
