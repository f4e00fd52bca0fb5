//! Archival: old entries move to `dlq:archive:{dlq}:{date}` with a TTL of the
//! retention minus their age, young ones stay; `archives` lists them and
//! `replay --from-archive` brings one back to its origin.

use chrono::{DateTime, Utc};

use crate::support::{Env, Seed, ago, id_time};

const DAY: i64 = 86_400;
const RETENTION: i64 = 30 * DAY;

fn archive_name(failed_at: DateTime<Utc>) -> String {
    format!("dlq:archive:jobs:dlq:{}", failed_at.format("%Y-%m-%d"))
}

async fn ttl(env: &mut Env, name: &str) -> i64 {
    redis::cmd("TTL").arg(env.key(name)).query_async(&mut env.conn).await.expect("ttl")
}

#[tokio::test]
async fn old_entries_move_to_dated_archives_and_can_come_back() {
    let mut env = Env::new().await;
    env.create_group("jobs:work", "jobs").await;
    let (three_days, two_days) = (ago(3 * DAY), ago(2 * DAY));
    let ids = env
        .seed(
            "jobs:dlq",
            &[
                Seed::at(three_days, "old-3d"),
                Seed::at(two_days, "old-2d-a"),
                Seed::at(two_days + chrono::Duration::milliseconds(1), "old-2d-b"),
                Seed::at(ago(23 * 3_600), "young-23h"),
                Seed::at(ago(60), "young-1m"),
            ],
        )
        .await;

    let run = env.run(&["archive", "jobs:dlq"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("archived 3 of 3 entries older than 1d from jobs:dlq"), "{run:?}");

    let left: Vec<String> = env.entries("jobs:dlq").await.into_iter().map(|(_, f)| f["id"].clone()).collect();
    assert_eq!(left, ["young-23h", "young-1m"], "young entries stay");
    let older = archive_name(id_time(&ids[0]));
    let newer = archive_name(id_time(&ids[1]));
    assert_ne!(older, newer);
    let archived = env.entries(&newer).await;
    let names: Vec<&str> = archived.iter().map(|(_, f)| f["id"].as_str()).collect();
    assert_eq!(names, ["old-2d-a", "old-2d-b"]);
    assert_eq!(archived[0].1["dlq_group"], "jobs", "archived whole, dlq_* fields included");
    assert_eq!(env.entries(&older).await.len(), 1);
    for (name, age) in [(&newer, 2 * DAY), (&older, 3 * DAY)] {
        let ttl = ttl(&mut env, name).await;
        assert!((ttl - (RETENTION - age)).abs() <= 120, "{name}: ttl {ttl}, expected about {}", RETENTION - age);
    }

    let listed = env.run(&["archives", "jobs:dlq", "--json"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).expect("json");
    let keys: Vec<(&str, i64)> = listed["archives"]
        .as_array()
        .expect("archives")
        .iter()
        .map(|a| (a["key"].as_str().expect("key"), a["entries"].as_i64().expect("entries")))
        .collect();
    assert_eq!(keys, [(older.as_str(), 1), (newer.as_str(), 2)]);

    let archived_id = archived[0].0.clone();
    let run = env.run(&["replay", "--from-archive", &newer, &archived_id]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
    let back = env.entries("jobs:work").await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].1["id"], "old-2d-a");
    assert_eq!(back[0].1["target_group"], "jobs");
    assert!(back[0].1.keys().all(|k| !k.starts_with("dlq_")));
    assert_eq!(env.entries(&newer).await.len(), 1);

    let run = env.run(&["replay", "--from-archive", &newer, &archived_id]).await;
    assert_eq!(run.code, 2, "already replayed: {run:?}");
    assert!(run.stderr.contains(&format!("not found in `{newer}`: {archived_id}")), "{run:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn older_than_moves_the_cut_off_and_missing_failed_at_falls_back_to_the_id() {
    let mut env = Env::new().await;
    let two_hours = ago(2 * 3_600);
    let id: String = redis::cmd("XADD")
        .arg(env.key("jobs:dlq"))
        .arg(format!("{}-0", two_hours.timestamp_millis()))
        .arg(&["id", "no-failed-at", "dlq_stream", "jobs:work", "dlq_group", "jobs"])
        .query_async(&mut env.conn)
        .await
        .expect("seeded");
    env.seed("jobs:dlq", &[Seed::at(ago(30 * 60), "young")]).await;
    let run = env.run(&["archive", "jobs:dlq", "--older-than", "1h"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("archived 1 of 1 entries older than 1h"), "{run:?}");
    let archive = archive_name(id_time(&id));
    assert_eq!(env.entries(&archive).await[0].1["id"], "no-failed-at");
    let ttl = ttl(&mut env, &archive).await;
    assert!((ttl - (RETENTION - 2 * 3_600)).abs() <= 120, "ttl {ttl}");
    assert_eq!(env.len("jobs:dlq").await, 1);
    env.cleanup().await;
}
