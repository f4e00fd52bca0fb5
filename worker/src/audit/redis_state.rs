//! What the audit reads from Redis: per stream, the entries not yet delivered
//! to the group, the group's pending list (and which of its entries are lost),
//! the group's dead letters in the DLQ and its archives; and the processed
//! records of a Redis-store group.

use redis::Value;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoGroupsReply, StreamPendingCountReply};
use uuid::Uuid;
use xentri_core::dlq::dlq_field;
use xentri_core::stream::{archive_keys, field};

use super::{AuditError, IdSet, LostEntry, Sources};
use crate::handler::redis_processed_key;

/// Entries per `XRANGE`/`XPENDING` page, keys per `SCAN` step, commands per pipeline.
const COUNT: usize = 1000;

/// Event ids by state, over every stream of the group.
#[derive(Debug, Default)]
pub(super) struct State {
    /// On a stream after the group's last-delivered id.
    pub waiting: IdSet,
    /// In the group's pending list.
    pub pending: IdSet,
    /// Dead-lettered by the group (DLQ or archive).
    pub dead: IdSet,
    /// Pending entries whose stream entry is gone.
    pub lost: Vec<LostEntry>,
}

/// One stream entry as the audit reads it: its id, its event id (if
/// readable), and the value of one more field.
struct Entry {
    /// The stream entry id.
    id: String,
    /// The `id` field, parsed.
    event: Option<Uuid>,
    /// The value of the other field asked for.
    other: Option<String>,
}

