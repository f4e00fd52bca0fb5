//! Drills 4 and 5: the api SIGKILLed under write load, and a spike of
//! connections past its concurrency limit.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::{Params, Report, Scene, answers_figure, secs, settle_checked, still_running_then_stop};
use crate::load::{self, Answer, Kind};
use crate::poll_until;
use crate::services::{Persistence, free_port};

/// Drill 4: the api SIGKILLed under write load, started again on the same
/// port after `params.api_down`; writers retry their keys meanwhile.
pub async fn api_killed(params: &Params) -> Report {
    let mut report = Report::new("api killed");
    let scene = Scene::new(Persistence::None, params).await;
    let port = free_port().to_string();
    let (mut api, base) = scene.api(&[("XENTRI_API__PORT", &port)]).await;
    let mut worker = scene.worker(&[]).await;
    let mut load = scene.load(&base, "kill", None).await;
    load.add_writers(params.writers * 2);
    scene.wait_counted(params.warm_events, Duration::from_secs(60)).await;

    let killed_at = load.elapsed();
    let status = api.signal("-KILL").await;
    let dead_at = load.elapsed();
    report.check("the api died of SIGKILL", status.code().is_none(), status.to_string());
    tokio::time::sleep(params.api_down).await;
    let restarted_at = load.elapsed();
    let (mut api, _) = scene.api(&[("XENTRI_API__PORT", &port)]).await;
    let up_at = load.elapsed();
    report.figure("api_start_s", secs(up_at - restarted_at));
    let first = poll_until(params.recover_within * 4, || async {
        load.first(|a| a.kind == Kind::Write && a.sent >= restarted_at && a.status == Some(201))
            .ok_or_else(|| "no 201 yet".to_owned())
    })
    .await;
    match &first {
        Ok(first) => {
            let took = first.answered().saturating_sub(restarted_at);
            report.figure("api_recovery_s", secs(took));
            report.check("the restarted api answers 201", true, format!("{took:?} after it was started"));
        }
        Err(missing) => report.check("the restarted api answers 201", false, missing.clone()),
    }
    tokio::time::sleep(params.after).await;
    let answers = load.finish(Duration::from_secs(30)).await;
    let writes: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Write).collect();
    report.figure("answers", answers_figure(&writes));

    // Cut at the kill: sent before the api was dead, and never answered.
    let cut: Vec<&&Answer> =
        writes.iter().filter(|a| a.sent < dead_at && a.answered() >= killed_at && a.status.is_none()).collect();
    report.figure("in_flight_at_kill", cut.len());
    report.check(
        "the kill cuts requests in flight (their connections drop, no answer)",
        !cut.is_empty(),
        format!("{} requests sent before the api died got no answer", cut.len()),
    );
    let while_dead =
        writes.iter().filter(|a| a.status.is_some() && a.answered() > dead_at && a.answered() < restarted_at).count();
    report.check("nothing is answered while the api is dead", while_dead == 0, format!("{while_dead} answers"));
    let cut_keys: HashSet<&str> = cut.iter().filter_map(|a| a.key.as_deref()).collect();
    let cut_created = writes
        .iter()
        .filter(|a| a.status == Some(201) && a.key.as_deref().is_some_and(|k| cut_keys.contains(k)))
        .count();
    report.check(
        "every key cut at the kill is answered 201 when retried after the restart",
        cut_created >= cut_keys.len(),
        format!("{} keys cut, {cut_created} 201 answers to their retries", cut_keys.len()),
    );
    let replayed: HashSet<&str> = writes
        .iter()
        .filter(|a| a.replayed && a.status == Some(201))
        .filter_map(|a| a.key.as_deref())
        .filter(|k| cut_keys.contains(k))
        .collect();
    report.figure("cut_keys_committed_before_the_kill", replayed.len());
    let bad: Vec<&&Answer> =
        writes.iter().filter(|a| !matches!(a.status, None | Some(201) | Some(409) | Some(503))).collect();
    report.check(
        "writes are answered 201 (or 409/503 to a retry), never another status",
        bad.is_empty(),
        format!("{} others, e.g. {:?}", bad.len(), bad.first().map(|a| (a.label(), &a.problem_type))),
    );
    settle_checked(&scene, &mut report, params.settle_within).await;
    scene.check_exactly_once(&mut report, &answers, true).await;
    still_running_then_stop(&mut report, &mut api).await;
    still_running_then_stop(&mut report, &mut worker).await;
    report.figure("logged", scene.log_summary());
    report.logs = scene.logs();
    report
}

