//! Integration tests of the worker against real PostgreSQL and Redis: one
//! test binary; each test has its own database and its own Redis key prefix.

mod helpers;

mod alerts;
mod audit;
mod batch;
mod dedup;
mod logging;
mod purge;
mod relay;
mod roles;
mod runtime;
mod shutdown;
mod supervision;
mod trim;
