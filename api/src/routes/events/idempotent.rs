//! The idempotent append: the event is appended under its `Idempotency-Key`,
//! or the answer that key already holds is replayed.
//!
//! The key is claimed in the append's own statement. A key taken by a
//! finished request has its answer read back in a second transaction, and
//! that answer can expire in between: the key is then free again and the
//! append is tried once more. A key whose first request is still in flight
//! is a 409, at once.

use xentri_core::store::AppendOutcome;
use xentri_core::{NewEvent, StoredEvent};

use crate::events;
use crate::idempotency::{self, IdempotencyKey, StoredResponse};
use crate::problem::ApiError;
use crate::state::AppState;

/// How many times the append is tried: a second pass only when the key's
/// answer expired between the append and the read-back.
const ATTEMPTS: usize = 2;

/// What an idempotent append came to.
#[derive(Debug)]
pub enum Appended {
    /// The event is stored now: the envelope as stored.
    Stored(StoredEvent),
    /// The key was used by a finished request with the same hash: its answer.
    Replayed(StoredResponse),
}

/// Appends `event` under `key` for the request hashed as `request_hash`, or
/// returns the key's stored answer; 409 while the key's first request is in
/// flight, 422 when the key was used with another request.
pub async fn append_or_replay(
    state: &AppState,
    event: &NewEvent,
    key: &IdempotencyKey,
    request_hash: &[u8],
) -> Result<Appended, ApiError> {
    for _ in 0..ATTEMPTS {
        match events::append(&state.appender, event, key, request_hash).await? {
            AppendOutcome::Appended(seq) => {
                let stored = event.clone().stored(seq);
                state.outbox.committed();
                metrics::counter!("events_appended_total").increment(1);
                tracing::debug!(event_id = %stored.id, seq = stored.seq, event_type = %stored.event_type, "event appended");
                return Ok(Appended::Stored(stored));
            }
            AppendOutcome::KeyInFlight => return Err(idempotency::in_flight()),
            AppendOutcome::KeyAnswered => {
                let mut tx = state.db.begin(event.org_id).await?;
                let stored = idempotency::stored(&mut tx, key).await?;
                tx.finish_read();
                if let Some(stored) = stored {
                    return Ok(Appended::Replayed(stored.replay_for(request_hash)?));
                }
            }
        }
    }
    Err(ApiError::Internal(anyhow::anyhow!("idempotency key kept changing")))
}