/// Drill 5: a spike from `params.spike_from` to `params.spike_to` clients
/// (half writing, half reading) within `params.spike_ramp`, held, then back;
/// `/health` probed every 100 ms throughout. The api runs with
/// `api.max_concurrent_requests` = `params.max_concurrent_requests`.
pub async fn spike(params: &Params) -> Report {
    let mut report = Report::new("spike");
    let scene = Scene::new(Persistence::None, params).await;
    let limit = params.max_concurrent_requests.to_string();
    let (mut api, base) = scene.api(&[("XENTRI_API__MAX_CONCURRENT_REQUESTS", &limit)]).await;
    let mut load = scene.load(&base, "spike", None).await;
    load.add_health_probe(Duration::from_millis(100));
    load.add_writers(params.spike_from / 2);
    load.add_readers(params.spike_from - params.spike_from / 2);
    tokio::time::sleep(params.spike_base).await;
    let ramp_at = load.elapsed();
    let steps = 20u32;
    let per_step = (params.spike_to - params.spike_from) as f64 / steps as f64;
    for step in 1..=steps {
        tokio::time::sleep(params.spike_ramp / steps).await;
        let target = params.spike_from + (per_step * step as f64).round() as usize;
        let add = target.saturating_sub(load.clients());
        load.add_writers(add / 2);
        load.add_readers(add - add / 2);
    }
    let top_at = load.elapsed();
    tokio::time::sleep(params.spike_hold).await;
    let answers = load.finish(Duration::from_secs(30)).await;
    report.figure("clients", json!({"from": params.spike_from, "to": params.spike_to}));
    report.figure("ramp_s", secs(top_at - ramp_at));
    report.figure("max_concurrent_requests", params.max_concurrent_requests);

    let requests: Vec<&Answer> = answers.iter().filter(|a| a.kind != Kind::Health).collect();
    let health: Vec<&Answer> = answers.iter().filter(|a| a.kind == Kind::Health).collect();
    report.figure("answers", answers_figure(&requests));
    report.figure(
        "writes",
        answers_figure(&requests.iter().copied().filter(|a| a.kind == Kind::Write).collect::<Vec<_>>()),
    );
    report.figure(
        "reads",
        answers_figure(&requests.iter().copied().filter(|a| a.kind == Kind::Read).collect::<Vec<_>>()),
    );
    report.figure("health", answers_figure(&health));
    report.figure("per_second", load::per_second(requests.iter().copied()));
    let shed: Vec<&&Answer> = requests.iter().filter(|a| a.status == Some(503)).collect();
    let shed_off: Vec<&&&Answer> = shed
        .iter()
        .filter(|a| {
            a.retry_after.as_deref() != Some("1")
                || !a.problem_type.as_deref().is_some_and(|t| t.ends_with("/overloaded"))
        })
        .collect();
    let errors: Vec<&&Answer> = requests.iter().filter(|a| a.status.is_none_or(|s| s >= 500 && s != 503)).collect();
    report.check(
        "no 5xx but 503 load shedding, every request answered",
        errors.is_empty(),
        format!("{} others, e.g. {:?}", errors.len(), errors.first().map(|a| (a.label(), &a.error))),
    );
    report.check(
        "past the configured concurrency the api sheds load: 503 overloaded with Retry-After: 1",
        !shed.is_empty() && shed_off.is_empty(),
        format!(
            "{} × 503, {} of them not overloaded with Retry-After: 1 (e.g. {:?})",
            shed.len(),
            shed_off.len(),
            shed_off.first().map(|a| (&a.retry_after, &a.problem_type))
        ),
    );
    let client_errors: Vec<&&Answer> =
        requests.iter().filter(|a| a.status.is_some_and(|s| (400..500).contains(&s) && s != 409)).collect();
    report.check(
        "no 4xx (but 409 to a retry)",
        client_errors.is_empty(),
        format!("{} e.g. {:?}", client_errors.len(), client_errors.first().map(|a| (a.label(), &a.problem_type))),
    );
    let health_off = health.iter().filter(|a| a.status != Some(200)).count();
    let slowest_health = health.iter().map(|a| a.took).max().unwrap_or_default();
    report.check(
        "/health keeps answering 200 throughout",
        !health.is_empty() && health_off == 0,
        format!("{} probes, {health_off} not 200, slowest {slowest_health:?}", health.len()),
    );
    scene.check_exactly_once(&mut report, &answers, false).await;
    still_running_then_stop(&mut report, &mut api).await;
    report.figure("logged", scene.log_summary());
    report.logs = scene.logs();
    report
}
