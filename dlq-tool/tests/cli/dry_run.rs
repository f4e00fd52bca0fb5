//! `--dry-run` prints exactly what would move and changes nothing.

use crate::support::{Env, Seed, ago};

#[tokio::test]
async fn dry_runs_print_what_would_move_and_change_nothing() {
    let mut env = Env::new().await;
    env.create_group("jobs:work", "jobs").await;
    let ids = env
        .seed(
            "jobs:dlq",
            &[Seed::at(ago(3 * 86_400), "old"), Seed::at(ago(2 * 86_400), "older"), Seed::at(ago(60), "new")],
        )
        .await;
    let before = env.dump().await;

    let run = env.run(&["replay", "jobs:dlq", "--all", "--dry-run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("dry run: would replay 3 entries from jobs:dlq; nothing changed\n"), "{run:?}");
    for id in &ids {
        assert!(run.stdout.contains(&format!("{id}  jobs:work  jobs ")), "{id} listed: {run:?}");
    }

    let run = env.run(&["replay", "jobs:dlq", "--all", "--dry-run", "--json", "--since", "1h"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["planned"], 1);
    assert_eq!(plan["entries"][0]["id"], ids[2].as_str());
    assert_eq!(plan["entries"][0]["target"], "jobs:work");
    assert_eq!(plan["entries"][0]["target_group"], "jobs");

    let run = env.run(&["archive", "jobs:dlq", "--dry-run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("dry run: would archive 2 entries from jobs:dlq; nothing changed\n"), "{run:?}");
    assert!(run.stdout.contains(&ids[0]) && run.stdout.contains(&ids[1]) && !run.stdout.contains(&ids[2]), "{run:?}");
    assert!(run.stdout.contains("dlq:archive:jobs:dlq:"), "{run:?}");

    let run = env.run(&["purge", "jobs:dlq", "--older-than", "36h", "--dry-run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("dry run: would purge 2 entries from jobs:dlq; nothing changed\n"), "{run:?}");

    let run = env.run(&["replay", "jobs:dlq", &ids[0], "--dry-run", "--to", "jobs:work"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "--to the origin does not warn: {run:?}");

    assert_eq!(env.dump().await, before, "dry runs changed Redis");
    env.cleanup().await;
}
