//! Wakes the worker's relay after appends, coalesced: however many appends
//! commit while one `NOTIFY` is under way or within [`MIN_GAP`] after it, one
//! more follows, so the relay hears of every commit without a `NOTIFY` per
//! request. Each `NOTIFY` is a transaction of its own and wakes the relay for
//! a publishing transaction: under load, back-to-back notifications would
//! cost the database two transactions per few events.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::Db;

/// The shortest time between two notifications: at most this much is added to
/// the relay's latency, and at most 1 s / `MIN_GAP` notifications are sent.
pub const MIN_GAP: Duration = Duration::from_millis(5);

/// A handle that marks "an outbox row committed".
#[derive(Clone)]
pub struct OutboxNotifier {
    wake: Arc<Notify>,
}

impl OutboxNotifier {
    /// Starts the background task that sends the notifications.
    pub fn spawn(db: Db) -> Self {
        let wake = Arc::new(Notify::new());
        let task_wake = wake.clone();
        tokio::spawn(async move {
            loop {
                // A permit stored by `notify_one` while we were sending makes
                // this return at once: nothing is missed, bursts coalesce.
                task_wake.notified().await;
                if let Err(error) = db.notify_outbox().await {
                    tracing::debug!(error = %error, "outbox notification not sent; the relay polls");
                }
                tokio::time::sleep(MIN_GAP).await;
            }
        });
        Self { wake }
    }

    /// Records that an outbox row committed.
    pub fn committed(&self) {
        self.wake.notify_one();
    }
}
