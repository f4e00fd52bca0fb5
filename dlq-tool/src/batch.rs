//! Bulk work in pipelined batches: one round trip per batch, one atomic
//! server-side step per entry. A crash between (or inside) batches leaves
//! every entry either moved or untouched, so re-running finishes the job.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use redis::aio::MultiplexedConnection;
use redis::{Pipeline, Script, Value};

use crate::error::Error;

/// What one entry's step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// Done; the new entry id when the step adds one.
    Moved(Option<String>),
    /// The entry was no longer there (someone else replayed, archived or purged it).
    Gone,
    /// Redis refused this entry's step; why.
    Failed(String),
}

impl StepResult {
    /// Reads a step's reply: a script's new id or nil, or `XDEL`'s count.
    fn from_reply(reply: Value) -> Self {
        match reply {
            Value::Nil | Value::Int(0) => StepResult::Gone,
            Value::BulkString(bytes) => StepResult::Moved(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Value::SimpleString(text) => StepResult::Moved(Some(text)),
            Value::ServerError(error) => StepResult::Failed(error.to_string()),
            _ => StepResult::Moved(None),
        }
    }
}

/// How a bulk run went.
#[derive(Debug, Default)]
pub struct BatchRun {
    /// Entries done.
    pub moved: usize,
    /// Entries that were already gone.
    pub gone: Vec<String>,
    /// Entries Redis refused, with why.
    pub failed: Vec<(String, String)>,
    /// Why the run stopped early (Redis unreachable); the entries after the
    /// last finished batch were not touched.
    pub aborted: Option<Error>,
    /// How long it took.
    pub elapsed: Duration,
}

impl BatchRun {
    /// Reports failed entries on stderr and turns the run into the command's
    /// outcome: an early stop is its error (with `rerun_hint`), failures make
    /// it partly done.
    pub fn finish(self, rerun_hint: &str) -> Result<crate::error::Completion, Error> {
        for (id, why) in &self.failed {
            crate::output::err_line(&format!("failed: {id}: {why}"));
        }
        if let Some(error) = self.aborted {
            crate::output::err_line(rerun_hint);
            return Err(error);
        }
        Ok(if self.failed.is_empty() { crate::error::Completion::Done } else { crate::error::Completion::PartlyDone })
    }

    /// Entries done per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.moved as f64 / secs } else { 0.0 }
    }
}

/// Pacing for bulk work.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Entries per round trip.
    pub batch: usize,
    /// At most this many entries per second, when set.
    pub rate: Option<u32>,
}

/// An item of bulk work: an entry, named by its id.
pub trait Item {
    /// The entry id in its source stream.
    fn id(&self) -> &str;
}

/// Runs `add`'s step for every item, `pace.batch` per pipeline. `script` is
/// loaded at the head of every pipeline, so `EVALSHA` never meets a server
/// that lost its script cache. `on_result` sees every item's result in order.
pub async fn run<T: Item>(
    conn: &mut MultiplexedConnection,
    items: &[T],
    pace: Pace,
    script: Option<&Script>,
    add: impl Fn(&mut Pipeline, &T),
    mut on_result: impl FnMut(&T, &StepResult),
    bar: &ProgressBar,
) -> BatchRun {
    let start = Instant::now();
    let mut run = BatchRun::default();
    // A rate below the batch size would send bursts: shrink the batch instead.
    let batch = pace.rate.map_or(pace.batch, |rate| pace.batch.min(rate as usize)).max(1);
    let mut done = 0usize;
    for chunk in items.chunks(batch) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        if let Some(script) = script {
            pipe.load_script(script).ignore();
        }
        for item in chunk {
            add(&mut pipe, item);
        }
        let replies: Vec<Value> = match pipe.query_async(conn).await {
            Ok(replies) => replies,
            Err(error) => {
                run.aborted = Some(error.into());
                break;
            }
        };
        if replies.len() != chunk.len() {
            run.aborted = Some(Error::Redis(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "pipeline answered with the wrong number of replies",
            ))));
            break;
        }
        for (item, reply) in chunk.iter().zip(replies) {
            let result = StepResult::from_reply(reply);
            on_result(item, &result);
            match result {
                StepResult::Moved(_) => run.moved += 1,
                StepResult::Gone => run.gone.push(item.id().to_owned()),
                StepResult::Failed(why) => run.failed.push((item.id().to_owned(), why)),
            }
        }
        done += chunk.len();
        bar.set_position(done as u64);
        if let Some(rate) = pace.rate {
            let due = Duration::from_secs_f64(done as f64 / f64::from(rate.max(1)));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    bar.finish_and_clear();
    run.elapsed = start.elapsed();
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(StepResult::from_reply(Value::Nil), StepResult::Gone);
        assert_eq!(StepResult::from_reply(Value::Int(0)), StepResult::Gone);
        assert_eq!(StepResult::from_reply(Value::Int(1)), StepResult::Moved(None));
        assert_eq!(StepResult::from_reply(Value::BulkString(b"1-0".to_vec())), StepResult::Moved(Some("1-0".into())));
    }
}
