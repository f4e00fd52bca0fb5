//! Replay: bulk in batches, exactly once even when killed half-way, once when
//! two operators race, partial failures, and `--to`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::{Env, Seed, ago};

const BULK: usize = 10_000;

/// `BULK` dead letters of `jobs:work`/`jobs`, each with its own event id.
async fn seed_bulk(env: &mut Env) -> HashSet<String> {
    let base = ago(3_600);
    let seeds: Vec<Seed> = (0..BULK)
        .map(|i| {
            let mut seed = Seed::at(base, &format!("event-{i:05}"));
            seed.id = "*".to_owned();
            seed
        })
        .collect();
    env.seed("jobs:dlq", &seeds).await;
    (0..BULK).map(|i| format!("event-{i:05}")).collect()
}

/// Asserts every seeded event is on `jobs:work` exactly once, replayed
/// properly (no `dlq_*`, `target_group`), and the DLQ is empty.
async fn assert_exactly_once(env: &mut Env, seeded: &HashSet<String>) {
    let target = env.entries("jobs:work").await;
    let ids: Vec<&String> = target.iter().map(|(_, fields)| &fields["id"]).collect();
    let unique: HashSet<String> = ids.iter().map(|id| (*id).clone()).collect();
    assert_eq!(ids.len(), unique.len(), "no entry was replayed twice");
    assert_eq!(&unique, seeded, "every entry was replayed");
    for (_, fields) in &target {
        assert_eq!(fields.get("target_group").map(String::as_str), Some("jobs"));
        assert!(fields.keys().all(|k| !k.starts_with("dlq_")), "{fields:?}");
    }
    assert_eq!(env.len("jobs:dlq").await, 0, "the DLQ is empty");
}

#[tokio::test]
async fn bulk_replay_moves_every_entry_once() {
    let mut env = Env::new().await;
    env.create_group("jobs:work", "jobs").await;
    let seeded = seed_bulk(&mut env).await;
    let run = env.run(&["replay", "jobs:dlq", "--all", "--batch", "50"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("replayed {BULK} of {BULK} entries from jobs:dlq")), "{run:?}");
    assert!(run.stderr.is_empty(), "no warning when replaying to the origin: {run:?}");
    assert_exactly_once(&mut env, &seeded).await;
    env.cleanup().await;
}

#[tokio::test]
async fn bulk_replay_killed_half_way_finishes_exactly_once_when_run_again() {
    let mut env = Env::new().await;
    env.create_group("jobs:work", "jobs").await;
    let seeded = seed_bulk(&mut env).await;
    // Paced so that "half-way" lasts long enough to be caught.
    let mut child =
        env.command(&["replay", "jobs:dlq", "--all", "--batch", "50", "--rate", "4000"]).spawn().expect("spawned");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let moved = env.len("jobs:work").await;
        if moved >= BULK / 2 {
            break;
        }
        assert!(Instant::now() < deadline, "replay did not reach half-way: {moved} moved");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().expect("SIGKILL sent");
    let status = child.wait().await.expect("reaped");
    assert!(status.code().is_none(), "killed by the signal, not finished: {status:?}");
    let (moved, left) = (env.len("jobs:work").await, env.len("jobs:dlq").await);
    assert!(moved < BULK && left > 0, "stopped half-way: {moved} moved, {left} left");
    assert_eq!(moved + left, BULK, "every entry is in exactly one place after the kill");

    let run = env.run(&["replay", "jobs:dlq", "--all", "--batch", "50"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("replayed {left} of {left} entries")), "{run:?}");
    assert_exactly_once(&mut env, &seeded).await;
    env.cleanup().await;
}

#[tokio::test]
async fn two_operators_replaying_the_same_id_deliver_it_once() {
    let mut env = Env::new().await;
    env.create_group("jobs:work", "jobs").await;
    for round in 0..5 {
        let ids = env.seed("jobs:dlq", &[Seed::at(ago(60), &format!("race-{round}"))]).await;
        let args = ["replay", "jobs:dlq", ids[0].as_str()];
        let (a, b) = tokio::join!(env.command(&args).output(), env.command(&args).output());
        let runs = [a.expect("ran"), b.expect("ran")];
        let codes: Vec<i32> = runs.iter().map(|r| r.status.code().unwrap_or(-1)).collect();
        assert!(codes.iter().all(|c| *c == 0 || *c == 2), "done, or refused as not found: {codes:?}");
        assert!(codes.contains(&0), "one of them replayed it: {codes:?}");
        for (run, code) in runs.iter().zip(&codes) {
            let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
            let outcome_named = match code {
                0 => stdout.contains("replayed 1 of 1") || stdout.contains("already gone"),
                _ => stderr.contains("not found in `jobs:dlq`"),
            };
            assert!(outcome_named, "exit {code}: {stdout} {stderr}");
        }
        let delivered: Vec<_> = env
            .entries("jobs:work")
            .await
            .into_iter()
            .filter(|(_, fields)| fields["id"] == format!("race-{round}"))
            .collect();
        assert_eq!(delivered.len(), 1, "round {round}: delivered once");
        assert_eq!(env.len("jobs:dlq").await, 0);
    }
    env.cleanup().await;
}

