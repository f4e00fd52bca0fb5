//! Wakes the worker's relay after appends, coalesced: however many appends
//! commit while one `NOTIFY` is under way, one more follows, so the relay
//! hears of every commit without a `NOTIFY` per request.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::db::Db;

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
            }
        });
        Self { wake }
    }

    /// Records that an outbox row committed.
    pub fn committed(&self) {
        self.wake.notify_one();
    }
}
