//! What the workspace's tests share, in one place: where the services and the
//! workspace are ([`services`]), awaiting a condition with a deadline instead
//! of fixed sleeps ([`wait`]), test [`Settings`](xentri_core::Settings)
//! ([`settings`]), event fixtures ([`events`]), payloads valid against their
//! type's contract ([`payloads`]), and Redis key prefixes with their clean-up.
//!
//! A dev-dependency only (and a dependency of the end-to-end test crate). It
//! depends on `xentri-core` and never on `api` or `worker`: their tests use
//! it, and a cycle through dev-dependencies builds two copies of a crate
//! whose types do not match. What needs the worker's internals (running one
//! handler against a stream) is `xentri_worker::testing`.

// Test support: a set-up step that fails panics with its cause, failing the
// test that asked for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod events;
pub mod payloads;
pub mod services;
pub mod settings;
pub mod wait;

pub use events::{EventFixture, stored_event};
pub use payloads::{sample_site_id, valid_payload, valid_payload_with};
pub use services::{
    config_dir, database_url, delete_keys_under, redis_connection, redis_url, unique_key_prefix, workspace,
};
pub use settings::TestSettings;
pub use wait::{DEADLINE, eventually, poll_until, wait_until};
