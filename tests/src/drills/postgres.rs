//! Drill 1: PostgreSQL stopped under write load with the worker running.

use std::time::Duration;

use super::{Params, Report, answers_figure, secs, settle_checked, wrap_up};
use crate::load::{Answer, Kind};
use crate::services::Persistence;
use crate::{binary, poll_until, workspace};

use super::Scene;

/// Drill 1: PostgreSQL stopped (`pg_ctl stop -m fast`) under write load with
/// the worker running, started again after `params.outage`.
pub async fn postgres_stopped(params: &Params) -> Report {
    let mut report = Report::new("postgres stopped");
    let scene = Scene::new(Persistence::None, params).await;
    let acquire = params.acquire_timeout.as_millis().to_string();
    let (mut api, base) = scene.api(&[("XENTRI_DATABASE__ACQUIRE_TIMEOUT_MS", &acquire)]).await;
    let mut worker = scene.worker(&[]).await;
    let mut load = scene.load(&base, "pg", Some((params.writers, params.write_rate))).await;
    load.add_writers(params.writers);
    scene.wait_counted(params.warm_events, Duration::from_secs(60)).await;

    let down_at = load.elapsed();
    scene.postgres.stop().await;
    let stopped_at = load.elapsed();
    tokio::time::sleep(params.outage).await;
    scene.postgres.start_again().await;
    let up_at = load.elapsed();
    report.figure("outage_s", secs(up_at - down_at));
    report.figure("stop_took_s", secs(stopped_at - down_at));

    // The api: its first 201 to a request sent once PostgreSQL was back.
    let api_back = poll_until(params.recover_within * 4, || async {
        load.first(|a| a.kind == Kind::Write && a.sent >= up_at && a.status == Some(201))
            .ok_or_else(|| "no 201 yet".to_owned())
    })
    .await;
    let api_recovery = api_back.as_ref().map(|a| a.answered().saturating_sub(up_at)).map_err(Clone::clone);
    // The worker: that event handled by event_counts.
    let worker_recovery = match &api_back {
        Ok(first) => {
            let id = first.id.unwrap_or_default();
            poll_until(params.recover_within * 4, || async {
                let handled: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM processed_events WHERE group_name = 'event_counts' AND event_id = $1)",
                )
                .bind(id)
                .fetch_one(&scene.db)
                .await
                .map_err(|e| e.to_string())?;
                if handled { Ok(load.elapsed() - up_at) } else { Err(format!("event {id} not handled yet")) }
            })
            .await
        }
        Err(missing) => Err(missing.clone()),
    };
    for (who, recovery) in [("api", &api_recovery), ("worker", &worker_recovery)] {
        match recovery {
            Ok(took) => {
                report.figure(&format!("{who}_recovery_s"), secs(*took));
                report.check(
                    format!("the {who} recovers within {:?} without a restart", params.recover_within),
                    *took <= params.recover_within,
                    format!("{took:?} after PostgreSQL accepted connections again"),
                );
            }
            Err(missing) => report.check(format!("the {who} recovers"), false, missing.clone()),
        }
    }
    tokio::time::sleep(params.after).await;
    let answers = load.finish(Duration::from_secs(30)).await;

    let writes: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Write).collect();
    let during: Vec<&Answer> = writes.iter().copied().filter(|a| a.answered() > down_at && a.sent < up_at).collect();
    report.figure("answers", answers_figure(&writes));
    report.figure("answers_during_outage", answers_figure(&during));
    let bad: Vec<&&Answer> = writes.iter().filter(|a| !matches!(a.status, Some(201) | Some(503))).collect();
    report.check(
        "every write is answered 201 or 503",
        bad.is_empty(),
        format!("{} others, e.g. {:?}", bad.len(), bad.first().map(|a| (a.label(), &a.error, &a.problem_type))),
    );
    let unavailable: Vec<&&Answer> = writes.iter().filter(|a| a.status == Some(503)).collect();
    let off_503 = unavailable
        .iter()
        .filter(|a| {
            a.retry_after.is_none() || a.problem_type.as_deref() != Some("https://xentri.io/errors/service-unavailable")
        })
        .count();
    report.check(
        "while PostgreSQL is down, writes are answered 503 service-unavailable with Retry-After",
        !unavailable.is_empty() && off_503 == 0,
        format!("{} × 503, {off_503} of them without Retry-After or of another type", unavailable.len()),
    );
    let bound = params.acquire_timeout + params.hang_slack;
    let slowest = during.iter().map(|a| a.took).max().unwrap_or_default();
    report.check(
        format!("no write hangs past the acquire timeout ({:?} + {:?})", params.acquire_timeout, params.hang_slack),
        slowest <= bound,
        format!("slowest answer during the outage: {slowest:?}"),
    );
    let retried = writes.iter().filter(|a| a.status == Some(201) && a.replayed).count();
    report.figure("answers_replayed", retried);

    settle_checked(&scene, &mut report, params.settle_within).await;
    scene.check_exactly_once(&mut report, &answers, true).await;
    // What on-call does with dead letters of the outage: replay them to the
    // group that failed them.
    let dead = scene.dead_letters().await;
    if !dead.is_empty() {
        let output = tokio::process::Command::new(binary("dlq-tool"))
            .args(["replay", "events:dlq", "--all"])
            .current_dir(workspace())
            .env("XENTRI_ENV", "test")
            .env("REDIS_URL", scene.redis.url())
            .env("XENTRI_REDIS__KEY_PREFIX", super::scene::PREFIX)
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("`dlq-tool replay` runs");
        let settled = scene.settle(params.settle_within, true).await;
        let (stored, counted) = (scene.stored().await, scene.counted().await);
        report.check(
            "dead letters of the outage replayed with `dlq-tool replay events:dlq --all` are handled once",
            output.status.success() && settled.is_ok() && counted == stored && scene.dead_letters().await.is_empty(),
            format!(
                "{} replayed: {}, {}; then {counted} of {stored} events counted ({settled:?})",
                dead.len(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        );
    }
    wrap_up(report, &scene, &mut api, &mut worker).await
}
