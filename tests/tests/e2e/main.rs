//! The end-to-end tests: the built binaries and the in-process stack against
//! real PostgreSQL and Redis, in one test binary with one module per area
//! (nextest still runs every test in a process of its own).
//!
//! `./scripts/test` builds the binaries first; the tests that run them look
//! for them in the workspace's target directory (or `$CARGO_TARGET_DIR`).

// Tests: a failed step panics with its cause, failing the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod durability;
mod flow;
mod kill;
mod leads;
mod operator;
mod outage;
mod purge;
mod replay;
mod sites;
mod soul;
mod tidy;
mod write_path;
