//! Pause points: a test hook that parks a task at a named point of the worker
//! so a crash test can SIGKILL the process exactly there. Set with
//! `worker.pause_at = "<point>[:<n>]"` (the n-th time the point is reached,
//! default the first); unset in every shipped profile, where each point costs
//! one relaxed load.
//!
//! The points:
//! - `relay.published`: the relay's `XADD`s are on the stream, their outbox
//!   rows not yet deleted (a restart publishes them again);
//! - `lane.batch`: a read batch was delivered (its entries are pending on this
//!   consumer) and none of it has run yet;
//! - `entry.handled`: an entry's handler succeeded, its ack not yet queued
//!   (the rest of its read batch goes on meanwhile);
//! - `acker.flush`: a batch of acks (and Redis processed records) is queued
//!   and not yet sent;
//! - `lane.reclaimed`: entries were claimed from a dead consumer and not yet run;
//! - `trimmer.trim`: the trimmer has computed how far it may trim and not yet
//!   trimmed.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The configured point and how many times it has been reached.
struct Armed {
    point: String,
    nth: u64,
    reached: AtomicU64,
}

static ARMED: OnceLock<Armed> = OnceLock::new();

/// Arms the point `spec` (`point[:n]`) for this process; later calls are ignored.
pub fn arm(spec: &str) {
    let (point, nth) = match spec.rsplit_once(':') {
        Some((point, n)) if n.parse::<u64>().is_ok() => (point, n.parse().unwrap_or(1)),
        _ => (spec, 1),
    };
    let _ = ARMED.set(Armed { point: point.to_owned(), nth: nth.max(1), reached: AtomicU64::new(0) });
}

/// Parks the calling task forever when `point` is the armed one, reached for
/// the configured time; returns at once otherwise.
pub async fn reached(point: &str) {
    let Some(armed) = ARMED.get() else { return };
    if armed.point != point || armed.reached.fetch_add(1, Ordering::Relaxed) + 1 != armed.nth {
        return;
    }
    tracing::warn!(point, "pause point reached");
    std::future::pending::<()>().await;
}
