//! `xentri-core`: the vocabulary shared by the api, the worker and dlq-tool.
//!
//! Settings, the event envelope and its type-name rule, the event contracts
//! (JSON Schemas of the envelope and of each type's payload), stream keys and the
//! stream-entry codec, the DLQ entry format, pool constructors, telemetry set-up,
//! the migrator, the database roles and advisory lock classes, and how the
//! on-call commands read times and print tables.
//! Machinery (routes, consumer loops) lives in the binaries.

pub mod cache_keys;
pub mod contracts;
pub mod db;
pub mod dlq;
pub mod event;
pub mod human;
pub mod locks;
pub mod metrics;
pub mod migrate;
pub mod redis_pool;
pub mod roles;
pub mod scripts;
pub mod settings;
pub mod shutdown;
pub mod site;
pub mod sql;
pub mod startup;
pub mod store;
pub mod stream;
pub mod stream_id;
pub mod telemetry;

pub use event::{Actor, EventType, InvalidEventField, NewEvent, StoredEvent, TypeFilter};
pub use migrate::MIGRATOR;
pub use settings::{ConfigError, Settings};
