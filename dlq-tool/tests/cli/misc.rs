//! `tail`, `scripts/dlq-replay.sh`, the list filters and filtered purges.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{Env, Run, Seed, ago, redis_url, workspace};

#[tokio::test]
async fn tail_follows_new_dead_letters() {
    let mut env = Env::new().await;
    env.seed("jobs:dlq", &[Seed::at(ago(60), "before-tail")]).await;
    let mut child = env.command(&["tail", "jobs:dlq", "--json"]).spawn().expect("spawned");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // `$` means "what arrives after the read starts": keep adding until one shows.
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let mut seed = Seed::at(chrono::Utc::now(), "after-tail");
        seed.id = "*".into();
        env.seed("jobs:dlq", &[seed]).await;
        match tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await {
            Ok(line) => break line.expect("readable").expect("a line"),
            Err(_) => assert!(Instant::now() < deadline, "tail printed nothing"),
        }
    };
    let entry: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(entry["event_id"], "after-tail");
    assert_eq!(entry["group"], "jobs");
    assert_eq!(entry["error"], "builder unreachable");
    child.start_kill().expect("stopped");
    let _ = child.wait().await;
    env.cleanup().await;
}

async fn script(env: &Env, args: &[&str]) -> Run {
    tokio::process::Command::new(workspace().join("scripts/dlq-replay.sh"))
        .args(args)
        .current_dir(workspace())
        .env("DLQ_TOOL", env!("CARGO_BIN_EXE_dlq-tool"))
        .env("XENTRI_ENV", "test")
        .env("XENTRI_REDIS__KEY_PREFIX", &env.prefix)
        .env("REDIS_URL", redis_url())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("script runs")
        .into()
}

#[tokio::test]
async fn dlq_replay_script_replays_everything_and_warns_only_for_another_target() {
    let mut env = Env::new().await;
    env.create_group("jobs:work", "jobs").await;
    env.create_group("jobs:other", "jobs").await;
    let seeds: Vec<Seed> = (0..120).map(|i| Seed::at(ago(600) + chrono::Duration::milliseconds(i), "x")).collect();
    env.seed("jobs:dlq", &seeds).await;

    let run = script(&env, &["jobs:dlq", "jobs:work", "--batch", "50"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("replayed 120 of 120 entries from jobs:dlq"), "{run:?}");
    assert!(!run.stderr.contains("warning"), "the origin as target does not warn: {run:?}");
    assert_eq!((env.len("jobs:work").await, env.len("jobs:dlq").await), (120, 0));

    env.seed("jobs:dlq", &[Seed::at(ago(1), "y")]).await;
    let run = script(&env, &["jobs:dlq", "jobs:other", "--batch", "50"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("warning: replaying 1 entries into `jobs:other`, not their origin `jobs:work`"),
        "{run:?}"
    );

    let run = script(&env, &["jobs:dlq"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("usage:"), "{run:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn list_filters_select_entries() {
    let mut env = Env::new().await;
    let other_org = "0193a8f2-0000-7000-8000-000000000002";
    let ids = env
        .seed(
            "jobs:dlq",
            &[
                Seed::at(ago(7_200), "a").with("type", "xentri.soul.updated.v1"),
                Seed::at(ago(600), "b").with("org_id", other_org).with("correlation_id", "corr-2"),
                {
                    let mut seed = Seed::at(ago(60), "c");
                    seed.error = "connection refused";
                    seed
                },
            ],
        )
        .await;
    let listed = |run: Run| -> Vec<String> {
        assert_eq!(run.code, 0, "{run:?}");
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        doc["entries"].as_array().expect("entries").iter().map(|e| e["id"].as_str().expect("id").to_owned()).collect()
    };
    let list = |args: &'static [&'static str]| {
        let mut all = vec!["list", "jobs:dlq", "--json"];
        all.extend(args);
        all
    };
    assert_eq!(listed(env.run(&list(&[])).await), ids);
    assert_eq!(listed(env.run(&list(&["--type", "xentri.soul.*"])).await), [ids[0].clone()]);
    assert_eq!(listed(env.run(&list(&["--type", "xentri.site.build.requested.v1"])).await), ids[1..]);
    assert_eq!(listed(env.run(&list(&["--org", "0193a8f2-0000-7000-8000-000000000002"])).await), [ids[1].clone()]);
    assert_eq!(listed(env.run(&list(&["--correlation-id", "corr-2"])).await), [ids[1].clone()]);
    assert_eq!(listed(env.run(&list(&["--since", "30m"])).await), ids[1..]);
    assert_eq!(listed(env.run(&list(&["--error-match", "refused$"])).await), [ids[2].clone()]);
    assert_eq!(listed(env.run(&list(&["--count", "1"])).await), [ids[0].clone()]);
    let since = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    assert_eq!(listed(env.run(&["list", "jobs:dlq", "--json", "--since", &since]).await), [ids[2].clone()]);

    let run = env.run(&["list", "jobs:dlq", "--count", "2"]).await;
    assert!(run.stdout.ends_with("2 of 3 matching entries shown; jobs:dlq holds 3\n"), "{run:?}");
    let run = env.run(&["list", "jobs:dlq", "--type", "xentri.lead.*"]).await;
    assert_eq!(run.stdout, "no matching entries in jobs:dlq (depth 3)\n");
    let run = env.run(&["list", "jobs:dlq", "--type", "nothing"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("must be an event type or a prefix ending in .* (xentri.soul.*)"), "{run:?}");

    let run = env.run(&["purge", "jobs:dlq", "--older-than", "5m", "--org", other_org, "--yes", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(report["purged"], 1);
    assert_eq!(listed(env.run(&list(&[])).await), [ids[0].clone(), ids[2].clone()]);
    env.cleanup().await;
}

#[tokio::test]
async fn a_dead_letter_that_is_not_text_is_shown_marked_undecodable() {
    let mut env = Env::new().await;
    // Written by hand with a byte that is not UTF-8 in its error.
    let id: String = redis::cmd("XADD")
        .arg(env.key("jobs:dlq"))
        .arg("*")
        .arg("type")
        .arg("xentri.soul.updated.v1")
        .arg("dlq_group")
        .arg("jobs")
        .arg("dlq_error")
        .arg(&b"bad \xff byte"[..])
        .query_async(&mut env.conn)
        .await
        .expect("XADD");
    let run = env.run(&["list", "jobs:dlq", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let entry = &doc["entries"][0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["undecodable"], "field `dlq_error` is not a UTF-8 string");
    assert_eq!(entry["error"], "bad \u{fffd} byte");
    let run = env.run(&["show", "jobs:dlq", &id]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("undecodable  field `dlq_error` is not a UTF-8 string; bytes that are not UTF-8 show as U+FFFD"),
        "{}",
        run.stdout
    );
    // The test helpers read every key as text: this one goes first.
    let _: i64 = redis::cmd("DEL").arg(env.key("jobs:dlq")).query_async(&mut env.conn).await.expect("DEL");
    env.cleanup().await;
}
