//! What every route handler may use, built once at start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use xentri_core::Settings;

use crate::auth::Authenticator;
use crate::db::Db;
use crate::metrics::Metrics;

/// Shared, cheaply cloned application state.
#[derive(Clone)]
pub struct AppState {
    /// Org-scoped access to PostgreSQL (the only way to it).
    pub db: Db,
    /// The Redis pool.
    pub redis: deadpool_redis::Pool,
    /// Typed settings, read once.
    pub settings: Arc<Settings>,
    /// The Prometheus registry.
    pub metrics: Metrics,
    /// Writes appends in batches.
    pub appender: crate::appender::Appender,
    /// Wakes the relay after appends.
    pub outbox: crate::notify::OutboxNotifier,
    /// The event contracts: payloads of known types are checked against them.
    pub contracts: Arc<xentri_core::contracts::Contracts>,
    /// Verifies bearer tokens.
    pub auth: Arc<Authenticator>,
    /// Requests being answered right now (the edge counts them).
    pub in_flight: Arc<AtomicUsize>,
}

impl AppState {
    /// How many requests are being answered right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}
