//! End-to-end tests of the built binaries and of the api and worker together;
//! see `tests/e2e/operator.rs`, `tests/e2e/flow.rs`, `tests/e2e/kill.rs` and `tests/e2e/outage.rs`.
//! This library holds what they share beyond what every crate's tests share
//! (`xentri_test_support`, re-exported here): the built binaries and reading
//! a stream's consumer groups;
//! [`stack`] runs the api and the worker in this process for the flow tests,
//! [`processes`] runs the built binaries on a database of their own,
//! [`services`] runs PostgreSQL and Redis servers a test may stop, [`load`]
//! posts through the api as clients do, [`openloop`] sends on a fixed
//! schedule for the bench drivers, and [`drills`] are the recovery
//! drills that `tests/e2e/outage.rs` and `scripts/bench outage` run; [`benchkit`]
//! holds the bench scripts' measuring helpers (`tests/examples/benchkit.rs`).

// Test support: a set-up step that fails panics with its cause, failing the
// test that asked for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod benchkit;
pub mod drills;
pub mod load;
pub mod openloop;
pub mod processes;
pub mod services;
pub mod stack;

use std::path::PathBuf;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoGroupsReply, StreamInfoStreamReply};
pub use xentri_test_support::{
    DEADLINE, TestSettings, config_dir, database_url, delete_keys_under, eventually, poll_until, redis_connection,
    redis_url, stored_event, unique_key_prefix, wait_until, workspace,
};

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
