//! The event counts projection: events per (org, type) and the last `seq`
//! seen, in PostgreSQL, written in the same transaction as the processed
//! record — the reference Postgres handler.

use xentri_core::{Settings, StoredEvent};

use crate::handler::{Batch, BoxFuture, Handler, HandlerError, Handling, PgDelivery, PostgresStoreHandler};

/// The group name.
pub const GROUP: &str = "event_counts";

/// Counts every event of the events stream.
pub struct EventCounts {
    stream: String,
}

impl EventCounts {
    /// Reads the events stream.
    pub fn new(settings: &Settings) -> Self {
        Self { stream: settings.streams.events.work.clone() }
    }
}

impl Handler for EventCounts {
    fn group(&self) -> &str {
        GROUP
    }

    fn streams(&self) -> Vec<String> {
        vec![self.stream.clone()]
    }

    fn accepts(&self, _event_type: &str) -> bool {
        true
    }

    fn handling(&self) -> Handling<'_> {
        Handling::Postgres(self)
    }
}

/// Counts `event` in `tx` (a transaction with its org set), in lane slot
/// `slot`'s row (see [`PgDelivery::slot`]).
pub async fn count(tx: &mut sqlx::PgConnection, event: &StoredEvent, slot: u16) -> Result<(), HandlerError> {
    sqlx::query(xentri_core::sql::COUNT_EVENT)
        .bind(event.org_id)
        .bind(event.event_type.as_str())
        .bind(event.seq)
        .bind(i16::try_from(slot).unwrap_or(i16::MAX))
        .execute(tx)
        .await
        .map_err(|e| HandlerError::Transient(e.into()))?;
    Ok(())
}

impl PostgresStoreHandler for EventCounts {
    fn handle<'a>(&'a self, delivery: PgDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(count(delivery.tx, delivery.event, delivery.slot))
    }

    /// The events of a read batch, of any orgs, in one call of
    /// `count_events`: a count and the highest seq per (org, type), each
    /// org's rows written under that org.
    fn handle_batch<'a>(&'a self, batch: Batch<'a>) -> Option<BoxFuture<'a, Result<(), HandlerError>>> {
        Some(Box::pin(async move {
            let mut per_type: std::collections::BTreeMap<(uuid::Uuid, &str), (i64, i64)> =
                std::collections::BTreeMap::new();
            for event in batch.events {
                let (count, last) = per_type.entry((event.org_id, event.event_type.as_str())).or_insert((0, event.seq));
                *count += 1;
                *last = (*last).max(event.seq);
            }
            if per_type.is_empty() {
                return Ok(());
            }
            let orgs: Vec<uuid::Uuid> = per_type.keys().map(|(org, _)| *org).collect();
            let types: Vec<&str> = per_type.keys().map(|(_, kind)| *kind).collect();
            let counts: Vec<i64> = per_type.values().map(|(count, _)| *count).collect();
            let lasts: Vec<i64> = per_type.values().map(|(_, last)| *last).collect();
            sqlx::query(xentri_core::sql::COUNT_EVENTS)
                .bind(i16::try_from(batch.slot).unwrap_or(i16::MAX))
                .bind(&orgs)
                .bind(&types)
                .bind(&counts)
                .bind(&lasts)
                .execute(batch.tx)
                .await
                .map_err(|e| HandlerError::Transient(e.into()))?;
            Ok(())
        }))
    }
}
