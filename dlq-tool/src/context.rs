//! What every command runs with: the settings, the key naming, one Redis
//! connection, and the rules for what counts as a DLQ.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::MultiplexedConnection;
use secrecy::ExposeSecret;
use xentri_core::Settings;
use xentri_core::settings::FamilySettings;
use xentri_core::stream::{Family, Keys, StreamEntry};

use crate::entry::DeadEntry;
use crate::error::Error;

/// How long connecting to Redis may take before the tool gives up (exit 3).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take; above `tail`'s blocking read of
/// [`crate::cmd::tail::BLOCK_MS`] and a bulk batch.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Entries read per `XRANGE` when scanning a stream.
pub const SCAN_PAGE: usize = 1000;

/// The command's environment, built once at start.
pub struct Ctx {
    /// Settings as loaded at start.
    pub settings: Settings,
    /// `redis.key_prefix` naming.
    pub keys: Keys,
    /// The one connection every command uses (commands are sequential, batches
    /// are pipelined on it).
    pub conn: MultiplexedConnection,
    /// `--stream-is-dlq`: accept streams that are not configured DLQs (never
    /// a work stream; see [`Ctx::dlq`]).
    pub stream_is_dlq: bool,
    /// "Now" for every age the command computes, so one output is consistent.
    pub now: DateTime<Utc>,
}

/// A DLQ the command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dlq {
    /// The name as configured and typed, e.g. `jobs:dlq`.
    pub name: String,
    /// The Redis key, with the prefix.
    pub key: String,
    /// Its family, when it is a configured DLQ.
    pub family: Option<Family>,
}

impl Ctx {
    /// Connects to Redis (bounded by [`CONNECT_TIMEOUT`]) and checks it answers.
    pub async fn connect(settings: Settings, stream_is_dlq: bool) -> Result<Self, Error> {
        let client = redis::Client::open(settings.redis.url.expose_secret()).map_err(|_| {
            // The URL may hold a password: never echo it.
            Error::BadInput("configuration error: invalid value for `redis.url`: not a Redis URL".to_owned())
        })?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connecting = client.get_multiplexed_async_connection_with_config(&config);
        // The client's own timeout covers the TCP connect; this one also covers
        // a server that accepts but never answers.
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT * 2, connecting)
            .await
            .map_err(|_| {
                Error::Unreachable(redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))
            })?
            .map_err(Error::Unreachable)?;
        let _: () = redis::cmd("PING").query_async(&mut conn).await.map_err(Error::Unreachable)?;
        let keys = Keys::new(settings.redis.key_prefix.clone());
        Ok(Self { settings, keys, conn, stream_is_dlq, now: Utc::now() })
    }

    /// The configured DLQs, in family order.
    pub fn configured(&self) -> Vec<(Family, &FamilySettings)> {
        Family::ALL.into_iter().map(|f| (f, self.settings.streams.family(f))).collect()
    }

    /// The configured DLQ names, for messages.
    pub fn configured_names(&self) -> String {
        self.configured().iter().map(|(_, f)| f.dlq.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// A configured DLQ by family.
    pub fn configured_dlq(&self, family: Family) -> Dlq {
        let name = self.settings.streams.family(family).dlq.clone();
        Dlq { key: self.keys.key(&name), name, family: Some(family) }
    }

    /// Resolves `name` to a DLQ: a configured one, or with `--stream-is-dlq`
    /// a stream (or absent key) that no consumer group reads. Refuses other
    /// keys and unknown names, and, whatever the flags, a configured work
    /// stream of any family (by its key under the prefix): `purge`, `archive`
    /// and `replay` take entries out of what this returns, and entries taken
    /// from a stream that is worked on are work lost (their outbox rows are
    /// long gone), not dead letters cleared.
    pub async fn dlq(&mut self, name: &str) -> Result<Dlq, Error> {
        let family = self.configured().into_iter().find(|(_, f)| f.dlq == name).map(|(family, _)| family);
        let key = self.keys.key(name);
        if family.is_some() {
            self.require_stream(name, &key).await?;
            return Ok(Dlq { name: name.to_owned(), key, family });
        }
        // Whatever the flags.
        if let Some(dlq) = self.work_stream_dlq(name, &key) {
            return Err(Error::WorkStream { name: name.to_owned(), dlq });
        }
        if !self.stream_is_dlq {
            return Err(match self.key_type(&key).await?.as_str() {
                "none" => Error::UnknownDlq { name: name.to_owned(), configured: self.configured_names() },
                _ => Error::NotADlq {
                    name: name.to_owned(),
                    why: format!("it is not a configured DLQ (configured: {})", self.configured_names()),
                },
            });
        }
        self.require_stream(name, &key).await?;
        // No consumer group reads a DLQ: a stream that has one holds work.
        let groups = self.groups(name, &key).await?;
        if !groups.is_empty() {
            return Err(Error::ConsumedStream { name: name.to_owned(), groups });
        }
        Ok(Dlq { name: name.to_owned(), key, family })
    }

    /// The DLQ of the configured work stream that `name` (Redis key `key`)
    /// is, if it is one: by its key under the prefix, or typed as that key.
    fn work_stream_dlq(&self, name: &str, key: &str) -> Option<String> {
        self.configured().into_iter().find_map(|(_, f)| {
            let work_key = self.keys.key(&f.work);
            (key == work_key || name == work_key).then(|| f.dlq.clone())
        })
    }

    /// Refuses a key that exists and is not a stream (an absent key is an empty stream).
    pub async fn require_stream(&mut self, name: &str, key: &str) -> Result<(), Error> {
        match self.key_type(key).await?.as_str() {
            "none" | "stream" => Ok(()),
            kind => Err(Error::NotAStream { name: name.to_owned(), kind: kind.to_owned() }),
        }
    }

    /// Redis `TYPE` of `key`.
    pub async fn key_type(&mut self, key: &str) -> Result<String, Error> {
        Ok(redis::cmd("TYPE").arg(key).query_async(&mut self.conn).await?)
    }

    /// Visits the entries of `key` from `start` to `end` (`XRANGE` bounds), in
    /// order, a page at a time, until `visit` returns false.
    pub async fn scan(
        &mut self,
        key: &str,
        start: &str,
        end: &str,
        mut visit: impl FnMut(DeadEntry) -> bool,
    ) -> Result<(), Error> {
        let mut start = start.to_owned();
        loop {
            let reply: redis::Value = redis::cmd("XRANGE")
                .arg(key)
                .arg(&start)
                .arg(end)
                .arg("COUNT")
                .arg(SCAN_PAGE)
                .query_async(&mut self.conn)
                .await?;
            let entries = parse_range(reply)?;
            let count = entries.len();
            let Some(last) = entries.last().map(|entry| entry.id().to_owned()) else {
                return Ok(());
            };
            for entry in entries {
                if !visit(entry) {
                    return Ok(());
                }
            }
            if count < SCAN_PAGE {
                return Ok(());
            }
            start = format!("({last}");
        }
    }

    /// The entries `ids` of `key` (one round trip), `None` for those absent.
    pub async fn fetch(&mut self, key: &str, ids: &[String]) -> Result<Vec<Option<DeadEntry>>, Error> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(SCAN_PAGE) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("XRANGE").arg(key).arg(id).arg(id);
            }
            let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn).await?;
            for reply in replies {
                found.push(parse_range(reply)?.into_iter().next());
            }
        }
        Ok(found)
    }

    /// The consumer groups of the stream `key` (named `name` in messages);
    /// empty when it does not exist.
    pub async fn groups(&mut self, name: &str, key: &str) -> Result<Vec<String>, Error> {
        match self.key_type(key).await?.as_str() {
            "none" => Ok(Vec::new()),
            "stream" => {
                let reply: redis::streams::StreamInfoGroupsReply =
                    redis::cmd("XINFO").arg("GROUPS").arg(key).query_async(&mut self.conn).await?;
                Ok(reply.groups.into_iter().map(|g| g.name).collect())
            }
            kind => Err(Error::NotAStream { name: name.to_owned(), kind: kind.to_owned() }),
        }
    }
}

