//! The open connections: how many there may be, and when one is closed.
//!
//! Every accepted connection is registered in [`Connections`] and is, at any
//! moment, either *answering* (a request was handed to the edge and its answer
//! is not yet written out) or *quiet* (waiting for a request, or receiving one's
//! head) since some instant. A connection is closed:
//! - by the keep-alive idle timeout: quiet, with no byte of a next request,
//!   for `api.keep_alive_timeout_ms`;
//! - by the cap: at `api.max_connections` a new connection makes the one that
//!   has been quiet longest close (nginx reuses its keep-alive connections the
//!   same way), so idle or slow clients can never lock others out. When every
//!   connection is answering a request the new one waits, and the listener
//!   accepts nothing more (later connections wait in the kernel's backlog)
//!   until one closes. Nothing here takes a database connection;
//! - at shutdown: all of them.
//!
//! A quiet connection is closed at once; an answering one finishes its answer
//! first (hyper's graceful shutdown) and then closes.
//!
//! A quiet connection whose next request has begun (a byte arrived) is
//! closed when its head has not arrived whole within
//! `api.header_read_timeout_ms` of that first byte. hyper's own header timer
//! would run from the last answer, idle time included, and so cut every
//! keep-alive to the head timeout; it is set past both, as a backstop.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The registry of open connections, with room for at most `max` of them.
pub struct Connections {
    /// One permit per connection that may be open.
    room: Arc<Semaphore>,
    /// The cap (the semaphore's size).
    max: u32,
    /// The open connections by id.
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    /// The next connection's id.
    next_id: AtomicU64,
}

/// One open connection's state, shared by its task, its I/O and its service.
pub struct Connection {
    /// Where the connection stands.
    state: Mutex<State>,
    /// Woken to close the connection (the cap, or shutdown).
    close: Notify,
    /// Woken when the first byte of a next request arrives: the connection's
    /// deadline changes from the keep-alive timeout to the head timeout.
    head_started: Notify,
}

#[derive(Debug)]
struct State {
    /// Requests handed to the edge whose answers are not yet written out.
    answering: usize,
    /// When the connection last became quiet (opened, or answered its last request).
    quiet_since: Instant,
    /// When the first byte of a next request arrived, since it became quiet.
    arriving_since: Option<Instant>,
    /// Asked to close already.
    closing: bool,
}

/// A place among the open connections, released when dropped.
/// How long a quiet connection may stay open.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request to its whole head.
    pub header: Duration,
    /// Without a byte of a next request.
    pub keep_alive: Duration,
}

/// A connection let in under the cap: it leaves the registry when dropped.
pub struct Admitted {
    /// The connection's shared state.
    connection: Arc<Connection>,
    /// Its key in the registry.
    id: u64,
    /// The registry, to leave it.
    connections: Arc<Connections>,
    /// Its share of the cap.
    _permit: OwnedSemaphorePermit,
}

/// Marks a request of a connection as being answered, until dropped.
pub struct Answering(Arc<Connection>);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent whatever panicked while holding it: every
    // update is a single assignment.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connections {
    /// Room for at most `max` connections (clamped to 1..=1,000,000).
    pub fn new(max: usize) -> Arc<Self> {
        let max = u32::try_from(max.clamp(1, 1_000_000)).unwrap_or(1_000_000);
        Arc::new(Self {
            room: Arc::new(Semaphore::new(max as usize)),
            max,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// Registers one more connection, waiting for room: at the cap, the
    /// connection quiet the longest is asked to close first. `None` only if
    /// the registry is gone.
    pub async fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let permit = match self.room.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !self.close_longest_quiet() {
                    tracing::debug!("every connection is answering a request: the new one waits for room");
                }
                self.room.clone().acquire_owned().await.ok()?
            }
        };
        let connection = Arc::new(Connection {
            state: Mutex::new(State {
                answering: 0,
                quiet_since: Instant::now(),
                arriving_since: None,
                closing: false,
            }),
            close: Notify::new(),
            head_started: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.open).insert(id, connection.clone());
        Some(Admitted { connection, id, connections: self.clone(), _permit: permit })
    }

    /// Asks the connection that has been quiet longest to close; false when
    /// every connection is answering (or closing already).
    fn close_longest_quiet(&self) -> bool {
        let open = lock(&self.open);
        let mut longest: Option<(Instant, &Arc<Connection>)> = None;
        for connection in open.values() {
            let state = lock(&connection.state);
            if state.answering == 0 && !state.closing && longest.is_none_or(|(since, _)| state.quiet_since < since) {
                longest = Some((state.quiet_since, connection));
            }
        }
        match longest {
            Some((_, connection)) => {
                connection.ask_to_close();
                true
            }
            None => false,
        }
    }

    /// Asks every open connection to close (shutdown): quiet ones close at
    /// once, answering ones after their answer.
    pub fn close_all(&self) {
        for connection in lock(&self.open).values() {
            connection.ask_to_close();
        }
    }

    /// Resolves once every admitted connection has closed.
    pub async fn all_closed(&self) {
        let _all = self.room.acquire_many(self.max).await;
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        lock(&self.open).len()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        lock(&self.connections.open).remove(&self.id);
    }
}

