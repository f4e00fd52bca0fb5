//! Drills 2 and 3: Redis paused, stopped, and restarted empty.

use std::time::{Duration, Instant};

use super::{Params, Report, Scene, answers_figure, secs, settle_checked, wrap_up};
use crate::load::{Answer, Kind};
use crate::poll_until;
use crate::services::Persistence;

/// What an outage of Redis left to do once it was back: how long until every
/// event stored before it came back was handled by `event_counts`.
async fn redis_recovery(scene: &Scene, report: &mut Report, name: &str, params: &Params, back: Instant, seq: i64) {
    let drained = poll_until(params.settle_within, || async {
        match scene.unhandled_through(seq).await? {
            0 => Ok(back.elapsed()),
            n => Err(format!("{n} events stored before Redis came back not handled yet")),
        }
    })
    .await;
    match drained {
        Ok(took) => {
            report.figure(&format!("{name}_recovery_s"), secs(took));
            report.check(
                format!("{name}: the worker reconnects and handles the backlog"),
                true,
                format!("every event stored during the outage handled {took:?} after Redis was back"),
            );
        }
        Err(missing) => report.check(format!("{name}: the worker reconnects and handles the backlog"), false, missing),
    }
}

/// Drill 2: Redis paused (`CLIENT PAUSE … ALL`) and, later, stopped (a clean
/// stop of a server with AOF, started again on its files), each for
/// `params.outage`, under write load with the worker running.
pub async fn redis_unavailable(params: &Params) -> Report {
    let mut report = Report::new("redis paused and stopped");
    let mut scene = Scene::new(Persistence::Aof, params).await;
    let (mut api, base) = scene.api(&[]).await;
    let mut worker = scene.worker(&[]).await;
    let mut load = scene.load(&base, "redis", Some((params.writers, params.write_rate))).await;
    load.add_writers(params.writers);
    scene.wait_counted(params.warm_events, Duration::from_secs(60)).await;

    // Paused: the server is up, every command waits.
    let paused_at = load.elapsed();
    scene.redis.pause(params.outage).await;
    let pause_end = Instant::now() + params.outage;
    tokio::time::sleep(params.outage.saturating_sub(Duration::from_millis(200))).await;
    let outbox_paused = scene.outbox().await;
    tokio::time::sleep_until(pause_end.into()).await;
    let seq = scene.last_seq().await;
    let resumed_at = load.elapsed();
    redis_recovery(&scene, &mut report, "paused", params, pause_end, seq).await;
    report.figure("paused_outbox_at_end", outbox_paused);

    // Stopped: nothing listens on the port.
    let stopped_at = load.elapsed();
    scene.redis.stop("-TERM").await;
    tokio::time::sleep(params.outage.saturating_sub(Duration::from_millis(200))).await;
    let outbox_stopped = scene.outbox().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    scene.redis.start_again().await;
    let back = Instant::now();
    let seq = scene.last_seq().await;
    let started_at = load.elapsed();
    redis_recovery(&scene, &mut report, "stopped", params, back, seq).await;
    report.figure("stopped_outbox_at_end", outbox_stopped);
    report.figure("stopped_s", secs(started_at - stopped_at));
    tokio::time::sleep(params.after).await;
    let answers = load.finish(Duration::from_secs(30)).await;

    let writes: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Write).collect();
    for (name, from, to) in [("paused", paused_at, resumed_at), ("stopped", stopped_at, started_at)] {
        let during: Vec<&Answer> = writes.iter().copied().filter(|a| a.sent >= from && a.sent < to).collect();
        let created = during.iter().filter(|a| a.status == Some(201)).count();
        report.figure(&format!("{name}_answers"), answers_figure(&during));
        report.check(
            format!("{name}: the api keeps accepting writes (201)"),
            created > 0 && created == during.len(),
            format!("{created} of {} writes sent meanwhile answered 201", during.len()),
        );
    }
    report.check(
        "events wait in the outbox while Redis is away",
        outbox_paused > 0 && outbox_stopped > 0,
        format!("outbox rows near the end of the pause: {outbox_paused}, of the stop: {outbox_stopped}"),
    );
    report.figure("answers", answers_figure(&writes));
    settle_checked(&scene, &mut report, params.settle_within).await;
    scene.check_exactly_once(&mut report, &answers, true).await;
    wrap_up(report, &scene, &mut api, &mut worker).await
}

