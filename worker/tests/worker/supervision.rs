//! Supervision: the relay and a lane that panic are restarted, counted and
//! reported on `/health`, and events still flow afterwards.

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;
use xentri_worker::app::Worker;

use crate::helpers::{DEADLINE, Recorder, database_url, prefix, settings, wait_until};

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_relay_and_a_lane_that_panic_are_restarted_and_events_still_flow(pool: PgPool) {
    let prefix = prefix();
    let recorder = Arc::new(Recorder::new("supervised"));
    let settings = settings(
        &database_url(&pool.connect_options()),
        &prefix,
        &[("XENTRI_WORKER__PANIC_AT", "relay,lane.supervised")],
    );
    xentri_core::telemetry::init(&settings.telemetry);
    let worker = Worker::build(settings, vec![recorder.clone()]).await.expect("worker builds");
    let ops = worker.ops_address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until_stopped(async {
        let _ = stopped.await;
    }));

    // An event appended as the api does: event and outbox row in one transaction.
    let id = Uuid::now_v7();
    sqlx::query(
        "WITH ev AS (
            INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
            VALUES ($1, $2, 'xentri.soul.updated.v1', '{}'::json, 'user:sup', 'trace', 'corr', now())
            RETURNING seq, org_id)
         INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events:work', org_id FROM ev",
    )
    .bind(id)
    .bind(Uuid::new_v4())
    .execute(&pool)
    .await
    .expect("event appended");
    wait_until(DEADLINE, "the event relayed and handled after both restarts", || async {
        recorder.calls().iter().any(|c| c.event_id == id && c.finished)
    })
    .await;

    let metrics = xentri_core::metrics::Metrics::install().render();
    for task in ["relay", "group supervised on events:work"] {
        assert!(
            metrics.contains(&format!(r#"worker_task_restarts_total{{task="{task}"}} 1"#)),
            "expected one restart of {task} counted:\n{metrics}"
        );
    }
    let health: serde_json::Value = reqwest_get(&format!("http://{ops}/health")).await;
    for task in ["relay", "group supervised on events:work"] {
        assert_eq!(health["tasks"][task]["state"], "running", "{health:#}");
        assert_eq!(health["tasks"][task]["restarts"], 1, "{health:#}");
        assert!(
            health["tasks"][task]["last_error"].as_str().is_some_and(|e| e.contains("panics once")),
            "expected the panic as the reason: {health:#}"
        );
    }
    assert_eq!(health["status"], "ok");
    let ready = reqwest::get(format!("http://{ops}/health/ready")).await.expect("ready answers");
    assert_eq!(ready.status(), 200);

    let _ = stop.send(());
    running.await.expect("the worker task ends").expect("the worker stops cleanly");
}

async fn reqwest_get(url: &str) -> serde_json::Value {
    reqwest::get(url).await.expect("GET answers").json().await.expect("a JSON body")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_task_that_keeps_failing_stops_the_worker_with_an_error(pool: PgPool) {
    // A lane that panics at every start, however often it is restarted.
    let broken = Recorder::new("doomed");
    let settings = settings(
        &database_url(&pool.connect_options()),
        &prefix(),
        &[
            ("XENTRI_WORKER__PANIC_AT", "lane.doomed:always"),
            ("XENTRI_WORKER__SUPERVISOR__FIRST_DELAY_MS", "10"),
            ("XENTRI_WORKER__SUPERVISOR__MAX_DELAY_MS", "20"),
            ("XENTRI_WORKER__SUPERVISOR__MAX_RESTARTS", "2"),
        ],
    );
    xentri_core::telemetry::init(&settings.telemetry);
    let worker = Worker::build(settings, vec![Arc::new(broken)]).await.expect("worker builds");
    let ended = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        worker.run_until_stopped(std::future::pending::<()>()),
    )
    .await
    .expect("the worker stops by itself once the task is given up");
    match ended {
        Err(xentri_worker::app::Fatal::Task(gave_up)) => {
            assert_eq!(gave_up.task, "group doomed on events:work");
            assert_eq!(gave_up.restarts, 2, "{gave_up}");
            assert!(gave_up.reason.contains("panics at every start"), "{gave_up}");
        }
        other => panic!("expected the worker to stop with the task given up (main exits 1), got {other:?}"),
    }
}
