//! Integration tests of the worker against real PostgreSQL and Redis: one
//! test binary; each test has its own database and its own Redis key prefix.

// Tests: a failed step panics with its cause, failing the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod alerts;
mod audit;
mod batch;
mod dedup;
mod handling;
mod logging;
mod purge;
mod relay;
mod roles;
mod runtime;
mod shutdown;
mod supervision;
mod trim;
