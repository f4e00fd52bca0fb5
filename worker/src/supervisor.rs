//! Supervision: every long-running task of the worker (relay, each lane,
//! trimmer, scheduler, archiver, alerts) runs under [`supervise`], which
//! restarts it with backoff when it returns or panics, logs and counts why
//! (`worker_task_restarts_total{task}`), and publishes its state for
//! `/health`. A task that keeps failing is given up: [`supervise`] returns
//! [`GaveUp`] and the worker stops and exits non-zero, so that systemd or
//! Kubernetes restarts the process. The worker never runs on without a task.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// A task's future.
pub type TaskFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Starts a task afresh (each restart calls it again).
pub type Start = Box<dyn Fn() -> TaskFuture + Send + Sync>;

/// One supervised task.
pub struct Task {
    /// Its name in logs, metrics and `/health` (`relay`, `group g on s`, …).
    pub name: String,
    /// Readiness fails while a critical task is not running.
    pub critical: bool,
    /// Starts it.
    pub start: Start,
}

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Running.
    Running,
    /// Ended or panicked; waiting for its restart.
    Restarting,
    /// Given up: the worker is stopping.
    Failed,
    /// Stopped by shutdown.
    Stopped,
}

/// A task as `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskStatus {
    /// Its state.
    pub state: TaskState,
    /// Whether readiness depends on it.
    pub critical: bool,
    /// Restarts since the worker started.
    pub restarts: u64,
    /// Why it last ended, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Every task's status, shared with `/health`.
#[derive(Debug, Default)]
pub struct Health {
    tasks: Mutex<BTreeMap<String, TaskStatus>>,
}

impl Health {
    /// A copy of every task's status, by name.
    pub fn snapshot(&self) -> BTreeMap<String, TaskStatus> {
        self.tasks.lock().map(|tasks| tasks.clone()).unwrap_or_default()
    }

    /// Whether every critical task is running.
    pub fn ready(&self) -> bool {
        self.snapshot().values().all(|t| !t.critical || t.state == TaskState::Running)
    }

    fn update(&self, name: &str, critical: bool, change: impl FnOnce(&mut TaskStatus)) {
        if let Ok(mut tasks) = self.tasks.lock() {
            let status = tasks.entry(name.to_owned()).or_insert(TaskStatus {
                state: TaskState::Running,
                critical,
                restarts: 0,
                last_error: None,
            });
            change(status);
        }
    }
}

/// How restarts are paced and when a task is given up.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// First delay before a restart.
    pub first_delay: Duration,
    /// Longest delay before a restart.
    pub max_delay: Duration,
    /// A run this long resets the delay and the count of recent restarts.
    pub healthy_after: Duration,
    /// Restarts in a row (no healthy run between) after which the task is
    /// given up.
    pub max_restarts: u32,
}

impl From<&xentri_core::settings::SupervisorSettings> for Policy {
    fn from(settings: &xentri_core::settings::SupervisorSettings) -> Self {
        Self {
            first_delay: Duration::from_millis(settings.first_delay_ms),
            max_delay: Duration::from_millis(settings.max_delay_ms),
            healthy_after: Duration::from_secs(settings.healthy_after_secs),
            max_restarts: settings.max_restarts,
        }
    }
}

/// A task that kept failing: the worker must stop.
#[derive(Debug, thiserror::Error)]
#[error("task {task} failed {restarts} times in a row, last: {reason}")]
pub struct GaveUp {
    /// The task.
    pub task: String,
    /// Restarts tried.
    pub restarts: u32,
    /// Why it last ended.
    pub reason: String,
}

