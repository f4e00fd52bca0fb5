//! The Xentri events HTTP API.
//!
//! [`startup::Application`] binds a listener and serves the warp routes of
//! [`routes`] behind the [`edge`]: the one place that reads `traceparent`,
//! bounds bodies, catches panics, renders problem documents, counts and logs.

pub mod appender;
pub mod auth;
pub mod connections;
pub mod db;
pub mod domain;
pub mod edge;
pub mod events;
pub mod i18n;
pub mod idempotency;
pub mod leads;
pub mod listing;
pub mod metrics;
pub mod notify;
pub mod preferences;
pub mod problem;
pub mod routes;
pub mod sites;
pub mod soul;
pub mod startup;
pub mod state;
pub mod trace;

/// Installs ring as rustls's process-wide crypto provider, which outgoing HTTPS
/// (the JWKS fetch) needs. Idempotent.
pub fn install_crypto_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}
