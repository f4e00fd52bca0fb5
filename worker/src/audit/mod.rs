//! `worker audit` and `worker republish`: the events a consumer group should
//! have handled and has not, and putting them back on its stream.
//!
//! For a group, every event in the audited range that it takes (its type is
//! [`Handler::accepts`]ed and it is [`routed_to`] one of the group's streams)
//! is exactly one of, first match winning:
//!
//! - **handled**: its processed record exists;
//! - **pending**: delivered to the group, not yet acknowledged;
//! - **dead-lettered**: in the stream's DLQ, or one of its archives, with
//!   `dlq_group` = the group;
//! - **waiting**: not delivered yet: still in the outbox, or on the stream after
//!   the group's last-delivered id;
//! - **unverifiable**: an event older than its group's processed records are
//!   kept (a Redis-store group's TTL, a Postgres-store group's retention),
//!   whose record may simply have expired or been purged;
//! - **missing**: none of these. Nothing will handle it unless it is republished.
//!
//! A pending entry whose stream entry no longer exists is **lost**: Redis 7's
//! `XCLAIM` drops it from the pending list without returning it, so it is never
//! handled, and its event (unknown: the entry is gone) counts as missing.
//!
//! The audit reads while the worker runs, so it reads in the order an event
//! moves on: the outbox, the stream after last-delivered, the pending list, the
//! DLQ, its archives, and last (page by page) the processed records. An event
//! that moves on meanwhile is found by a later read, never reported missing.
//! The range ends at the highest `seq` committed when the outbox is read:
//! appenders take their seqs one at a time, so every event at or below it had
//! committed with its outbox row by then.
//!
//! Memory stays bounded for large ranges: events are read in pages of
//! [`PAGE`]; what is held in full is what Redis and the outbox hold (pending,
//! DLQ, waiting), plus the `seq` of every missing event.

pub mod cli;
mod error;
mod postgres;
mod redis_state;
pub mod report;
pub mod republish;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;
use xentri_core::Settings;
use xentri_core::stream::{Family, Keys};

pub use self::error::{AuditError, EXIT_FOUND, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE};
use crate::handler::{Handler, Store};
use crate::jobs::{JOB_ACTOR, PLATFORM_ORG};

/// Events read from PostgreSQL per round trip.
pub const PAGE: i64 = 10_000;
/// How long connecting to PostgreSQL or Redis may take before the audit gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one Redis command (a page, a pipeline) may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Event ids found in one Redis state; see [`redis_state`].
type IdSet = HashSet<Uuid>;

/// The stream family an event is published to.
///
/// The outbox row names the stream only until the relay deletes it, so the
/// audit derives it from who appended the event and its type. The jobs
/// stream has two producers: [`crate::jobs::enqueue`] (events of
/// [`PLATFORM_ORG`] by [`JOB_ACTOR`]) and the api's transition of a site to
/// `publishing`, whose site.build job is an org's event of type
/// [`xentri_core::site::BUILD_REQUESTED`]. Every other event is appended to
/// the events stream. **This must change when a new producer of a stream
/// appears** (another job source, the sync family, a second stream for api
/// events): otherwise the audit looks for its events on the wrong stream.
pub fn routed_to(org_id: Uuid, actor: &str, event_type: &str) -> Family {
    let platform_job = org_id == PLATFORM_ORG && actor == JOB_ACTOR;
    if platform_job || event_type == xentri_core::site::BUILD_REQUESTED { Family::Jobs } else { Family::Events }
}

/// Where the audited range starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Events with `seq` ≥ this.
    Seq(i64),
    /// Events that occurred at or after this instant.
    Time(DateTime<Utc>),
}

/// What an audit reads from: settings, PostgreSQL and one Redis connection.
pub struct Sources {
    /// Settings as loaded.
    pub settings: Settings,
    /// `redis.key_prefix` naming.
    pub keys: Keys,
    /// PostgreSQL; every statement runs as [`xentri_core::roles::RELAY`].
    pub db: PgPool,
    /// The connection every Redis command goes through (pipelined).
    pub redis: redis::aio::MultiplexedConnection,
}

