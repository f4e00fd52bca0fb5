//! Building and running the api: pools, migrations, the listener, graceful shutdown.
//!
//! [`Application::build`] binds its own listener, so tests run it on port 0
//! in-process; [`Application::run_until_stopped`] serves until `shutdown`
//! resolves, then stops accepting, lets in-flight requests finish within
//! `api.shutdown_grace_ms`, and closes the pools.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use xentri_core::Settings;

use crate::appender::{Appender, AppenderConfig};
use crate::auth::Authenticator;
use crate::db::Db;
use crate::edge::Edge;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Why the api could not start; each is one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `database.url` is not a PostgreSQL URL.
    #[error(transparent)]
    Database(#[from] xentri_core::db::DbError),
    /// `redis.url` is not a Redis URL.
    #[error(transparent)]
    Redis(#[from] xentri_core::redis_pool::RedisPoolError),
    /// Migrations could not be applied.
    #[error(transparent)]
    Migrate(#[from] xentri_core::migrate::MigrateError),
    /// Row-level security would not bind the login or a service role (the
    /// reason is the whole line: not a source, so it is not printed twice).
    #[error("refusing to run: {0}")]
    Roles(xentri_core::roles::RoleError),
    /// The token keys could not be loaded.
    #[error("cannot load token keys: {0}")]
    Auth(#[from] crate::auth::jwks::JwksError),
    /// The address is taken or not ours.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound, ready-to-serve api.
pub struct Application {
    /// The bound listener.
    listener: TcpListener,
    /// Its address (the real port when 0 was configured).
    address: SocketAddr,
    /// Shared state, also handed to tests.
    state: AppState,
}

impl Application {
    /// Connects pools, applies migrations when configured, binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let pool = xentri_core::db::connect_lazy(&settings.database, "xentri-api")?;
        if settings.database.migrate_on_start {
            xentri_core::migrate::apply(&settings.database).await?;
        }
        xentri_core::db::check_roles_at_start(&settings.database, "xentri-api").await.map_err(StartupError::Roles)?;
        let redis = xentri_core::redis_pool::connect_lazy(&settings.redis)?;
        let auth = Arc::new(Authenticator::new(&settings.auth).await?);
        let address = SocketAddr::new(settings.api.host, settings.api.port);
        let listener = TcpListener::bind(address).await.map_err(|source| StartupError::Bind { address, source })?;
        let address = listener.local_addr().map_err(|source| StartupError::Bind { address, source })?;
        let db = Db::new(pool, xentri_core::roles::API);
        let appender = Appender::spawn(
            db.clone(),
            AppenderConfig {
                stream: settings.streams.events.work.clone(),
                key_ttl_secs: settings.idempotency.ttl_secs,
                writers: settings.api.append_writers,
                batch_max: settings.api.append_batch_max,
            },
        );
        let state = AppState {
            appender,
            outbox: crate::notify::OutboxNotifier::spawn(db.clone()),
            db,
            redis,
            settings: Arc::new(settings),
            metrics: {
                let metrics = Metrics::install();
                crate::metrics::describe();
                metrics
            },
            auth,
            in_flight: Arc::default(),
        };
        Ok(Self { listener, address, state })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains and closes.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let Self { listener, state, .. } = self;
        let edge = Edge::new(
            crate::routes::routes(state.clone()),
            state.settings.api.body_limit_bytes,
            state.settings.api.max_concurrent_requests,
            state.in_flight.clone(),
        );
        let graceful = GracefulShutdown::new();
        let connections = http1::Builder::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        let _ = stream.set_nodelay(true);
                        let edge = edge.clone();
                        let service = service_fn(move |request| edge.clone().handle(request));
                        let connection = graceful.watch(connections.serve_connection(TokioIo::new(stream), service));
                        tokio::spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(error = %error, "connection ended with an error");
                            }
                        });
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off briefly
                        // rather than spin.
                        tracing::warn!(error = %error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let grace = state.settings.api.shutdown_grace();
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            in_flight = state.in_flight(),
            "shutting down: draining in-flight requests"
        );
        if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
            tracing::warn!("grace period elapsed with requests still in flight");
        }
        if tokio::time::timeout(grace, state.db.close()).await.is_err() {
            tracing::warn!("postgres pool did not close within the grace period");
        }
        state.redis.close();
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub use xentri_core::shutdown::signal as shutdown_signal;
