//! The soak's view of Redis: its version, the events stream's length and
//! consumer groups at the end of a run (where unhandled events would be),
//! and the run's keys, removed after it.

use redis::Value;
use redis::aio::MultiplexedConnection;

use super::super::BenchkitError;

/// A connection to the Redis server at a URL, driven from synchronous code.
pub struct Redis {
    runtime: tokio::runtime::Runtime,
    connection: MultiplexedConnection,
}

fn failed(what: &str, error: impl std::fmt::Display) -> BenchkitError {
    BenchkitError::Failed(format!("redis: {what}: {error}"))
}

/// A reply value as `redis-cli` prints it: text, numbers, empty for nil.
fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        Value::Double(x) => x.to_string(),
        Value::Okay => "OK".to_owned(),
        _ => String::new(),
    }
}

/// The (field, value) pairs of a reply that is a map or a flat list of pairs.
fn pairs(value: &Value) -> Vec<(String, String)> {
    match value {
        Value::Map(items) => items.iter().map(|(k, v)| (text(k), text(v))).collect(),
        Value::Array(items) => items.chunks(2).filter_map(|p| p.get(1).map(|v| (text(&p[0]), text(v)))).collect(),
        _ => Vec::new(),
    }
}

/// `group: pending P, lag L` items joined by `; `, from `XINFO GROUPS`.
pub fn groups_text(reply: &Value) -> String {
    let Value::Array(groups) = reply else { return String::new() };
    let mut items = Vec::new();
    for group in groups {
        let fields = pairs(group);
        let Some((_, name)) = fields.iter().find(|(k, _)| k == "name") else { continue };
        let figures: Vec<String> =
            fields.iter().filter(|(k, _)| k == "pending" || k == "lag").map(|(k, v)| format!("{k} {v}")).collect();
        if figures.is_empty() {
            items.push(format!("{name}:"));
        } else {
            items.push(format!("{name}: {}", figures.join(", ")));
        }
    }
    items.join("; ")
}

impl Redis {
    /// Connects to `url`.
    pub fn connect(url: &str) -> Result<Redis, BenchkitError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed("cannot start a runtime", e))?;
        let client = redis::Client::open(url).map_err(|e| failed(url, e))?;
        let connection =
            runtime.block_on(client.get_multiplexed_async_connection()).map_err(|e| failed("cannot connect", e))?;
        Ok(Redis { runtime, connection })
    }

    fn query(&mut self, command: &redis::Cmd) -> Result<Value, BenchkitError> {
        let connection = &mut self.connection;
        self.runtime.block_on(command.query_async::<Value>(connection)).map_err(|e| failed("a command failed", e))
    }

    /// The server's version (`redis_version` of `INFO server`).
    pub fn version(&mut self) -> Result<String, BenchkitError> {
        let info = text(&self.query(redis::cmd("INFO").arg("server"))?);
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect())
            .unwrap_or_default())
    }

    /// The length of the stream `key`.
    pub fn stream_length(&mut self, key: &str) -> Result<u64, BenchkitError> {
        match self.query(redis::cmd("XLEN").arg(key))? {
            Value::Int(n) => Ok(u64::try_from(n).unwrap_or(0)),
            other => Err(BenchkitError::Shape(format!("XLEN {key} answered {other:?}"))),
        }
    }

    /// The consumer groups of the stream `key` ([`groups_text`]).
    pub fn groups(&mut self, key: &str) -> Result<String, BenchkitError> {
        Ok(groups_text(&self.query(redis::cmd("XINFO").arg("GROUPS").arg(key))?))
    }

    /// The keys that start with `prefix`.
    pub fn keys_under(&mut self, prefix: &str) -> Result<Vec<String>, BenchkitError> {
        let pattern = format!("{prefix}*");
        let (mut cursor, mut keys) = (0_u64, Vec::new());
        loop {
            let reply = self.query(redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000))?;
            let Value::Array(parts) = reply else {
                return Err(BenchkitError::Shape("SCAN answered no array".to_owned()));
            };
            let [next, Value::Array(found)] = &parts[..] else {
                return Err(BenchkitError::Shape("SCAN answered no cursor and keys".to_owned()));
            };
            keys.extend(found.iter().map(text));
            cursor = text(next).parse().map_err(|_| BenchkitError::Shape("SCAN answered a bad cursor".to_owned()))?;
            if cursor == 0 {
                return Ok(keys);
            }
        }
    }

    /// Removes the keys that start with `prefix`.
    pub fn remove_under(&mut self, prefix: &str) -> Result<(), BenchkitError> {
        let keys = self.keys_under(prefix)?;
        for chunk in keys.chunks(100) {
            self.query(redis::cmd("UNLINK").arg(chunk))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn groups_read_as_redis_cli_printed_them() {
        let group = |name: &str, pending: i64, lag: Value| {
            Value::Array(vec![
                bulk("name"),
                bulk(name),
                bulk("consumers"),
                Value::Int(1),
                bulk("pending"),
                Value::Int(pending),
                bulk("last-delivered-id"),
                bulk("1-0"),
                bulk("lag"),
                lag,
            ])
        };
        let reply =
            Value::Array(vec![group("cache_invalidation", 0, Value::Int(0)), group("event_counts", 3, Value::Nil)]);
        assert_eq!(groups_text(&reply), "cache_invalidation: pending 0, lag 0; event_counts: pending 3, lag ");
        assert_eq!(groups_text(&Value::Nil), "");
    }
}