impl Admitted {
    /// The connection's shared state.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// Drives `connection` (hyper's) until it ends or is closed: by the
    /// keep-alive idle timeout, by the cap, or at shutdown. `graceful` starts
    /// hyper's graceful shutdown of it, for a connection answering a request.
    pub async fn serve<C, E>(self, connection: C, timeouts: Timeouts, graceful: impl Fn(Pin<&mut C>))
    where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        tokio::pin!(connection);
        let shared = self.connection.clone();
        let mut draining = false;
        loop {
            let idle_deadline = shared.quiet_deadline(timeouts);
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(error) = ended {
                        tracing::debug!(error = %error, "connection ended with an error");
                    }
                    return;
                }
                () = shared.close.notified(), if !draining => {
                    if !shared.is_answering() {
                        return;
                    }
                    graceful(connection.as_mut());
                    draining = true;
                }
                () = shared.head_started.notified(), if !draining => {}
                () = tokio::time::sleep_until(idle_deadline), if !draining => {
                    if let Some(why) = shared.overdue(timeouts) {
                        tracing::debug!(why, "closing a quiet connection");
                        return;
                    }
                }
            }
        }
    }
}

impl Connection {
    /// Marks a request as handed to the edge; the connection is answering
    /// until the returned guard drops (once its answer is written out).
    pub fn answering(self: &Arc<Self>) -> Answering {
        let mut state = lock(&self.state);
        state.answering += 1;
        Answering(self.clone())
    }

    fn is_answering(&self) -> bool {
        lock(&self.state).answering > 0
    }

    fn ask_to_close(&self) {
        lock(&self.state).closing = true;
        // A stored permit if the task is not waiting right now: not lost.
        self.close.notify_one();
    }

    fn bytes_arrived(&self) {
        let mut state = lock(&self.state);
        if state.answering == 0 && state.arriving_since.is_none() {
            state.arriving_since = Some(Instant::now());
            self.head_started.notify_one();
        }
    }

    /// When a quiet connection is overdue if nothing changes: the head
    /// timeout after the first byte of a request, else the keep-alive timeout
    /// after it became quiet. While it answers, when to look again.
    fn quiet_deadline(&self, timeouts: Timeouts) -> Instant {
        let state = lock(&self.state);
        match (state.answering, state.arriving_since) {
            (0, Some(since)) => since + timeouts.header,
            (0, None) => state.quiet_since + timeouts.keep_alive,
            _ => Instant::now() + timeouts.keep_alive,
        }
    }

    /// Why a quiet connection is to be closed now, if it is: its request head
    /// has taken longer than the head timeout, or no request came within the
    /// keep-alive timeout.
    fn overdue(&self, timeouts: Timeouts) -> Option<&'static str> {
        let state = lock(&self.state);
        match (state.answering, state.arriving_since) {
            (0, Some(since)) if since.elapsed() >= timeouts.header => Some("request head too slow"),
            (0, None) if state.quiet_since.elapsed() >= timeouts.keep_alive => Some("idle for the keep-alive timeout"),
            _ => None,
        }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.answering = state.answering.saturating_sub(1);
        if state.answering == 0 {
            state.quiet_since = Instant::now();
            state.arriving_since = None;
        }
    }
}

/// A connection's stream, noting when bytes of a request arrive (so a
/// request being received is not taken for an idle connection).
pub struct Watched<T> {
    /// The stream.
    inner: T,
    /// Whose bytes they are.
    connection: Arc<Connection>,
}

impl<T> Watched<T> {
    /// Watches `inner`, the stream of `connection`.
    pub fn new(inner: T, connection: Arc<Connection>) -> Self {
        Self { inner, connection }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.connection.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_longest_quiet_connection_is_asked_to_close() {
        let connections = Connections::new(2);
        let oldest = connections.admit().await.expect("room");
        let busy = connections.admit().await.expect("room");
        let _answering = busy.connection().answering();
        let admitting = tokio::spawn({
            let connections = connections.clone();
            async move { connections.admit().await.map(|a| a.id) }
        });
        // The quiet one is asked to close; the answering one is left alone.
        oldest.connection().close.notified().await;
        assert!(!lock(&busy.connection().state).closing);
        drop(oldest);
        assert!(admitting.await.expect("admit task").is_some());
    }

    #[tokio::test]
    async fn when_every_connection_answers_a_new_one_waits_for_room() {
        let connections = Connections::new(1);
        let busy = connections.admit().await.expect("room");
        let answering = busy.connection().answering();
        let waiting = tokio::time::timeout(Duration::from_millis(100), connections.admit()).await;
        assert!(waiting.is_err(), "admitted past the cap while every connection answers");
        drop(answering);
        drop(busy);
        assert!(connections.admit().await.is_some());
        assert_eq!(connections.open(), 0, "the admitted connection was dropped with its guard");
    }
}
