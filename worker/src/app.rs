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
use crate::runtime::{Shared, telemetry};
use crate::supervisor::{GaveUp, Policy, Task, supervise};

/// Why the worker could not start; each is one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// PostgreSQL or Redis could not be opened, migrated or trusted.
    #[error(transparent)]
    Stores(#[from] xentri_core::startup::StoresError),
    /// `redis.url` is not a Redis URL (dedicated connections).
    #[error("configuration error: invalid value for `redis.url`: {0}")]
    RedisClient(#[source] redis::RedisError),
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
        if let Some(point) = &settings.worker.pause_at {
            crate::pause::arm(point);
            tracing::warn!(point, "test hook armed: the task reaching this point will be parked");
        }
        let xentri_core::startup::Stores { db, redis } =
            xentri_core::startup::open_stores(&settings, "xentri-worker").await?;
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
        let mut readers: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for handler in &handlers {
            if settings.worker.groups.get(handler.group()).is_some_and(|g| !g.enabled) {
                continue;
            }
            for stream in handler.streams() {
                readers.entry(stream).or_default().push(handler.group().to_owned());
            }
        }
        let shared = Arc::new(Shared::new(redis, redis_client, db, Arc::new(settings)).with_readers(readers));
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
    /// in-flight handlers finish (bounded), flushes acks and returns. Each
    /// loop runs supervised (restarted when it ends or panics); a loop that
    /// keeps failing, or the ops server ending, stops the worker with an
    /// error, which `main` turns into a non-zero exit.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> Result<(), Fatal> {
        let Self { shared, handlers, ops, .. } = self;
        let metrics = Metrics::install();
        telemetry::describe();
        let token = CancellationToken::new();
        let health = shared.health.clone();
        let mut ops = tokio::spawn(crate::ops::run(ops, metrics, health.clone(), token.clone()));
        // Every group first: an entry relayed or trimmed before a group of
        // this worker exists would never reach that group.
        tokio::pin!(shutdown);
        let stopped = tokio::select! {
            () = shared.create_groups(&token) => false,
            () = &mut shutdown => true,
        };
        let mut supervisors = JoinSet::new();
        let mut fatal = None;
        if !stopped {
            let policy = Policy::from(&shared.settings.worker.supervisor);
            for task in tasks(&shared, handlers, &token) {
                supervisors.spawn(supervise(task, health.clone(), policy, token.clone()));
            }
            fatal = loop {
                tokio::select! {
                    () = &mut shutdown => break None,
                    ended = &mut ops => break Some(Fatal::Ops(match ended {
                        Ok(Ok(())) => "ended".to_owned(),
                        Ok(Err(error)) => format!("{error:#}"),
                        Err(join) => join.to_string(),
                    })),
                    ended = supervisors.join_next() => match ended {
                        Some(Ok(Ok(()))) => {}
                        Some(Ok(Err(gave_up))) => break Some(Fatal::Task(gave_up)),
                        Some(Err(join)) => break Some(Fatal::Supervisor(join.to_string())),
                        None => break None,
                    },
                }
            };
        }
        match &fatal {
            Some(error) => tracing::error!(error = %error, "stopping the worker: it cannot run without this task"),
            None => tracing::info!("shutting down: no new reads; draining in-flight handlers"),
        }
        token.cancel();
        while let Some(ended) = supervisors.join_next().await {
            if let Ok(Err(gave_up)) = ended {
                tracing::error!(error = %gave_up, "task given up while stopping");
            }
        }
        if !ops.is_finished() {
            let _ = ops.await;
        }
        shared.db.close().await;
        shared.redis.close();
        fatal.map_or(Ok(()), Err)
    }
}

impl Worker {
    /// Runs the worker in a task of its own until [`RunningWorker::stop`]
    /// (tests and benchmarks that run it in-process).
    pub fn spawn(self) -> RunningWorker {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(self.run_until_stopped(async {
            let _ = stopped.await;
        }));
        RunningWorker { stop, handle }
    }
}

/// A worker running in a task of its own.
pub struct RunningWorker {
    /// Fires the shutdown.
    stop: tokio::sync::oneshot::Sender<()>,
    /// The worker's run.
    handle: tokio::task::JoinHandle<Result<(), Fatal>>,
}

impl RunningWorker {
    /// Signals shutdown and waits until the worker has drained.
    pub async fn stop(self) -> Result<(), Fatal> {
        let _ = self.stop.send(());
        self.handle.await.unwrap_or_else(|join| Err(Fatal::Supervisor(join.to_string())))
    }
}

/// Why the worker stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// A task kept failing.
    #[error(transparent)]
    Task(#[from] GaveUp),
    /// The ops server (`/health`, `/metrics`) ended; it cannot be restarted
    /// on the listener it consumed.
    #[error("the ops server ended: {0}")]
    Ops(String),
    /// A supervisor itself panicked.
    #[error("a supervisor ended: {0}")]
    Supervisor(String),
}

/// A periodic loop of the worker, started from the shared state.
type Loop = fn(Arc<Shared>, CancellationToken) -> crate::supervisor::TaskFuture;

/// One supervised task that `start` starts afresh at each restart.
fn task<F, Fut>(name: &str, critical: bool, start: F) -> Task
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Task { name: name.to_owned(), critical, start: Box::new(move || Box::pin(start())) }
}

/// Every long-running task of the worker: the relay, the periodic loops and a
/// lane per group and stream. The relay and the lanes are critical: readiness
/// fails while one of them is down.
fn tasks(shared: &Arc<Shared>, handlers: Vec<Arc<dyn Handler>>, token: &CancellationToken) -> Vec<Task> {
    let mut tasks = Vec::new();
    let loops: [(&str, bool, Loop); 3] = [
        ("trimmer", false, |s, t| Box::pin(crate::trimmer::run(s, t))),
        ("archiver", false, |s, t| Box::pin(crate::archiver::run(s, t))),
        ("alerts", false, |s, t| Box::pin(crate::alerts::run(s, t))),
    ];
    if shared.settings.worker.relay.enabled {
        let (s, t) = (shared.clone(), token.clone());
        tasks.push(task("relay", true, move || crate::relay::run(s.clone(), t.clone())));
    }
    for (name, critical, run) in loops {
        let (s, t) = (shared.clone(), token.clone());
        tasks.push(task(name, critical, move || run(s.clone(), t.clone())));
    }
    if handlers.iter().any(|h| h.group() == crate::handlers::jobs::GROUP) {
        let (s, t) = (shared.clone(), token.clone());
        tasks.push(task("scheduler", false, move || crate::jobs::run(s.clone(), t.clone())));
    }
    for handler in handlers {
        let group = shared.settings.worker.groups.get(handler.group());
        if group.is_some_and(|g| !g.enabled) {
            continue;
        }
        let concurrency = group.map_or(DEFAULT_CONCURRENCY, |g| g.concurrency);
        for stream in handler.streams() {
            let (s, t, h) = (shared.clone(), token.clone(), handler.clone());
            let name = format!("group {} on {stream}", handler.group());
            tasks.push(task(&name, true, move || {
                crate::runtime::lane::run(s.clone(), h.clone(), stream.clone(), concurrency, t.clone())
            }));
        }
    }
    tasks
}

/// Concurrency of a group that `[worker.groups]` does not list.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub use xentri_core::shutdown::signal as shutdown_signal;
