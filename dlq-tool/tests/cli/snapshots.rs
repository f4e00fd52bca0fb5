//! Snapshots of what people and scripts read: `list`, `show`, `stats`, their
//! `--json` documents, and `--help`. Entry ids and instants are redacted; ages
//! are stable because the entries are seeded at fixed ages (2h30m5s).

use crate::support::{Env, Run, Seed, ago};

/// Redactions for what changes from run to run (keeping widths, so tables stay aligned).
fn redactions() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\b\d{13}-", "TTTTTTTTTTTTT-"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", "YYYY-MM-DDThh:mm:ss.sssZ"),
        (r#""(age_secs|oldest_age_secs)": \d+"#, r#""$1": "[secs]""#),
    ]
}

fn assert_ok(run: &Run) {
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
}

/// Three dead letters of `events:dlq`, 2h30m5s old, and a `jobs:dlq` over its
/// alert threshold with repeated errors and correlation ids.
async fn seed(env: &mut Env) -> Vec<String> {
    let base = ago(9_005);
    let events: Vec<Seed> = (0..3i64)
        .map(|i| {
            let mut seed = Seed::at(base + chrono::Duration::milliseconds(i), &format!("0193a8f2-1111-7000-8000-00000000000{i}"))
                .with("type", ["xentri.soul.updated.v1", "xentri.lead.created.v1", "xentri.soul.updated.v1"][i as usize])
                .with("correlation_id", &format!("corr-e{i}"));
            seed.stream = "events:work";
            seed.group = ["cache_invalidation", "event_counts", "cache_invalidation"][i as usize];
            seed.error = [
                "redis timeout after 1000ms",
                "permanent: payload is not a JSON object: expected `{` at line 1 column 1, found `[` — the handler cannot count this event",
                "redis timeout after 1000ms",
            ][i as usize];
            seed
        })
        .collect();
    let ids = env.seed("events:dlq", &events).await;

    let mut jobs = vec![Seed::at(base, "0193a8f2-2222-7000-8000-000000000000").with("correlation_id", "corr-old")];
    let recent = ago(600);
    for i in 1..12i64 {
        let mut seed =
            Seed::at(recent + chrono::Duration::milliseconds(i), &format!("0193a8f2-2222-7000-8000-0000000000{i:02}"))
                .with(
                    "correlation_id",
                    ["corr-a", "corr-a", "corr-a", "corr-b", "corr-b"]
                        .get(i as usize - 1)
                        .copied()
                        .unwrap_or(&format!("corr-{i}")),
                );
        seed.error = if i <= 7 {
            "builder unreachable"
        } else if i <= 10 {
            "timeout after 30s"
        } else {
            "payload invalid: missing site_id"
        };
        jobs.push(seed);
    }
    env.seed("jobs:dlq", &jobs).await;
    ids
}

#[tokio::test]
async fn list_show_and_stats_read_well() {
    let mut env = Env::new().await;
    let ids = seed(&mut env).await;
    let list = env.run(&["list", "events:dlq"]).await;
    let list_json = env.run(&["list", "events:dlq", "--json"]).await;
    let show = env.run(&["show", "events:dlq", &ids[1]]).await;
    let show_json = env.run(&["show", "events:dlq", &ids[1], "--json"]).await;
    let stats = env.run(&["stats"]).await;
    let stats_json = env.run(&["stats", "--json"]).await;
    for run in [&list, &list_json, &show, &show_json, &stats, &stats_json] {
        assert_ok(run);
    }
    for json in [&list_json, &show_json, &stats_json] {
        serde_json::from_str::<serde_json::Value>(&json.stdout).expect("one JSON document");
    }
    insta::with_settings!({ filters => redactions() }, {
        insta::assert_snapshot!("list", list.stdout);
        insta::assert_snapshot!("list_json", list_json.stdout);
        insta::assert_snapshot!("show", show.stdout);
        insta::assert_snapshot!("show_json", show_json.stdout);
        insta::assert_snapshot!("stats", stats.stdout);
        insta::assert_snapshot!("stats_json", stats_json.stdout);
    });
    env.cleanup().await;
}

#[tokio::test]
async fn help_teaches() {
    let env = Env::new().await;
    let top = env.run(&["--help"]).await;
    let replay = env.run(&["replay", "--help"]).await;
    assert_ok(&top);
    assert_ok(&replay);
    insta::assert_snapshot!("help", top.stdout);
    insta::assert_snapshot!("replay_help", replay.stdout);
    for command in ["list", "show", "archive", "archives", "purge", "stats", "tail"] {
        let help = env.run(&[command, "--help"]).await;
        assert_ok(&help);
        assert!(help.stdout.contains("Examples:\n  dlq-tool "), "{command} --help has an example: {help:?}");
    }
}