/// Reads an `XRANGE` reply: `[[id, [field, value, …]], …]`. Parsed by hand
/// rather than through a map, which keeps the fields in the order they were
/// written (envelope, then `dlq_*`) and is several times faster on the
/// 100,000-entry scans of bulk work.
pub fn parse_range(reply: redis::Value) -> Result<Vec<DeadEntry>, Error> {
    let unexpected =
        || Error::Redis(redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "malformed XRANGE reply")));
    let items = match reply {
        redis::Value::Array(items) => items,
        redis::Value::Nil => return Ok(Vec::new()),
        _ => return Err(unexpected()),
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let redis::Value::Array(parts) = item else { return Err(unexpected()) };
        let mut parts = parts.into_iter();
        let (Some(id), Some(redis::Value::Array(flat))) = (parts.next(), parts.next()) else {
            return Err(unexpected());
        };
        // Ids are Redis's own `<ms>-<seq>`: anything else is a broken reply.
        let id = redis::from_redis_value::<String>(id).map_err(|_| unexpected())?;
        // An entry that is not all text is still listed (an operator must be
        // able to see it), marked undecodable.
        entries.push(match StreamEntry::from_flat(id, flat) {
            Ok(entry) => DeadEntry::new(entry),
            Err(undecodable) => DeadEntry::undecodable(undecodable),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

    fn bulk(text: &[u8]) -> Value {
        Value::BulkString(text.to_vec())
    }

    #[test]
    fn xrange_replies_keep_field_order_and_survive_bad_bytes() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"1732600000000-0"),
            Value::Array(vec![bulk(b"type"), bulk(b"t"), bulk(b"dlq_error"), bulk(b"bad \xff byte")]),
        ])]);
        let entries = parse_range(reply).expect("parsed");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id(), "1732600000000-0");
        let names: Vec<&str> = entries[0].entry.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["type", "dlq_error"]);
        assert_eq!(entries[0].error(), Some("bad \u{fffd} byte"));
        assert_eq!(
            entries[0].undecodable.as_ref().map(ToString::to_string).as_deref(),
            Some("field `dlq_error` is not a UTF-8 string")
        );
        assert!(parse_range(Value::Nil).expect("empty").is_empty());
        assert!(parse_range(Value::Int(1)).is_err());
    }
}