impl Sources {
    /// Connects to both services and checks that they answer.
    pub async fn connect(settings: Settings) -> Result<Self, AuditError> {
        let mut database = settings.database.clone();
        database.acquire_timeout_ms = database.acquire_timeout_ms.min(CONNECT_TIMEOUT.as_millis() as u64);
        database.max_connections = 2;
        let db = xentri_core::db::connect_lazy(&database, "xentri-audit")
            .map_err(|error| AuditError::Usage(error.to_string()))?;
        // Whatever stops the first statement is a way in that failed: refused
        // (a configuration error) or not reached.
        sqlx::query(xentri_core::sql::PING).execute(&db).await.map_err(|error| match AuditError::from(error) {
            AuditError::Postgres(error) => AuditError::PostgresUnreachable(error),
            classified => classified,
        })?;
        let client = redis::Client::open(settings.redis.url.expose_secret()).map_err(|_| {
            // The URL may hold a password: never echo it.
            AuditError::Usage("configuration error: invalid value for `redis.url`: not a Redis URL".to_owned())
        })?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        // The client's own timeout covers the TCP connect; this one also covers
        // a server that accepts but never answers.
        let connecting = client.get_multiplexed_async_connection_with_config(&config);
        let mut redis = tokio::time::timeout(CONNECT_TIMEOUT * 2, connecting)
            .await
            .map_err(|_| {
                AuditError::RedisUnreachable(redis::RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )))
            })?
            .map_err(AuditError::RedisUnreachable)?;
        redis::cmd("PING").query_async::<()>(&mut redis).await.map_err(AuditError::RedisUnreachable)?;
        let keys = Keys::new(settings.redis.key_prefix.clone());
        Ok(Self { settings, keys, db, redis })
    }
}

/// The handler of built-in group `name`, as `[worker.groups]` configures it.
pub fn group_handler(settings: &Settings, name: &str) -> Result<Arc<dyn Handler>, AuditError> {
    let handlers = crate::handlers::builtin(settings, &[]).map_err(AuditError::Usage)?;
    if let Some(handler) = handlers.into_iter().find(|h| h.group() == name) {
        return Ok(handler);
    }
    let builtin = [crate::handlers::cache::GROUP, crate::handlers::counts::GROUP, crate::handlers::jobs::GROUP];
    Err(AuditError::Usage(if settings.worker.groups.contains_key(name) && builtin.contains(&name) {
        format!("group `{name}` is not enabled ([worker.groups.{name}] enabled = false): it handles nothing")
    } else {
        format!("unknown group `{name}`: built-in groups are {}", builtin.join(", "))
    }))
}

/// Events in each state; `checked` is their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Events read in the range, whatever their type and stream.
    pub scanned: u64,
    /// Of those, the events the group takes.
    pub checked: u64,
    /// With a processed record.
    pub handled: u64,
    /// Delivered, not yet acknowledged.
    pub pending: u64,
    /// In the DLQ or an archive, failed by this group.
    pub dead_lettered: u64,
    /// In the outbox, or on the stream after the group's last-delivered id.
    pub waiting: u64,
    /// Older than the processed records are kept (Redis TTL, PostgreSQL
    /// retention), no record.
    pub unverifiable: u64,
    /// Neither handled, pending, dead-lettered nor waiting.
    pub missing: u64,
}

/// An event the group has not handled and nothing will deliver to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingEvent {
    /// Global sequence.
    pub seq: i64,
    /// Event id.
    pub id: Uuid,
    /// Tenant.
    pub org_id: Uuid,
    /// Type name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it was appended.
    pub occurred_at: DateTime<Utc>,
    /// The stream it belongs on (logical name).
    pub stream: String,
}

