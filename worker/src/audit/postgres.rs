//! What the audit reads from PostgreSQL, always as the relay role (it reads
//! every org's events, the outbox and the processed records, and writes
//! nothing): the end of the range with the outbox, pages of events with their
//! processed records, and whole events to republish.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;
use xentri_core::{StoredEvent, sql};

use super::{AuditError, PAGE, Sources};

/// One event of a page, with what the audit needs of it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct EventRow {
    /// Global sequence.
    pub seq: i64,
    /// Event id.
    pub id: Uuid,
    /// Tenant.
    pub org_id: Uuid,
    /// Type name.
    #[sqlx(rename = "type")]
    pub event_type: String,
    /// Who appended it (decides its stream).
    pub actor: String,
    /// When it was appended.
    pub occurred_at: DateTime<Utc>,
    /// The group's PostgreSQL processed record exists.
    pub processed: bool,
}

/// A transaction running as the relay role.
async fn as_relay(sources: &Sources) -> Result<Transaction<'static, Postgres>, AuditError> {
    Ok(xentri_core::db::begin_as(&sources.db, xentri_core::roles::RELAY, None).await?)
}

/// The highest committed `seq`, and the seqs still in the outbox for
/// `streams`, read in one statement (one snapshot): every event at or below
/// that seq is either in this outbox read or already on its stream.
pub(super) async fn top_and_outbox(sources: &Sources, streams: &[String]) -> Result<(i64, HashSet<i64>), AuditError> {
    let mut tx = as_relay(sources).await?;
    let (top, outbox): (i64, Vec<i64>) =
        sqlx::query_as(sql::AUDIT_TOP_AND_OUTBOX).bind(streams).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok((top, outbox.into_iter().collect()))
}

/// Up to [`PAGE`] events with `after < seq <= through` (and `occurred_at >=
/// since` when given), in `seq` order, each with whether `group` has a
/// PostgreSQL processed record of it.
pub(super) async fn page(
    sources: &Sources,
    group: &str,
    after: i64,
    through: i64,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<EventRow>, AuditError> {
    let mut tx = as_relay(sources).await?;
    let rows = sqlx::query_as(sql::AUDIT_PAGE)
        .bind(group)
        .bind(after)
        .bind(through)
        .bind(since)
        .bind(PAGE)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// The events `seqs`, in `seq` order.
pub(super) async fn events(sources: &Sources, seqs: &[i64]) -> Result<Vec<StoredEvent>, AuditError> {
    let mut tx = as_relay(sources).await?;
    let events = sqlx::query_as(sql::EVENTS_BY_SEQ).bind(seqs).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(events)
}

/// True when the error says PostgreSQL could not be reached rather than that
/// it refused a statement or the login.
pub(super) fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions, shutting down.
        sqlx::Error::Database(e) => e.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// True when PostgreSQL answered but would not let this login in: an unknown
/// role, a wrong password, no such database. Trying again changes nothing;
/// the configuration must.
pub(super) fn is_refused_login(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => e.code().is_some_and(|code| code.starts_with("28") || code == "3D000"),
        _ => false,
    }
}

/// A hint after a refused statement, where one helps.
pub(super) fn hint(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Database(e) if e.code().as_deref() == Some("42501") => {
            " (the relay role may not read this: apply the migrations, e.g. `api migrate`)"
        }
        _ => "",
    }
}