#[tokio::test]
async fn entries_that_cannot_be_replayed_are_named_and_exit_1() {
    let mut env = Env::new().await;
    env.create_group("jobs:work", "jobs").await;
    let good = env.seed("jobs:dlq", &[Seed::at(ago(120), "good")]).await;
    // A dead letter without dlq_group (written by hand, or by an old worker).
    let broken: String = redis::cmd("XADD")
        .arg(env.key("jobs:dlq"))
        .arg("*")
        .arg(&["id", "broken", "dlq_stream", "jobs:work", "dlq_error", "boom"])
        .query_async(&mut env.conn)
        .await
        .expect("seeded");
    let run = env.run(&["replay", "jobs:dlq", "--all"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains(&format!("failed: {broken}: no dlq_group")), "{run:?}");
    assert!(run.stdout.contains("replayed 1 of 1 entries from jobs:dlq"), "{run:?}");
    let left: Vec<String> = env.entries("jobs:dlq").await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(left, vec![broken], "the broken entry stays, {} moved", good[0]);
    env.cleanup().await;
}

#[tokio::test]
async fn replay_to_another_stream_warns_and_keeps_the_group() {
    let mut env = Env::new().await;
    env.create_group("jobs:retry", "jobs").await;
    let ids = env.seed("jobs:dlq", &[Seed::at(ago(120), "moved")]).await;
    let run = env.run(&["replay", "jobs:dlq", &ids[0], "--to", "jobs:retry", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("warning: replaying 1 entries into `jobs:retry`, not their origin `jobs:work`"),
        "{run:?}"
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(report["replayed"], 1);
    assert_eq!(report["entries"][0]["target"], "jobs:retry");
    let target = env.entries("jobs:retry").await;
    assert_eq!(target.len(), 1);
    assert_eq!(target[0].1["target_group"], "jobs");
    assert_eq!(target[0].1["id"], "moved");
    assert_eq!(env.len("jobs:work").await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn filters_select_what_is_replayed() {
    let mut env = Env::new().await;
    env.create_group("jobs:work", "jobs").await;
    let ids = env
        .seed(
            "jobs:dlq",
            &[
                Seed::at(ago(7_200), "old-timeout").with("type", "xentri.site.build.requested.v1"),
                Seed::at(ago(60), "new-other-org").with("org_id", "0193a8f2-0000-7000-8000-000000000002"),
                {
                    let mut seed = Seed::at(ago(30), "new-refused");
                    seed.error = "connection refused";
                    seed
                },
            ],
        )
        .await;
    let ids_file = std::env::temp_dir().join(format!("{}ids.txt", env.prefix.trim_end_matches(':')));
    std::fs::write(&ids_file, format!("# chosen\n{}\n\n{}\n", ids[0], ids[2])).expect("written");
    let run = env
        .run(&["replay", "jobs:dlq", "--all", "--since", "1h", "--org", "0193a8f2-0000-7000-8000-000000000001"])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("replayed 1 of 1"), "only new-refused matches: {run:?}");
    let run = env
        .run(&[
            "replay",
            "jobs:dlq",
            "--all",
            "--ids-from",
            ids_file.to_str().expect("utf-8"),
            "--error-match",
            "^builder",
        ])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("replayed 1 of 1"), "only old-timeout matches: {run:?}");
    let replayed: HashSet<String> = env.entries("jobs:work").await.into_iter().map(|(_, f)| f["id"].clone()).collect();
    assert_eq!(replayed, HashSet::from(["new-refused".to_owned(), "old-timeout".to_owned()]));
    assert_eq!(env.len("jobs:dlq").await, 1);
    let _ = std::fs::remove_file(ids_file);
    env.cleanup().await;
}