/// A pending entry whose stream entry no longer exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostEntry {
    /// The stream (logical name).
    pub stream: String,
    /// The entry id still in the group's pending list.
    pub entry_id: String,
}

/// What a Redis-store group's processed records can and cannot prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisRecords {
    /// `worker.processed_ttl_secs`.
    pub ttl_secs: u64,
    /// Events that occurred before this may have had their record expire:
    /// without one they are unverifiable, not missing.
    pub verifiable_since: DateTime<Utc>,
    /// Records live in Redis only.
    pub survive_restart: &'static str,
}

/// What a Postgres-store group's processed records can and cannot prove:
/// they are purged after `worker.jobs.processed_retention_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostgresRecords {
    /// `worker.jobs.processed_retention_secs`.
    pub retention_secs: u64,
    /// Events that occurred before this may have had their record purged
    /// (a record is written after its event occurred, so a younger event's
    /// record is still there): without one they are unverifiable, not missing.
    pub verifiable_since: DateTime<Utc>,
}

/// What `survive_restart` says, and the note line after an audit.
pub const RESTART_NOTE: &str = "only with Redis persistence (RDB or AOF): after a restart without it, \
                                handled events show as missing";

/// The result of an audit.
#[derive(Debug, Clone)]
pub struct Audit {
    /// The group.
    pub group: String,
    /// Where it records processed events.
    pub store: Store,
    /// The streams it reads (logical names).
    pub streams: Vec<String>,
    /// Where the range starts.
    pub since: Since,
    /// The highest `seq` in the range (0: no event yet).
    pub through_seq: i64,
    /// Exact counts.
    pub counts: Counts,
    /// The first `limit` missing events, in `seq` order.
    pub missing: Vec<MissingEvent>,
    /// Every missing event's `seq`, in order.
    pub missing_seqs: Vec<i64>,
    /// Pending entries whose stream entry is gone.
    pub lost: Vec<LostEntry>,
    /// For a Redis-store group: what its records can prove.
    pub records: Option<RedisRecords>,
    /// For a Postgres-store group: what its records can prove.
    pub postgres_records: Option<PostgresRecords>,
}

impl Audit {
    /// Events that occurred before this may have had their processed record
    /// expire or be purged; `None` while every record is kept.
    pub fn verifiable_since(&self) -> Option<DateTime<Utc>> {
        self.records.as_ref().map(|r| r.verifiable_since).or(self.postgres_records.as_ref().map(|r| r.verifiable_since))
    }
}

