//! Wiring: pools, the registry of groups, every loop of the worker under one
//! shutdown token, and the drain when it fires.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use xentri_core::Settings;
use xentri_core::metrics::Metrics;

use crate::handler::Handler;
use crate::runtime::{Shared, lane, telemetry};

/// Why the worker could not start; each is one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `database.url` is not a PostgreSQL URL.
    #[error(transparent)]
    Database(#[from] xentri_core::db::DbError),
    /// `redis.url` is not a Redis URL.
    #[error(transparent)]
    Redis(#[from] xentri_core::redis_pool::RedisPoolError),
    /// `redis.url` is not a Redis URL (dedicated connections).
    #[error("configuration error: invalid value for `redis.url`: {0}")]
    RedisClient(#[source] redis::RedisError),
    /// Migrations could not be applied.
    #[error("cannot apply migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The groups are misconfigured.
    #[error("{0}")]
    Groups(String),
    /// The ops address is taken or not ours.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A worker, built and ready to run.
pub struct Worker {
    /// Shared runtime state.
    shared: Arc<Shared>,
    /// Every group to run.
    handlers: Vec<Arc<dyn Handler>>,
    /// The ops listener.
    ops: TcpListener,
    /// Its address.
    ops_address: SocketAddr,
}

impl Worker {
    /// Builds pools and the ops listener, and the built-in groups the settings
    /// enable plus `extra` handlers.
    pub async fn build(settings: Settings, extra: Vec<Arc<dyn Handler>>) -> Result<Self, StartupError> {
        let db = xentri_core::db::connect_lazy(&settings.database, "xentri-worker")?;
        if settings.database.migrate_on_start {
            xentri_core::MIGRATOR.run(&db).await.map_err(StartupError::Migrate)?;
        }
        let redis = xentri_core::redis_pool::connect_lazy(&settings.redis)?;
        let redis_client =
            redis::Client::open(settings.redis.url.expose_secret()).map_err(StartupError::RedisClient)?;
        let others: Vec<&str> = extra.iter().map(|h| h.group()).collect();
        let mut handlers = crate::handlers::builtin(&settings, &others).map_err(StartupError::Groups)?;
        handlers.extend(extra);
        let mut seen = std::collections::HashSet::new();
        for handler in &handlers {
            if !seen.insert(handler.group().to_owned()) {
                return Err(StartupError::Groups(format!("two handlers claim group {}", handler.group())));
            }
            for stream in handler.streams() {
                if settings.streams.family_of_work(&stream).is_none() {
                    return Err(StartupError::Groups(format!(
                        "group {} reads {stream}, which is not a configured work stream",
                        handler.group()
                    )));
                }
            }
        }
        let address = SocketAddr::new(settings.worker.host, settings.worker.port);
        let ops = crate::ops::bind(address).await.map_err(|source| StartupError::Bind { address, source })?;
        let ops_address = ops.local_addr().map_err(|source| StartupError::Bind { address, source })?;
        let shared = Arc::new(Shared::new(redis, redis_client, db, Arc::new(settings)));
        Ok(Self { shared, handlers, ops, ops_address })
    }

    /// The address of `/health` and `/metrics`.
    pub fn ops_address(&self) -> SocketAddr {
        self.ops_address
    }

    /// The shared state (tests use its pools and settings).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Runs every loop until `shutdown` resolves, then stops reading, lets
    /// in-flight handlers finish (bounded), flushes acks and returns.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let Self { shared, handlers, ops, .. } = self;
        let metrics = Metrics::install();
        telemetry::describe();
        let token = CancellationToken::new();
        let mut tasks: JoinSet<(String, anyhow::Result<()>)> = JoinSet::new();
        let named = |name: String, fut: std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>| async move {
            (name, fut.await)
        };
        tasks.spawn(named("ops".into(), Box::pin(crate::ops::run(ops, metrics, token.clone()))));
        if shared.settings.worker.relay.enabled {
            tasks.spawn(named("relay".into(), Box::pin(crate::relay::run(shared.clone(), token.clone()))));
        }
        tasks.spawn(named("trimmer".into(), Box::pin(crate::trimmer::run(shared.clone(), token.clone()))));
        tasks.spawn(named("archiver".into(), Box::pin(crate::archiver::run(shared.clone(), token.clone()))));
        tasks.spawn(named("alerts".into(), Box::pin(crate::alerts::run(shared.clone(), token.clone()))));
        if handlers.iter().any(|h| h.group() == crate::handlers::jobs::GROUP) {
            tasks.spawn(named("scheduler".into(), Box::pin(crate::jobs::run(shared.clone(), token.clone()))));
        }
        for handler in handlers {
            if shared.settings.worker.groups.get(handler.group()).is_some_and(|g| !g.enabled) {
                continue;
            }
            let concurrency =
                shared.settings.worker.groups.get(handler.group()).map_or(DEFAULT_CONCURRENCY, |g| g.concurrency);
            for stream in handler.streams() {
                let name = format!("group {} on {stream}", handler.group());
                let lane = lane::run(shared.clone(), handler.clone(), stream, concurrency, token.clone());
                tasks.spawn(named(name, Box::pin(lane)));
            }
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                ended = tasks.join_next() => match ended {
                    Some(Ok((name, Ok(())))) => tracing::warn!(task = name, "task ended early"),
                    Some(Ok((name, Err(error)))) => tracing::error!(task = name, error = format!("{error:#}"), "task failed"),
                    Some(Err(error)) => tracing::error!(error = %error, "task panicked"),
                    None => break,
                },
            }
        }
        tracing::info!("shutting down: no new reads; draining in-flight handlers");
        token.cancel();
        while let Some(ended) = tasks.join_next().await {
            match ended {
                Ok((name, Ok(()))) => tracing::debug!(task = name, "stopped"),
                Ok((name, Err(error))) => {
                    tracing::error!(task = name, error = format!("{error:#}"), "stopped with an error")
                }
                Err(error) => tracing::error!(error = %error, "task panicked while stopping"),
            }
        }
        shared.db.close().await;
        shared.redis.close();
    }
}

/// Concurrency of a group that `[worker.groups]` does not list.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub use xentri_core::shutdown::signal as shutdown_signal;