/// Drill 3: Redis without persistence killed and started again empty while
/// `event_counts` is behind (relayed events not yet handled are lost with the
/// stream); the worker recreates its groups and `worker republish` puts the
/// lost events back, as on-call runs it.
pub async fn redis_restarted_empty(params: &Params) -> Report {
    let mut report = Report::new("redis restarted empty");
    let mut scene = Scene::new(Persistence::None, params).await;
    let (mut api, base) = scene.api(&[]).await;
    // A slow event_counts, so that it is behind when Redis goes.
    let mut worker = scene.worker(&[("XENTRI_WORKER__GROUPS__EVENT_COUNTS__CONCURRENCY", "1")]).await;
    let mut load = scene.load(&base, "empty", None).await;
    load.add_writers(params.writers);
    scene.wait_counted(params.warm_events, Duration::from_secs(60)).await;
    // Hold event_counts still until Redis goes: its next batch waits on this
    // lock, so it cannot catch up between the lag's reading and the kill
    // (however fast the machine), and what it has not been handed stays on
    // the stream. The batch waits at its first write, before it has a
    // transaction id, so the commit horizon (and with it the relay) moves on.
    let mut hold = scene.db.begin().await.expect("a transaction");
    sqlx::query("LOCK TABLE processed_events IN EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .expect("processed_events locked");
    // Entries on the stream the group has not been handed yet: what the
    // worker has read is in its memory and survives Redis, these do not.
    let behind = poll_until(Duration::from_secs(60), || async {
        match scene.lag("event_counts").await {
            n if n >= 100 => Ok(n),
            n => Err(format!("{n} entries on the stream not yet delivered to event_counts")),
        }
    })
    .await;
    report.check("event_counts is behind when Redis goes", behind.is_ok(), format!("{behind:?}"));

    scene.redis.stop("-KILL").await;
    let killed = Instant::now();
    let lost_with_redis = scene.relayed_unhandled().await;
    report.figure("relayed_unhandled_at_kill", lost_with_redis);
    hold.rollback().await.expect("event_counts released");
    tokio::time::sleep(params.outage.saturating_sub(killed.elapsed())).await;
    scene.redis.start_again().await;
    let back = Instant::now();
    let recreated = poll_until(params.settle_within, || async {
        let groups = scene.groups().await;
        if groups.len() == 2 { Ok(back.elapsed()) } else { Err(format!("groups on events:work: {groups:?}")) }
    })
    .await;
    match &recreated {
        Ok(took) => {
            report.figure("groups_recreated_s", secs(*took));
            report.check("the worker recreates its groups", true, format!("{took:?} after Redis was back"));
        }
        Err(missing) => report.check("the worker recreates its groups", false, missing.clone()),
    }
    tokio::time::sleep(params.after).await;
    let answers = load.finish(Duration::from_secs(30)).await;
    let writes: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Write).collect();
    report.figure("answers", answers_figure(&writes));

    // The stream drained: what is not handled now never will be without help.
    if let Err(behind) = scene.settle(params.settle_within, false).await {
        report.check("the stream drains after the restart", false, behind);
    }
    let (code, audit) = scene.on_call("audit", "event_counts", &["--since-seq", "1"]).await;
    let missing = audit["summary"]["missing"].as_i64().unwrap_or(-1);
    report.figure("missing_before_republish", missing);
    report.check(
        "`worker audit` names the events whose handling was lost",
        code == Some(1) && missing > 0,
        format!("exit {code:?}, {missing} missing; {lost_with_redis} were relayed and unhandled at the kill"),
    );
    let republish_started = Instant::now();
    for group in ["event_counts", "cache_invalidation"] {
        let (code, outcome) = scene.on_call("republish", group, &["--since", "1h", "--yes"]).await;
        report.figure(&format!("republished_{group}"), outcome["republished"].clone());
        report.check(
            format!("`worker republish --group {group} --since 1h` exits 0"),
            code == Some(0),
            format!("exit {code:?}, published {}", outcome["republished"]),
        );
    }
    settle_checked(&scene, &mut report, params.settle_within).await;
    report.figure("recovered_after_republish_s", secs(republish_started.elapsed()));
    let (code, again) = scene.on_call("republish", "event_counts", &["--since", "1h", "--yes"]).await;
    report.check(
        "a second republish publishes nothing",
        code == Some(0) && again["republished"] == 0,
        format!("exit {code:?}, published {}", again["republished"]),
    );
    scene.check_exactly_once(&mut report, &answers, true).await;
    wrap_up(report, &scene, &mut api, &mut worker).await
}