/// Reads an `XRANGE` reply, keeping of each entry only the event id and the
/// field `other`: no map of every field (payloads included) is built, which
/// makes a 100,000-entry stream several times faster to read.
fn read_entries(reply: Value, other: &str) -> Result<Vec<Entry>, AuditError> {
    let unexpected = || {
        AuditError::Redis(redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "malformed XRANGE reply")))
    };
    let text = |value: Value| match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    };
    let items = match reply {
        Value::Array(items) => items,
        Value::Nil => return Ok(Vec::new()),
        _ => return Err(unexpected()),
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(parts) = item else { return Err(unexpected()) };
        let mut parts = parts.into_iter();
        let (Some(id), Some(Value::Array(flat))) = (parts.next(), parts.next()) else { return Err(unexpected()) };
        let mut entry = Entry { id: text(id).ok_or_else(unexpected)?, event: None, other: None };
        let mut flat = flat.into_iter();
        while let (Some(Value::BulkString(name)), Some(value)) = (flat.next(), flat.next()) {
            if name == field::ID.as_bytes() {
                entry.event = text(value).and_then(|id| id.parse().ok());
            } else if name == other.as_bytes() {
                entry.other = text(value);
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Reads `stream`: first what the group has not been delivered yet, then its
/// pending list (in that order: an entry delivered in between is then found
/// pending).
pub(super) async fn read_stream(
    sources: &Sources,
    group: &str,
    stream: &str,
    state: &mut State,
) -> Result<(), AuditError> {
    let mut conn = sources.redis.clone();
    let key = sources.keys.key(stream);
    let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await?;
    match kind.as_str() {
        // No stream yet: nothing is waiting on it or pending.
        "none" => return Ok(()),
        "stream" => {}
        other => return Err(AuditError::Usage(format!("`{stream}` is a Redis {other}, not a stream"))),
    }
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO").arg("GROUPS").arg(&key).query_async(&mut conn).await?;
    let last_delivered = groups.groups.into_iter().find(|g| g.name == group).map(|g| g.last_delivered_id);
    // Without the group yet, the worker creates it at the start of the stream:
    // every entry is still to be delivered.
    let start = last_delivered.as_ref().map_or_else(|| "-".to_owned(), |id| format!("({id}"));
    each_entry(&mut conn, &key, start, field::TARGET_GROUP, |entry| {
        let targeted_elsewhere = entry.other.as_deref().is_some_and(|target| target != group);
        if !targeted_elsewhere && let Some(id) = entry.event {
            state.waiting.insert(id);
        }
    })
    .await?;
    if last_delivered.is_some() {
        read_pending(&mut conn, group, stream, &key, state).await?;
    }
    Ok(())
}

/// Pages through the group's whole pending list, reading each entry's event id
/// (`XRANGE id id`, pipelined). An entry that no longer exists is lost.
async fn read_pending(
    conn: &mut MultiplexedConnection,
    group: &str,
    stream: &str,
    key: &str,
    state: &mut State,
) -> Result<(), AuditError> {
    let mut start = "-".to_owned();
    loop {
        let page: StreamPendingCountReply =
            redis::cmd("XPENDING").arg(key).arg(group).arg(&start).arg("+").arg(COUNT).query_async(conn).await?;
        let Some(last) = page.ids.last() else { return Ok(()) };
        start = format!("({}", last.id);
        let mut pipe = redis::pipe();
        for pending in &page.ids {
            pipe.cmd("XRANGE").arg(key).arg(&pending.id).arg(&pending.id);
        }
        let replies: Vec<Value> = pipe.query_async(conn).await?;
        for (pending, reply) in page.ids.iter().zip(replies) {
            match read_entries(reply, field::TARGET_GROUP)?.first() {
                Some(entry) => {
                    if let Some(id) = entry.event {
                        state.pending.insert(id);
                    }
                }
                None => state.lost.push(LostEntry { stream: stream.to_owned(), entry_id: pending.id.clone() }),
            }
        }
        if page.ids.len() < COUNT {
            return Ok(());
        }
    }
}

/// Reads the group's dead letters in `dlq`, then in its archives (in that
/// order: an entry archived in between is then found in its archive).
pub(super) async fn read_dead_letters(
    sources: &Sources,
    group: &str,
    dlq: &str,
    state: &mut State,
) -> Result<(), AuditError> {
    let mut conn = sources.redis.clone();
    let mut visit = |entry: Entry| {
        if entry.other.as_deref() == Some(group)
            && let Some(id) = entry.event
        {
            state.dead.insert(id);
        }
    };
    each_entry(&mut conn, &sources.keys.key(dlq), "-".to_owned(), dlq_field::GROUP, &mut visit).await?;
    let archives = archive_keys(&mut conn, &sources.keys, dlq, COUNT).await?;
    for archive in archives {
        each_entry(&mut conn, &archive, "-".to_owned(), dlq_field::GROUP, &mut visit).await?;
    }
    Ok(())
}

/// Visits every entry of `key` from `start` (an `XRANGE` bound) to the end, a
/// page at a time, with its event id and field `other`. An absent key has no
/// entries.
async fn each_entry(
    conn: &mut MultiplexedConnection,
    key: &str,
    mut start: String,
    other: &str,
    mut visit: impl FnMut(Entry),
) -> Result<(), AuditError> {
    loop {
        let reply: Value =
            redis::cmd("XRANGE").arg(key).arg(&start).arg("+").arg("COUNT").arg(COUNT).query_async(conn).await?;
        let page = read_entries(reply, other)?;
        let full = page.len() == COUNT;
        let last = page.last().map(|entry| format!("({}", entry.id));
        page.into_iter().for_each(&mut visit);
        match last {
            Some(last) if full => start = last,
            _ => return Ok(()),
        }
    }
}

/// Whether `group`'s Redis processed record of each of `ids` exists
/// (`EXISTS`, pipelined in chunks).
pub(super) async fn processed(sources: &Sources, group: &str, ids: &[Uuid]) -> Result<Vec<bool>, AuditError> {
    let mut conn = sources.redis.clone();
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(COUNT) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.cmd("EXISTS").arg(redis_processed_key(&sources.keys, group, &id.to_string()));
        }
        let exists: Vec<bool> = pipe.query_async(&mut conn).await?;
        found.extend(exists);
    }
    Ok(found)
}
