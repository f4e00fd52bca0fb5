//! Log lines of interleaved entries carry the fields of their own entry: the
//! runtime's per-entry span is put on the entry's future, never held entered
//! across an await.

use std::io::Write;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;
use xentri_worker::handler::{BoxFuture, HandlerError, RedisDelivery, RedisStoreHandler};
use xentri_worker::testing::Group;

use crate::helpers::{DEADLINE, database_url, event, pending, prefix, redis, settings, start, wait_until, xadd_event};

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().expect("log buffer lock").clone();
        String::from_utf8_lossy(&bytes).lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }
}

/// Handles two events so that their runs interleave: the first starts, waits
/// until the second has started, and finishes while the second is suspended.
struct Interleaving {
    second_started: Notify,
    first_finished: Notify,
}

impl RedisStoreHandler for Interleaving {
    fn handle<'a>(&'a self, delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let own = delivery.event.id.to_string();
            tracing::info!(own, "handler started");
            if delivery.event.seq == 1 {
                self.second_started.notified().await;
                tracing::info!(own, "handler finishing");
                self.first_finished.notify_one();
            } else {
                self.second_started.notify_one();
                self.first_finished.notified().await;
                tracing::info!(own, "handler finishing");
            }
            Ok(())
        })
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn log_lines_of_interleaved_entries_carry_their_own_entry(pool: PgPool) {
    // The test runs on one thread (sqlx::test's runtime), so this subscriber
    // sees every task of the worker, as the process-wide one would.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(move || writer.clone())
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let prefix = prefix();
    let mut conn = redis().await;
    let work = format!("{prefix}events:work");
    // Both entries are on the stream before the group reads: one read batch,
    // run concurrently.
    let first = event(Uuid::new_v4(), 1);
    let second = event(Uuid::new_v4(), 2);
    xadd_event(&mut conn, &work, &first).await;
    xadd_event(&mut conn, &work, &second).await;
    let handler = Interleaving { second_started: Notify::new(), first_finished: Notify::new() };
    let handler = Arc::new(Group::redis("interleaving", handler));
    let worker = start(settings(&database_url(&pool.connect_options()), &prefix, &[]), vec![handler]).await;
    wait_until(DEADLINE, "both entries handled and acked", || {
        let captured = captured.clone();
        let mut conn = conn.clone();
        let work = work.clone();
        async move {
            let finished = captured.lines().iter().filter(|l| l["message"] == "handler finishing").count();
            finished == 2 && pending(&mut conn, &work, "interleaving").await == 0
        }
    })
    .await;
    worker.stop().await;

    let lines: Vec<serde_json::Value> = captured.lines().into_iter().filter(|l| l.get("own").is_some()).collect();
    assert_eq!(lines.len(), 4, "expected a started and a finishing line per entry, got {lines:#?}");
    for line in &lines {
        assert_eq!(
            line["span"]["event_id"], line["own"],
            "expected each handler line inside its own entry's span, got {line:#}"
        );
        assert_eq!(line["span"]["name"], "handle", "expected the handle span on {line:#}");
    }
    let order: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (l["own"].as_str().unwrap_or_default().to_owned(), l["message"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let (a, b) = (first.id.to_string(), second.id.to_string());
    assert_eq!(
        order,
        [
            (a.clone(), "handler started".to_owned()),
            (b.clone(), "handler started".to_owned()),
            (a, "handler finishing".to_owned()),
            (b, "handler finishing".to_owned()),
        ],
        "expected the two runs to interleave"
    );
}
