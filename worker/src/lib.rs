//! The Xentri worker.
//!
//! - [`relay`]: committed outbox rows → `XADD` to their streams, in `seq` order.
//! - [`runtime`]: consumer groups running [`handler::Handler`]s with idempotency,
//!   retry with backoff, dead-letter routing and reclaim of abandoned entries.
//! - [`handlers`]: the built-in groups (cache invalidation, event counts, jobs).
//! - [`jobs`]: the scheduler of periodic jobs; [`trimmer`]: safe stream trimming.
//! - [`purge`]: bounded purges (expired idempotency keys, old processed records).
//! - [`archiver`]: moves day-old dead letters to expiring archive streams.
//! - [`alerts`]: DLQ growth and repeated correlation ids → log, gauge, webhook.
//! - [`ops`]: `/health` and `/metrics` on the worker's own port.
//! - [`app`]: wiring, start-up and graceful shutdown; [`supervisor`]: every
//!   long-running task restarted when it ends or panics.
//! - [`pause`]: a test hook that parks a task at a named point (crash tests).
//! - `testing` (feature `testing`, tests only): one handler run against a real
//!   stream through the runtime, without the rest of the worker.

pub mod alerts;
pub mod app;
pub mod archiver;
pub mod audit;
pub mod handler;
pub mod handlers;
pub mod jobs;
pub mod ops;
pub mod pause;
pub mod purge;
pub mod relay;
pub mod runtime;
pub mod supervisor;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trimmer;
