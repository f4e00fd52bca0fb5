//! DLQ alerts end to end with a real local HTTP receiver; archival; the
//! shipped Prometheus rules.

use std::sync::{Arc, Mutex};

use chrono::{Duration as ChronoDuration, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use warp::Filter;
use xentri_worker::runtime::Shared;

use crate::helpers::{database_url, entries, event, prefix, redis, settings, shared_state, xadd, xlen};

/// A local Alertmanager stand-in that keeps every POSTed body.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let route = warp::path!("api" / "v2" / "alerts").and(warp::post()).and(warp::body::json()).map(
        move |body: serde_json::Value| {
            if let Ok(mut all) = sink.lock() {
                all.push(body);
            }
            warp::reply()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{address}/api/v2/alerts"), received)
}

fn shared(pool: &PgPool, prefix: &str, extra: &[(&str, &str)]) -> Shared {
    shared_state(pool, settings(&database_url(&pool.connect_options()), prefix, extra))
}

async fn dead_letter(conn: &mut redis::aio::MultiplexedConnection, key: &str, correlation: &str) -> String {
    let mut sent = event(Uuid::new_v4(), 1);
    sent.correlation_id = correlation.to_owned();
    let mut fields: Vec<(String, String)> =
        xentri_core::stream::encode(&sent).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    fields.extend([
        ("dlq_stream".to_owned(), "jobs:work".to_owned()),
        ("dlq_group".to_owned(), "jobs".to_owned()),
        ("dlq_error".to_owned(), "boom".to_owned()),
    ]);
    xadd(conn, key, &fields).await
}

fn firing(received: &[serde_json::Value], name: &str) -> Vec<serde_json::Value> {
    received
        .iter()
        .flat_map(|body| body.as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == name && a.get("endsAt").is_none())
        .collect()
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn dlq_growth_alerts_once_and_resolves(pool: PgPool) {
    let metrics = xentri_core::metrics::Metrics::install();
    let (url, received) = receiver().await;
    let prefix = prefix();
    let shared = shared(&pool, &prefix, &[("XENTRI_ALERTS__WEBHOOK_URL", &url)]);
    let client = xentri_worker::alerts::client().expect("client");
    let mut conn = redis().await;
    let dlq = format!("{prefix}jobs:dlq");
    let mut ids = Vec::new();
    for n in 0..11 {
        ids.push(dead_letter(&mut conn, &dlq, &format!("corr-{n}")).await);
    }
    // Several evaluations while the condition holds: one alert, no storm.
    for _ in 0..3 {
        xentri_worker::alerts::evaluate(&shared, &client, Utc::now()).await.expect("evaluate");
    }
    let all = received.lock().expect("lock").clone();
    let growth = firing(&all, "XentriDlqGrowth");
    assert_eq!(growth.len(), 1, "exactly one alert: {all:#?}");
    let alert = &growth[0];
    assert_eq!(alert["labels"]["stream"], "jobs:dlq");
    assert!(alert["annotations"]["summary"].as_str().is_some_and(|s| s.contains("11 new dead letters")));
    assert!(alert["startsAt"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    assert!(alert["generatorURL"].is_string());
    let metrics = metrics.render();
    assert!(metrics.contains(r#"worker_alert_firing{alertname="XentriDlqGrowth",stream="jobs:dlq"} 1"#), "{metrics}");

    // Cleared (replayed or purged): a resolution, with endsAt.
    let _: i64 = redis::cmd("XDEL").arg(&dlq).arg(&ids).query_async(&mut conn).await.expect("xdel");
    xentri_worker::alerts::evaluate(&shared, &client, Utc::now()).await.expect("evaluate");
    let all = received.lock().expect("lock").clone();
    let resolved: Vec<&serde_json::Value> = all
        .iter()
        .flat_map(|b| b.as_array().into_iter().flatten())
        .filter(|a| a["labels"]["alertname"] == "XentriDlqGrowth" && a.get("endsAt").is_some())
        .collect();
    assert_eq!(resolved.len(), 1, "{all:#?}");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_correlation_id_three_times_alerts(pool: PgPool) {
    let (url, received) = receiver().await;
    let prefix = prefix();
    // The events family's severity, set rather than derived from its name.
    let shared = shared(
        &pool,
        &prefix,
        &[("XENTRI_ALERTS__WEBHOOK_URL", &url), ("XENTRI_STREAMS__EVENTS__ALERT_SEVERITY", "critical")],
    );
    let client = xentri_worker::alerts::client().expect("client");
    let mut conn = redis().await;
    let dlq = format!("{prefix}events:dlq");
    for _ in 0..2 {
        dead_letter(&mut conn, &dlq, "order-42").await;
    }
    xentri_worker::alerts::evaluate(&shared, &client, Utc::now()).await.expect("evaluate");
    assert!(firing(&received.lock().expect("lock"), "XentriDlqRepeatedCorrelation").is_empty(), "two is not three");
    dead_letter(&mut conn, &dlq, "order-42").await;
    xentri_worker::alerts::evaluate(&shared, &client, Utc::now()).await.expect("evaluate");
    let all = received.lock().expect("lock").clone();
    let repeated = firing(&all, "XentriDlqRepeatedCorrelation");
    assert_eq!(repeated.len(), 1, "{all:#?}");
    assert_eq!(repeated[0]["labels"]["correlation_id"], "order-42");
    assert_eq!(repeated[0]["labels"]["stream"], "events:dlq");
    assert_eq!(repeated[0]["labels"]["severity"], "critical");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn old_dead_letters_are_archived_and_young_ones_stay(pool: PgPool) {
    let prefix = prefix();
    let shared = shared(&pool, &prefix, &[]);
    let mut conn = redis().await;
    let dlq = format!("{prefix}jobs:dlq");
    let now = Utc::now();
    let two_days_ago = now - ChronoDuration::days(2);
    let sent = event(Uuid::new_v4(), 1);
    let mut old_fields: Vec<(String, String)> =
        xentri_core::stream::encode(&sent).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    old_fields.push(("dlq_failed_at".to_owned(), two_days_ago.to_rfc3339()));
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&dlq).arg(format!("{}-0", two_days_ago.timestamp_millis()));
    for (k, v) in &old_fields {
        cmd.arg(k).arg(v);
    }
    let _: String = cmd.query_async(&mut conn).await.expect("old entry");
    let young = dead_letter(&mut conn, &dlq, "young").await;

    let moved =
        xentri_worker::archiver::archive_older_than(&shared, "jobs:dlq", std::time::Duration::from_secs(86_400), now)
            .await
            .expect("archive");
    assert_eq!(moved, 1);
    let left = entries(&mut conn, &dlq).await;
    assert_eq!(left.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), [young]);
    let archive = format!("{prefix}dlq:archive:jobs:dlq:{}", two_days_ago.format("%Y-%m-%d"));
    let archived = entries(&mut conn, &archive).await;
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].decode().expect("whole entry kept").id, sent.id);
    let ttl: i64 = redis::cmd("TTL").arg(&archive).query_async(&mut conn).await.expect("ttl");
    let expected = 30 * 86_400 - 2 * 86_400;
    assert!((expected - 120..=expected).contains(&ttl), "about 30 days after it failed: {ttl}");
    assert_eq!(xlen(&mut conn, &dlq).await, 1);
}

#[test]
fn the_shipped_prometheus_rules_parse() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/prometheus/alerts.yml");
    let text = std::fs::read_to_string(&path).expect("rules file");
    if let Ok(status) = std::process::Command::new("promtool").arg("check").arg("rules").arg(&path).status() {
        assert!(status.success(), "promtool check rules failed");
    }
    let rules: serde_norway::Value = serde_norway::from_str(&text).expect("valid YAML");
    let groups = rules["groups"].as_sequence().expect("groups");
    assert!(!groups.is_empty());
    let mut names = Vec::new();
    for group in groups {
        assert!(group["name"].as_str().is_some_and(|n| !n.is_empty()), "every group is named");
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert with a name");
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            assert!(!expr.trim().is_empty());
            assert!(rule["annotations"]["summary"].is_string(), "{name} has a summary");
            assert!(rule["labels"]["severity"].is_string(), "{name} has a severity");
            names.push(name.to_owned());
        }
    }
    assert!(names.contains(&"XentriDlqGrowth".to_owned()));
    assert!(names.contains(&"XentriDlqRepeatedCorrelation".to_owned()));
}
