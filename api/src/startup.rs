//! Building and running the api: pools, migrations, the listener, graceful shutdown.
//!
//! [`Application::build`] binds its own listener, so tests run it on port 0
//! in-process; [`Application::run_until_stopped`] serves until `shutdown`
//! resolves, then stops accepting, lets in-flight requests finish within
//! `api.shutdown_grace_ms`, and closes the pools. Connections are capped and
//! closed when idle or slow by [`crate::connections`] and hyper's header read
//! timeout; request bodies are bounded in time and size by the [`Edge`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use xentri_core::Settings;

use crate::appender::{Appender, AppenderConfig};
use crate::auth::Authenticator;
use crate::connections::{Connections, Timeouts, Watched};
use crate::db::Db;
use crate::edge::{Body, BoxError, Edge, Limits};
use crate::metrics::Metrics;
use crate::state::AppState;

/// Why the api could not start; each is one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// PostgreSQL or Redis could not be opened, migrated or trusted.
    #[error(transparent)]
    Stores(#[from] xentri_core::startup::StoresError),
    /// The token keys could not be loaded.
    #[error("cannot load token keys: {0}")]
    Auth(#[from] crate::auth::jwks::JwksError),
    /// A dev-token secret is configured and the api would listen beyond this
    /// machine: anyone who can reach it could mint tokens for every org.
    #[error(
        "auth.dev_secret is set but api.host {host} is not a loopback address: dev tokens would be accepted from the network; unset auth.dev_secret (XENTRI_AUTH__DEV_SECRET=\"\") or listen on 127.0.0.1"
    )]
    DevSecretOnPublicAddress {
        /// The configured host.
        host: std::net::IpAddr,
    },
    /// An embedded event contract does not compile (a build with a broken
    /// file under `schemas/`).
    #[error("cannot load the event contracts: {0}")]
    Contracts(#[from] xentri_core::contracts::ContractError),
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
        if settings.auth.dev_secret().is_some() && !settings.api.host.is_loopback() {
            return Err(StartupError::DevSecretOnPublicAddress { host: settings.api.host });
        }
        let contracts = Arc::new(xentri_core::contracts::Contracts::load()?);
        let xentri_core::startup::Stores { db: pool, redis } =
            xentri_core::startup::open_stores(&settings, "xentri-api").await?;
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
            contracts,
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
        let api = &state.settings.api;
        let edge = Edge::new(
            crate::routes::routes(state.clone()),
            Limits {
                body_bytes: api.body_limit_bytes,
                bulk_body_bytes: api.bulk_body_limit_bytes,
                body_read_timeout: api.body_read_timeout(),
                max_concurrent: api.max_concurrent_requests,
            },
            state.in_flight.clone(),
        )
        .authenticating(state.auth.clone())
        .with_language_choices(state.db.clone());
        let connections = Connections::new(api.max_connections);
        let timeouts = Timeouts { header: api.header_read_timeout(), keep_alive: api.keep_alive_timeout() };
        let mut builder = http1::Builder::new();
        // The connection registry times a head from its first byte and an idle
        // connection from its last answer. hyper's own header timer runs from
        // the last answer, idle time included, so it would cut keep-alive to
        // the head timeout; it stays only as a backstop past both.
        builder.timer(TokioTimer::new()).header_read_timeout(timeouts.keep_alive + timeouts.header);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly
                    // rather than spin.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // At the cap this closes the longest-quiet connection, or waits
            // for one to close; meanwhile later connections wait in the backlog.
            let admitted = tokio::select! {
                admitted = connections.admit() => admitted,
                () = &mut shutdown => break,
            };
            let Some(admitted) = admitted else { break };
            let _ = stream.set_nodelay(true);
            let edge = edge.clone();
            let connection = admitted.connection().clone();
            let service = service_fn(move |request| {
                // Answering until the answer's body is written out and dropped.
                let answering = connection.answering();
                // Boxed: hyper keeps a slot the size of this future for the
                // connection's whole life, answering or idle; boxed, an idle
                // keep-alive connection holds a pointer instead of ~3 KB.
                edge.clone().handle(request).boxed().map(move |response| {
                    let response = response.unwrap_or_else(|never| match never {});
                    Ok::<_, Infallible>(response.map(move |body| Holding { body, _guard: answering }))
                })
            });
            let io = TokioIo::new(Watched::new(stream, admitted.connection().clone()));
            let served = builder.serve_connection(io, service);
            tokio::spawn(admitted.serve(served, timeouts, |served| served.graceful_shutdown()));
        }
        drop(listener);
        let grace = state.settings.api.shutdown_grace();
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            in_flight = state.in_flight(),
            "shutting down: draining in-flight requests"
        );
        connections.close_all();
        if tokio::time::timeout(grace, connections.all_closed()).await.is_err() {
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

/// An answer's body that keeps `_guard` (the connection's "answering" mark)
/// until the body is written out and dropped. It passes the body's size on,
/// so an answer of known length goes out with `Content-Length`, not chunked.
struct Holding<G> {
    body: Body,
    _guard: G,
}

impl<G: Unpin> http_body::Body for Holding<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
