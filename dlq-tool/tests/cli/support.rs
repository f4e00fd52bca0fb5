//! What the tests share: a Redis key prefix of their own, running the built
//! binary the way an operator would, seeding dead letters, and a dump of every
//! key under the prefix to prove that refused commands changed nothing.

use std::collections::BTreeMap;
use std::process::{Output, Stdio};

use chrono::{DateTime, TimeZone, Utc};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;
use xentri_core::dlq::{DeadLetter, dead_letter_fields};
use xentri_core::stream::StreamEntry;
pub use xentri_test_support::{delete_keys_under, redis_url, unique_key_prefix, workspace};

/// One test's slice of the shared Redis.
pub struct Env {
    /// `t-<uuid>:`
    pub prefix: String,
    /// The test's own connection.
    pub conn: MultiplexedConnection,
}

/// A finished run of the binary.
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// A dead letter to seed.
pub struct Seed<'a> {
    /// The DLQ entry id to use (`<ms>-<seq>`), or `*`.
    pub id: String,
    /// The original fields.
    pub fields: Vec<(&'a str, String)>,
    /// Origin stream.
    pub stream: &'a str,
    /// Group that failed it.
    pub group: &'a str,
    /// Error.
    pub error: &'a str,
    /// When it failed.
    pub failed_at: DateTime<Utc>,
}

impl<'a> Seed<'a> {
    /// A dead letter of `jobs:work`/`jobs` that failed at `failed_at`, with
    /// its entry id taken from that instant.
    pub fn at(failed_at: DateTime<Utc>, event_id: &str) -> Self {
        Self {
            id: format!("{}-0", failed_at.timestamp_millis()),
            fields: vec![
                ("id", event_id.to_owned()),
                ("seq", "1".to_owned()),
                ("org_id", "0193a8f2-0000-7000-8000-000000000001".to_owned()),
                ("type", "xentri.site.build.requested.v1".to_owned()),
                ("payload", r#"{"site_id":"s-1"}"#.to_owned()),
                ("actor", "service:scheduler".to_owned()),
                ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
                ("correlation_id", "corr-1".to_owned()),
                ("occurred_at", "2026-11-26T10:00:00.000000Z".to_owned()),
            ],
            stream: "jobs:work",
            group: "jobs",
            error: "builder unreachable",
            failed_at,
        }
    }

    /// Sets (or adds) an original field.
    pub fn with(mut self, name: &'a str, value: &str) -> Self {
        match self.fields.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = value.to_owned(),
            None => self.fields.push((name, value.to_owned())),
        }
        self
    }

    /// The `XADD` arguments after the key.
    fn xadd_args(&self) -> Vec<String> {
        let original = StreamEntry {
            id: "0-1".into(),
            fields: self.fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        };
        let letter = DeadLetter {
            stream: self.stream.to_owned(),
            id: format!("{}-0", self.failed_at.timestamp_millis() - 60_000),
            group: self.group.to_owned(),
            consumer: "worker-1-0".to_owned(),
            attempts: 3,
            error: self.error.to_owned(),
            failed_at: self.failed_at,
        };
        let mut args = vec![self.id.clone()];
        for (k, v) in dead_letter_fields(&original, &letter) {
            args.push(k);
            args.push(v);
        }
        args
    }
}

/// `now` minus `secs` seconds.
pub fn ago(secs: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::seconds(secs)
}

/// The instant of a stream entry id.
pub fn id_time(id: &str) -> DateTime<Utc> {
    let ms: i64 = id.split('-').next().and_then(|ms| ms.parse().ok()).expect("entry id");
    Utc.timestamp_millis_opt(ms).single().expect("valid ms")
}

impl Env {
    /// A fresh prefix and a connection.
    pub async fn new() -> Self {
        // No response timeout: reading 10,000 entries in a debug build on a
        // busy machine takes longer than the client's default.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let conn = redis::Client::open(redis_url())
            .expect("REDIS_URL is a Redis URL")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("the test Redis accepts a connection");
        Self { prefix: unique_key_prefix(), conn }
    }

    /// The Redis key of `name` under this test's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The binary with this test's environment, not yet started.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dlq-tool"));
        command
            .args(args)
            .current_dir(workspace())
            .env("XENTRI_ENV", "test")
            .env("XENTRI_REDIS__KEY_PREFIX", &self.prefix)
            .env("REDIS_URL", redis_url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs the binary to completion.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().await.expect("dlq-tool runs").into()
    }

    /// Adds dead letters to `dlq`, pipelined.
    pub async fn seed(&mut self, dlq: &str, seeds: &[Seed<'_>]) -> Vec<String> {
        let key = self.key(dlq);
        let mut ids = Vec::with_capacity(seeds.len());
        for chunk in seeds.chunks(1000) {
            let mut pipe = redis::pipe();
            for seed in chunk {
                pipe.cmd("XADD").arg(&key).arg(seed.xadd_args());
            }
            let added: Vec<String> = pipe.query_async(&mut self.conn).await.expect("seeded");
            ids.extend(added);
        }
        ids
    }

    /// Creates `group` on `stream` (and the stream).
    pub async fn create_group(&mut self, stream: &str, group: &str) {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.key(stream))
            .arg(group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await
            .expect("group created");
    }

    /// `XLEN` of `stream`.
    pub async fn len(&mut self, stream: &str) -> usize {
        redis::cmd("XLEN").arg(self.key(stream)).query_async(&mut self.conn).await.expect("xlen")
    }

    /// Every entry of `stream`, fields in the order Redis holds them.
    pub async fn entries(&mut self, stream: &str) -> Vec<(String, BTreeMap<String, String>)> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.key(stream))
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn)
            .await
            .expect("xrange");
        reply
            .ids
            .into_iter()
            .map(|s| {
                let fields = s
                    .map
                    .into_iter()
                    .map(|(k, v)| (k, redis::from_redis_value::<String>(v).expect("text field")))
                    .collect();
                (s.id, fields)
            })
            .collect()
    }

    /// Every key under the prefix with its type, TTL and stream content: two
    /// equal dumps mean nothing changed.
    pub async fn dump(&mut self) -> BTreeMap<String, String> {
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.conn)
                .await
                .expect("scan");
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut dump = BTreeMap::new();
        for key in keys {
            let name = key[self.prefix.len()..].to_owned();
            let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut self.conn).await.expect("type");
            let content = if kind == "stream" {
                let groups: redis::Value =
                    redis::cmd("XINFO").arg("GROUPS").arg(&key).query_async(&mut self.conn).await.expect("groups");
                format!("{:?} groups={groups:?}", self.entries(&name).await)
            } else {
                kind
            };
            dump.insert(name, content);
        }
        dump
    }

    /// Deletes every key under the prefix.
    pub async fn cleanup(mut self) {
        delete_keys_under(&mut self.conn, &self.prefix).await.expect("the keys are deleted");
    }
}