/// Audits `handler`'s group over the events from `since`; lists at most
/// `limit` missing events (the counts stay exact).
pub async fn audit(sources: &Sources, handler: &dyn Handler, since: Since, limit: usize) -> Result<Audit, AuditError> {
    let group = handler.group().to_owned();
    let store = handler.handling().store();
    let streams = group_streams(&sources.settings, handler)?;
    let stream_names: Vec<String> = streams.iter().map(|(stream, _)| stream.clone()).collect();

    // In the order an event moves on (see the module docs).
    let (through_seq, outbox) = postgres::top_and_outbox(sources, &stream_names).await?;
    let mut state = redis_state::State::default();
    for (stream, dlq) in &streams {
        redis_state::read_stream(sources, &group, stream, &mut state).await?;
        redis_state::read_dead_letters(sources, &group, dlq, &mut state).await?;
    }

    let now = Utc::now();
    // A TTL beyond what a date can hold: every record is still there.
    let kept_since = |secs: u64| {
        i64::try_from(secs)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|ttl| now.checked_sub_signed(ttl))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let records = (store == Store::Redis).then(|| {
        let ttl_secs = sources.settings.worker.processed_ttl_secs;
        RedisRecords { ttl_secs, verifiable_since: kept_since(ttl_secs), survive_restart: RESTART_NOTE }
    });
    let postgres_records = (store == Store::Postgres).then(|| {
        let retention_secs = sources.settings.worker.jobs.processed_retention_secs;
        PostgresRecords { retention_secs, verifiable_since: kept_since(retention_secs) }
    });
    let since_time = match since {
        Since::Time(time) => Some(time),
        Since::Seq(_) => None,
    };
    let mut after = match since {
        Since::Seq(seq) => seq.saturating_sub(1),
        Since::Time(_) => 0,
    };
    let mut result = Audit {
        group: group.clone(),
        store,
        streams: stream_names.clone(),
        since,
        through_seq,
        counts: Counts::default(),
        missing: Vec::new(),
        missing_seqs: Vec::new(),
        lost: std::mem::take(&mut state.lost),
        records,
        postgres_records,
    };
    loop {
        let page = postgres::page(sources, &group, after, through_seq, since_time).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        result.counts.scanned += page.len() as u64;
        let mut taken: Vec<(postgres::EventRow, String)> = page
            .into_iter()
            .filter(|row| handler.accepts(&row.event_type))
            .filter_map(|row| {
                let stream = &sources.settings.streams.family(routed_to(row.org_id, &row.actor, &row.event_type)).work;
                stream_names.contains(stream).then(|| (row, stream.clone()))
            })
            .collect();
        if store == Store::Redis {
            let ids: Vec<Uuid> = taken.iter().map(|(row, _)| row.id).collect();
            let found = redis_state::processed(sources, &group, &ids).await?;
            for ((row, _), found) in taken.iter_mut().zip(found) {
                row.processed |= found;
            }
        }
        for (row, stream) in taken {
            result.counts.checked += 1;
            let counter = if row.processed {
                &mut result.counts.handled
            } else if state.pending.contains(&row.id) {
                &mut result.counts.pending
            } else if state.dead.contains(&row.id) {
                &mut result.counts.dead_lettered
            } else if outbox.contains(&row.seq) || state.waiting.contains(&row.id) {
                &mut result.counts.waiting
            } else if result.verifiable_since().is_some_and(|since| row.occurred_at < since) {
                &mut result.counts.unverifiable
            } else {
                result.missing_seqs.push(row.seq);
                if result.missing.len() < limit {
                    result.missing.push(MissingEvent {
                        seq: row.seq,
                        id: row.id,
                        org_id: row.org_id,
                        event_type: row.event_type,
                        occurred_at: row.occurred_at,
                        stream,
                    });
                }
                &mut result.counts.missing
            };
            *counter += 1;
        }
    }
    Ok(result)
}

/// The group's streams with their DLQs (logical names).
fn group_streams(settings: &Settings, handler: &dyn Handler) -> Result<Vec<(String, String)>, AuditError> {
    let mut streams = Vec::new();
    for stream in handler.streams() {
        let family = settings.streams.family_of_work(&stream).ok_or_else(|| {
            AuditError::Usage(format!(
                "group {} reads {stream}, which is not a configured work stream",
                handler.group()
            ))
        })?;
        let dlq = settings.streams.family(family).dlq.clone();
        if !streams.iter().any(|(s, _)| *s == stream) {
            streams.push((stream, dlq));
        }
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_go_to_the_jobs_stream_and_everything_else_to_events() {
        let other = "xentri.soul.updated.v1";
        assert_eq!(routed_to(PLATFORM_ORG, JOB_ACTOR, other), Family::Jobs);
        assert_eq!(routed_to(PLATFORM_ORG, "user:u", other), Family::Events);
        assert_eq!(routed_to(Uuid::now_v7(), JOB_ACTOR, other), Family::Events);
        assert_eq!(routed_to(Uuid::now_v7(), "user:u", other), Family::Events);
        let build = xentri_core::site::BUILD_REQUESTED;
        assert_eq!(routed_to(Uuid::now_v7(), "user:u", build), Family::Jobs, "a site build is a job");
    }
}
