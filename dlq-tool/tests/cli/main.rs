//! dlq-tool's integration tests: the built binary against a real Redis
//! (`REDIS_URL`, default 127.0.0.1:6379), each test under its own key prefix.
//! One test binary for the crate keeps link time down.

// Tests: a failed step panics with its cause, failing the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod archive;
mod bad_input;
mod dry_run;
mod misc;
mod replay;
mod snapshots;
mod support;
mod work_streams;
