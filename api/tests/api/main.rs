//! Integration tests of the api against real PostgreSQL and Redis: one test
//! binary, one module per area, a fresh database per test.

// Tests: a failed step panics with its cause, failing the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod appender;
mod auth;
mod contract;
mod event_contracts;
mod events;
mod health;
mod idempotency;
mod leads;
mod locks;
mod migrations;
mod openapi;
mod preferences;
mod problems;
mod resilience;
mod rls;
mod roles;
mod shutdown;
mod sites;
mod slow_clients;
mod soul;
mod sql;
mod validation;
