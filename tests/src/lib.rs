//! End-to-end tests of the built binaries and of the api and worker together;
//! see `tests/e2e.rs`, `tests/flow.rs`, `tests/kill.rs` and `tests/outage.rs`.
//! This library holds what they share: where things are, unique Redis
//! prefixes, polling with a deadline, and reading a stream's consumer groups;
//! [`processes`] runs the built binaries on a database of their own,
//! [`services`] runs PostgreSQL and Redis servers a test may stop, [`load`]
//! posts through the api as clients do, and [`drills`] are the recovery
//! drills that `tests/outage.rs` and `scripts/bench outage` run.

// Test support: a set-up step that fails panics with its cause, failing the
// test that asked for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod drills;
pub mod load;
pub mod processes;
pub mod services;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoGroupsReply, StreamInfoStreamReply};

/// The nearest-rank `p`th percentile of `sorted` microseconds, in
/// milliseconds; `None` when there are none.
pub fn percentile_ms(sorted: &[u64], p: f64) -> Option<f64> {
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).map(|v| *v as f64 / 1000.0)
}

/// The value after `--name` on the command line of a bench driver
/// (`tests/examples`), if given.
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The whole number after `--name`, or `default` when it is not given; a
/// value that is not a whole number stops the driver with a message.
pub fn number_flag(name: &str, default: u64) -> u64 {
    flag(name).map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a whole number, not {v}"))).unwrap_or(default)
}

/// The workspace root (binaries run with it as their working directory, so
/// they find `config/`).
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `config/` of the workspace.
pub fn config_dir() -> PathBuf {
    workspace().join("config")
}

/// A built binary of the workspace (`./scripts/test` builds them first), in
/// the workspace's target directory or `$CARGO_TARGET_DIR`: the debug build,
/// or the profile `E2E_PROFILE` names (`release` for the benches; not an
/// `XENTRI_` variable, which the binaries would refuse as an unknown key).
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"));
    let profile = std::env::var("E2E_PROFILE").unwrap_or_else(|_| "debug".to_owned());
    let path = target.join(profile).join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    path
}

/// The URL of the test database behind `pool` (trust auth, no password).
pub fn database_url(pool: &sqlx::PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

/// `REDIS_URL`, or the local default `./scripts/test` uses.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// A Redis key prefix no other test uses: tests share one Redis server.
pub fn unique_key_prefix() -> String {
    format!("t-{}:", uuid::Uuid::new_v4())
}

/// A connection to the test Redis, for the test's own checks.
pub async fn redis_connection() -> MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("REDIS_URL is a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis accepts a connection")
}

/// Polls `check` every 25 ms until it returns `Ok`, and returns its value.
/// Panics once `within` has passed, saying what was awaited and what the last
/// check still found missing (its `Err`).
pub async fn eventually<T, F, Fut>(within: Duration, awaited: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    match poll_until(within, check).await {
        Ok(value) => value,
        Err(missing) => panic!("expected {awaited} within {within:?}, but at the deadline: {missing}"),
    }
}

/// Polls `check` every 25 ms until it returns `Ok`, or until `within` has
/// passed; then returns the last check's `Err`.
pub async fn poll_until<T, F, Fut>(within: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(missing) if Instant::now() >= deadline => return Err(missing),
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// What a consumer group has done with a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupProgress {
    /// The group.
    pub name: String,
    /// Entries delivered to it and not yet acknowledged.
    pub pending: usize,
    /// Whether it has been delivered every entry ever added to the stream.
    pub read_all: bool,
}

/// The progress of every consumer group on stream `key` (a full Redis key);
/// empty when the stream does not exist.
pub async fn group_progress(conn: &mut MultiplexedConnection, key: &str) -> redis::RedisResult<Vec<GroupProgress>> {
    let exists: bool = redis::cmd("EXISTS").arg(key).query_async(conn).await?;
    if !exists {
        return Ok(Vec::new());
    }
    let stream: StreamInfoStreamReply = redis::cmd("XINFO").arg("STREAM").arg(key).query_async(conn).await?;
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO").arg("GROUPS").arg(key).query_async(conn).await?;
    Ok(groups
        .groups
        .into_iter()
        .map(|group| GroupProgress {
            read_all: group.last_delivered_id == stream.last_generated_id,
            name: group.name,
            pending: group.pending,
        })
        .collect())
}

/// Deletes every key under `prefix` (`SCAN`, then `UNLINK`): a test cleans up
/// after itself without touching what other tests hold.
pub async fn delete_keys_under(conn: &mut MultiplexedConnection, prefix: &str) -> redis::RedisResult<usize> {
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            deleted += redis::cmd("UNLINK").arg(&keys).query_async::<usize>(conn).await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
