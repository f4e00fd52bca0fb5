//! Redis as the benches reach it between their drivers' runs: one blocking
//! connection, for the few commands a bench sends itself (lengths, XINFO,
//! key scans, INFO), answered as text the way `redis-cli` prints them.

use redis::{Cmd, FromRedisValue, Value};

use super::BenchkitError;

/// A blocking connection to the bench's Redis server.
pub struct Redis {
    conn: redis::Connection,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redis")
    }
}

fn failed(what: &str, error: &redis::RedisError) -> BenchkitError {
    BenchkitError::Failed(format!("redis {what}: {error}"))
}

/// A value as `redis-cli` prints it without a terminal (nil as nothing);
/// nested replies print as nothing.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Int(n) => n.to_string(),
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        Value::Okay => "OK".to_owned(),
        Value::Double(x) => x.to_string(),
        Value::Boolean(b) => u8::from(*b).to_string(),
        Value::VerbatimString { text, .. } => text.clone(),
        _ => String::new(),
    }
}

/// A flat `name, value, ...` reply (or a map) as pairs of text, in order.
pub fn pairs(value: &Value) -> Vec<(String, String)> {
    match value {
        Value::Array(items) => items
            .chunks(2)
            .map(|pair| (value_text(&pair[0]), pair.get(1).map(value_text).unwrap_or_default()))
            .collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (value_text(k), value_text(v))).collect(),
        _ => Vec::new(),
    }
}

/// One `name:value` field of an INFO answer.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim_end().to_owned())
}

impl Redis {
    /// Connects to `url`.
    pub fn open(url: &str) -> Result<Redis, BenchkitError> {
        let client = redis::Client::open(url).map_err(|e| failed(&format!("url {url:?}"), &e))?;
        let conn = client.get_connection().map_err(|e| failed(&format!("connect to {url}"), &e))?;
        Ok(Redis { conn })
    }

    /// Sends one command.
    pub fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, BenchkitError> {
        cmd.query(&mut self.conn).map_err(|e| failed("command", &e))
    }

    /// Sends a pipeline of commands, ignoring their answers.
    pub fn send_pipeline(&mut self, pipe: &redis::Pipeline) -> Result<(), BenchkitError> {
        pipe.query::<()>(&mut self.conn).map_err(|e| failed("pipeline", &e))
    }

    /// `XLEN key`.
    pub fn xlen(&mut self, key: &str) -> Result<u64, BenchkitError> {
        self.query(redis::cmd("XLEN").arg(key))
    }

    /// `INFO section` as text.
    pub fn info(&mut self, section: &str) -> Result<String, BenchkitError> {
        self.query(redis::cmd("INFO").arg(section))
    }

    /// The keys matching `pattern` (SCAN), sorted.
    pub fn keys_matching(&mut self, pattern: &str) -> Result<Vec<String>, BenchkitError> {
        let mut scan = redis::cmd("SCAN");
        scan.cursor_arg(0).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
        let mut keys: Vec<String> = scan
            .iter(&mut self.conn)
            .map_err(|e| failed("SCAN", &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| failed("SCAN", &e))?;
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Unlinks every key that starts with `prefix`.
    pub fn unlink_under(&mut self, prefix: &str) -> Result<(), BenchkitError> {
        let keys = self.keys_matching(&format!("{prefix}*"))?;
        for chunk in keys.chunks(100) {
            self.query::<()>(redis::cmd("UNLINK").arg(chunk))?;
        }
        Ok(())
    }

    /// `XINFO STREAM key` as pairs, in the server's order.
    pub fn xinfo_stream(&mut self, key: &str) -> Result<Vec<(String, String)>, BenchkitError> {
        Ok(pairs(&self.query::<Value>(redis::cmd("XINFO").arg("STREAM").arg(key))?))
    }

    /// `XINFO GROUPS key`: each group's pairs, in the server's order.
    pub fn xinfo_groups(&mut self, key: &str) -> Result<Vec<Vec<(String, String)>>, BenchkitError> {
        match self.query::<Value>(redis::cmd("XINFO").arg("GROUPS").arg(key))? {
            Value::Array(groups) | Value::Set(groups) => Ok(groups.iter().map(pairs).collect()),
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_redis_cli_prints_them() {
        let reply = Value::Array(vec![
            Value::BulkString(b"length".to_vec()),
            Value::Int(5),
            Value::BulkString(b"lag".to_vec()),
            Value::Nil,
            Value::BulkString(b"first-entry".to_vec()),
            Value::Array(vec![Value::Int(1)]),
        ]);
        assert_eq!(
            pairs(&reply),
            [("length", "5"), ("lag", ""), ("first-entry", "")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let info = "# Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\n";
        assert_eq!(info_field(info, "connected_clients").as_deref(), Some("3"));
        assert_eq!(info_field(info, "connected"), None);
    }
}