/// Runs `task` until `shutdown`, restarting it whenever it returns or panics
/// before that. Returns `Ok` once it has stopped for the shutdown, or
/// [`GaveUp`] after `policy.max_restarts` failed runs in a row.
pub async fn supervise(
    task: Task,
    health: Arc<Health>,
    policy: Policy,
    shutdown: CancellationToken,
) -> Result<(), GaveUp> {
    let restarts_total = metrics::counter!("worker_task_restarts_total", "task" => task.name.clone());
    let mut delay = policy.first_delay;
    let mut in_a_row = 0u32;
    loop {
        health.update(&task.name, task.critical, |s| s.state = TaskState::Running);
        let started = Instant::now();
        // A task of its own: a panic ends that task, not the supervisor.
        let mut handle = tokio::spawn((task.start)());
        let ended = tokio::select! {
            ended = &mut handle => ended,
            () = shutdown.cancelled() => handle.await,
        };
        if shutdown.is_cancelled() {
            if let Some(reason) = why(&ended) {
                tracing::error!(task = %task.name, reason, "task ended badly while stopping");
            }
            health.update(&task.name, task.critical, |s| s.state = TaskState::Stopped);
            return Ok(());
        }
        let reason = why(&ended).unwrap_or_else(|| "returned before shutdown".to_owned());
        if started.elapsed() >= policy.healthy_after {
            delay = policy.first_delay;
            in_a_row = 0;
        }
        in_a_row += 1;
        restarts_total.increment(1);
        if in_a_row > policy.max_restarts {
            tracing::error!(task = %task.name, restarts = in_a_row - 1, reason, "task keeps failing; giving up");
            health.update(&task.name, task.critical, |s| {
                s.state = TaskState::Failed;
                s.last_error = Some(reason.clone());
            });
            return Err(GaveUp { task: task.name, restarts: in_a_row - 1, reason });
        }
        tracing::error!(task = %task.name, reason, delay_ms = delay.as_millis() as u64, "task ended; restarting");
        health.update(&task.name, task.critical, |s| {
            s.state = TaskState::Restarting;
            s.restarts += 1;
            s.last_error = Some(reason.clone());
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => {
                health.update(&task.name, task.critical, |s| s.state = TaskState::Stopped);
                return Ok(());
            }
        }
        delay = (delay * 2).min(policy.max_delay);
    }
}

/// Why a task's run ended: `None` when it returned `Ok`.
fn why(ended: &Result<anyhow::Result<()>, tokio::task::JoinError>) -> Option<String> {
    match ended {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(format!("failed: {error:#}")),
        Err(join) if join.is_panic() => Some(join.to_string()),
        Err(_) => Some("cancelled".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick() -> Policy {
        Policy {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            healthy_after: Duration::from_secs(60),
            max_restarts: 3,
        }
    }

    /// A task that panics on its first `fail_first` runs, then runs until
    /// `shutdown`.
    fn counting(name: &str, runs: Arc<AtomicU32>, fail_first: u32, shutdown: CancellationToken) -> Task {
        Task {
            name: name.to_owned(),
            critical: true,
            start: Box::new(move || {
                let (runs, shutdown) = (runs.clone(), shutdown.clone());
                Box::pin(async move {
                    let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                    if run <= fail_first {
                        panic!("run {run} panics");
                    }
                    shutdown.cancelled().await;
                    Ok(())
                })
            }),
        }
    }

    #[tokio::test]
    async fn a_task_that_panics_is_restarted_and_counted() {
        let (health, token, runs) =
            (Arc::new(Health::default()), CancellationToken::new(), Arc::new(AtomicU32::new(0)));
        let supervisor = tokio::spawn(supervise(
            counting("flaky", runs.clone(), 2, token.clone()),
            health.clone(),
            quick(),
            token.clone(),
        ));
        let restarted = tokio::time::timeout(Duration::from_secs(10), async {
            while runs.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        restarted.await.expect("the task is restarted twice within 10 s");
        let status = health.snapshot().remove("flaky").expect("the task is known");
        assert_eq!(status.state, TaskState::Running);
        assert_eq!(status.restarts, 2);
        assert!(status.last_error.as_deref().is_some_and(|e| e.contains("run 2 panics")), "{status:?}");
        assert!(health.ready());
        token.cancel();
        assert!(supervisor.await.expect("the supervisor ends").is_ok());
        assert_eq!(health.snapshot()["flaky"].state, TaskState::Stopped);
    }

    #[tokio::test]
    async fn a_task_that_keeps_failing_is_given_up() {
        let (health, token, runs) =
            (Arc::new(Health::default()), CancellationToken::new(), Arc::new(AtomicU32::new(0)));
        let gave_up = tokio::time::timeout(
            Duration::from_secs(10),
            supervise(counting("broken", runs.clone(), u32::MAX, token.clone()), health.clone(), quick(), token),
        )
        .await
        .expect("the supervisor gives up within 10 s")
        .expect_err("a task that always fails is given up");
        assert_eq!(gave_up.task, "broken");
        assert_eq!(gave_up.restarts, 3);
        assert_eq!(runs.load(Ordering::SeqCst), 4, "the first run and three restarts");
        assert_eq!(health.snapshot()["broken"].state, TaskState::Failed);
        assert!(!health.ready(), "readiness fails while a critical task is down");
    }
}
