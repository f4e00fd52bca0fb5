//! The job scheduler: enqueues periodic jobs as events of the platform org,
//! through the outbox to `jobs:work`, where the `jobs` group runs them.
//! One worker enqueues per interval however many run (a Redis lock with the
//! interval as its lifetime); the consumer group gives each job to one worker.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use xentri_core::store::{AppendOutcome, NewEventRecord, append_events};

use crate::runtime::Shared;

/// The org of platform-level events (jobs): the nil UUID.
pub const PLATFORM_ORG: Uuid = Uuid::nil();
/// The actor of job events.
pub const JOB_ACTOR: &str = "service:worker";
/// The purge of expired idempotency keys.
pub const PURGE_IDEMPOTENCY_KEYS: &str = "xentri.system.idempotency_keys.purge_requested.v1";
/// The purge of processed records past their retention.
pub const PURGE_PROCESSED_EVENTS: &str = "xentri.system.processed_events.purge_requested.v1";

/// Schedules every periodic job, each at its own interval, until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let jobs = &shared.settings.worker.jobs;
    let schedule = |name: &'static str, job_type: &'static str, interval_secs: u64| {
        let (shared, shutdown) = (&shared, &shutdown);
        async move {
            let interval = Duration::from_secs(interval_secs.max(1));
            once_per_interval(shared, name, interval, shutdown, || async {
                let id = enqueue(shared, job_type, job_payload()).await?;
                tracing::info!(job = job_type, event_id = %id, "job enqueued");
                Ok(())
            })
            .await;
        }
    };
    tokio::join!(
        schedule("idempotency_purge", PURGE_IDEMPOTENCY_KEYS, jobs.idempotency_purge_interval_secs),
        schedule("processed_purge", PURGE_PROCESSED_EVENTS, jobs.processed_purge_interval_secs),
    );
    Ok(())
}

/// The payload of every scheduled job: they carry nothing (their contracts,
/// `schemas/events/xentri.system.*.json`, say so).
fn job_payload() -> serde_json::Value {
    serde_json::json!({})
}

/// Runs `work` once per `interval` across every worker sharing this Redis
/// (whoever takes the interval's slot runs it), until `shutdown`. Failures
/// are logged; the next interval tries again.
pub async fn once_per_interval<F, Fut>(
    shared: &Shared,
    name: &str,
    interval: Duration,
    shutdown: &CancellationToken,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    while !shutdown.is_cancelled() {
        match claim_slot(shared, name, interval).await {
            Ok(true) => {
                if let Err(error) = work().await {
                    tracing::warn!(task = name, error = format!("{error:#}"), "periodic work failed");
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(task = name, error = %error, "cannot take the interval's slot"),
        }
        // Look again well within the interval, so a slot another worker
        // dropped (it stopped) is taken over soon.
        tokio::select! {
            () = tokio::time::sleep(interval.min(Duration::from_secs(5))) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

/// Takes this interval's slot for `job`: true for exactly one worker per interval.
async fn claim_slot(shared: &Shared, job: &str, interval: Duration) -> anyhow::Result<bool> {
    let mut conn = shared.redis.get().await?;
    let taken: Option<String> = redis::cmd("SET")
        .arg(shared.keys.key(&format!("jobs:schedule:{job}")))
        .arg(std::process::id())
        .arg("NX")
        .arg("PX")
        .arg(interval.as_millis() as u64)
        .query_async(&mut conn)
        .await?;
    Ok(taken.is_some())
}

/// Appends a job event of the platform org with an outbox row aimed at the
/// jobs work stream, through `append_events` as the worker's role (the same
/// path as the api's appends). The only producer of that stream:
/// `audit::routed_to` relies on it.
pub async fn enqueue(shared: &Shared, job_type: &str, payload: serde_json::Value) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    let trace_id = Uuid::new_v4().simple().to_string();
    let correlation_id = id.to_string();
    let payload = payload.to_string();
    let record = NewEventRecord {
        org_id: PLATFORM_ORG,
        idempotency_key: None,
        request_hash: None,
        id,
        event_type: job_type,
        payload: &payload,
        actor: JOB_ACTOR,
        trace_id: &trace_id,
        correlation_id: &correlation_id,
        causation_id: None,
        occurred_at: Utc::now(),
    };
    let mut conn = shared.db.acquire().await?;
    let outcome =
        append_events(&mut conn, xentri_core::roles::WORKER, &shared.settings.streams.jobs.work, 0.0, &[record])
            .await?;
    anyhow::ensure!(
        matches!(outcome.as_slice(), [AppendOutcome::Appended(_)]),
        "the job was not appended: {outcome:?}"
    );
    // Wake the relay.
    sqlx::query(xentri_core::sql::NOTIFY_OUTBOX).execute(&mut *conn).await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use xentri_core::contracts::Contracts;

    use super::*;

    #[test]
    fn every_scheduled_job_has_a_contract_its_payload_keeps() {
        let contracts = Contracts::load().expect("the embedded contracts compile");
        for job_type in [PURGE_IDEMPOTENCY_KEYS, PURGE_PROCESSED_EVENTS] {
            assert!(contracts.event(job_type).is_some(), "{job_type} has a contract");
            assert_eq!(contracts.check_payload(job_type, &job_payload()), Ok(()), "{job_type}");
        }
    }
}
