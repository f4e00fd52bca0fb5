//! The event counts projection: events per (org, type) and the last `seq`
//! seen, in PostgreSQL, written in the same transaction as the processed
//! record — the reference Postgres handler.

use xentri_core::{Settings, StoredEvent};

use crate::handler::{BoxFuture, Handler, HandlerError, Handling, OrgBatch, PgDelivery, PostgresStoreHandler};

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

    /// The events of one org in one statement: a count and the highest seq
    /// per type.
    fn handle_org_batch<'a>(&'a self, batch: OrgBatch<'a>) -> Option<BoxFuture<'a, Result<(), HandlerError>>> {
        Some(Box::pin(async move {
            let Some(first) = batch.events.first() else { return Ok(()) };
            let mut per_type: std::collections::BTreeMap<&str, (i64, i64)> = std::collections::BTreeMap::new();
            for event in batch.events {
                let (count, last) = per_type.entry(event.event_type.as_str()).or_insert((0, event.seq));
                *count += 1;
                *last = (*last).max(event.seq);
            }
            let types: Vec<&str> = per_type.keys().copied().collect();
            let counts: Vec<i64> = per_type.values().map(|(count, _)| *count).collect();
            let lasts: Vec<i64> = per_type.values().map(|(_, last)| *last).collect();
            sqlx::query(xentri_core::sql::COUNT_EVENTS)
                .bind(first.org_id)
                .bind(&types)
                .bind(&counts)
                .bind(&lasts)
                .bind(i16::try_from(batch.slot).unwrap_or(i16::MAX))
                .execute(batch.tx)
                .await
                .map_err(|e| HandlerError::Transient(e.into()))?;
            Ok(())
        }))
    }
}
