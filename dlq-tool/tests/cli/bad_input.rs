//! Every refusal: its exit code, its message, and nothing changed in Redis.

use crate::support::{Env, Run, Seed, ago};

/// A DLQ with two entries, a work stream with its group, a stream without
/// one, and a key that is not a stream.
async fn setup() -> (Env, Vec<String>) {
    let mut env = Env::new().await;
    env.create_group("jobs:work", "jobs").await;
    let _: String = redis::cmd("XADD")
        .arg(env.key("orphan:work"))
        .arg("*")
        .arg(&["id", "x"])
        .query_async(&mut env.conn)
        .await
        .expect("seeded");
    let _: () = redis::cmd("SET").arg(env.key("plain")).arg("v").query_async(&mut env.conn).await.expect("set");
    let ids = env.seed("jobs:dlq", &[Seed::at(ago(2 * 86_400), "a"), Seed::at(ago(60), "b")]).await;
    (env, ids)
}

/// Runs `args`, expects exit `code` and `message` on stderr, and that no key changed.
async fn refused(env: &mut Env, args: &[&str], code: i32, message: &str) -> Run {
    let before = env.dump().await;
    let run = env.run(args).await;
    assert_eq!(run.code, code, "{args:?}: {run:?}");
    assert!(run.stderr.contains(message), "{args:?}: expected `{message}` in stderr: {run:?}");
    assert_eq!(env.dump().await, before, "{args:?} changed Redis");
    run
}

#[tokio::test]
async fn unknown_dlq_names_and_keys_that_are_not_dlqs_are_refused() {
    let (mut env, _) = setup().await;
    let unknown = "unknown DLQ `nope:dlq` (configured: events:dlq, jobs:dlq, sync:dlq)";
    refused(&mut env, &["list", "nope:dlq"], 2, unknown).await;
    refused(&mut env, &["replay", "nope:dlq", "--all"], 2, unknown).await;
    refused(&mut env, &["purge", "nope:dlq", "--older-than", "1s", "--yes"], 2, unknown).await;
    refused(
        &mut env,
        &["replay", "jobs:work", "--all", "--force"],
        2,
        "`jobs:work` is a work stream, not a DLQ (its DLQ is `jobs:dlq`)",
    )
    .await;
    refused(&mut env, &["archive", "orphan:work"], 2, "`orphan:work` is not a DLQ: it is not a configured DLQ").await;
    refused(&mut env, &["list", "plain", "--stream-is-dlq"], 2, "`plain` is a Redis string, not a stream").await;
    refused(&mut env, &["replay", "--from-archive", "dlq:archive:jobs:dlq:2020-01-01", "--all"], 2, "does not exist")
        .await;
    refused(&mut env, &["replay", "--from-archive", "jobs:dlq", "--all"], 2, "is not an archive key").await;
    env.cleanup().await;
}

#[tokio::test]
async fn ids_that_are_missing_or_malformed_are_refused() {
    let (mut env, ids) = setup().await;
    refused(&mut env, &["replay", "jobs:dlq", &ids[0], "1-0"], 2, "not found in `jobs:dlq`: 1-0").await;
    refused(&mut env, &["show", "jobs:dlq", "1-0"], 2, "not found in `jobs:dlq`: 1-0").await;
    refused(&mut env, &["purge", "jobs:dlq", &ids[1], "1-0", "--yes"], 2, "not found in `jobs:dlq`: 1-0").await;
    refused(&mut env, &["replay", "jobs:dlq", "latest"], 2, "`latest` is not a stream entry id").await;
    refused(&mut env, &["replay", "jobs:dlq"], 2, "name the ids to replay, or pass --all").await;
    refused(&mut env, &["replay", "jobs:dlq", &ids[0], "--type", "xentri.soul.*"], 2, "filters (--type").await;
    env.cleanup().await;
}

#[tokio::test]
async fn bad_filters_and_durations_are_refused() {
    let (mut env, _) = setup().await;
    refused(&mut env, &["replay", "jobs:dlq", "--all", "--error-match", "("], 2, "invalid regular expression").await;
    refused(&mut env, &["list", "jobs:dlq", "--error-match", "[a-"], 2, "invalid regular expression").await;
    refused(&mut env, &["archive", "jobs:dlq", "--older-than", "banana"], 2, "invalid duration `banana`").await;
    refused(&mut env, &["purge", "jobs:dlq", "--older-than", "90", "--yes"], 2, "invalid duration `90`").await;
    refused(&mut env, &["replay", "jobs:dlq", "--all", "--since", "yesterday"], 2, "invalid time `yesterday`").await;
    refused(&mut env, &["replay", "jobs:dlq", "--all", "--batch", "0"], 2, "--batch").await;
    let missing = std::env::temp_dir().join("dlq-tool-no-such-file.txt");
    let missing = missing.to_str().expect("utf-8");
    refused(&mut env, &["replay", "jobs:dlq", "--all", "--ids-from", missing], 2, "cannot read --ids-from").await;
    env.cleanup().await;
}

#[tokio::test]
async fn purge_without_yes_is_refused() {
    let (mut env, ids) = setup().await;
    let message = "refusing to purge without --yes";
    refused(&mut env, &["purge", "jobs:dlq", &ids[0]], 2, message).await;
    refused(&mut env, &["purge", "jobs:dlq", "--older-than", "1s"], 2, message).await;
    let run = env.run(&["purge", "jobs:dlq", &ids[0], "--yes"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("purged 1 of 1 entries from jobs:dlq"), "{run:?}");
    assert_eq!(env.len("jobs:dlq").await, 1);
    env.cleanup().await;
}

#[tokio::test]
async fn replay_into_a_stream_without_the_group_needs_force() {
    let (mut env, ids) = setup().await;
    let run = refused(
        &mut env,
        &["replay", "jobs:dlq", &ids[0], "--to", "orphan:work"],
        2,
        "`orphan:work` has no consumer group `jobs` (it has no consumer group at all)",
    )
    .await;
    assert!(run.stderr.contains("pass --force"), "{run:?}");
    refused(&mut env, &["replay", "jobs:dlq", "--all", "--to", "fresh:work"], 2, "`fresh:work` has no consumer group")
        .await;
    refused(&mut env, &["replay", "jobs:dlq", "--all", "--to", "plain"], 2, "`plain` is a Redis string, not a stream")
        .await;

    let run = env.run(&["replay", "jobs:dlq", &ids[0], "--to", "orphan:work", "--force"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.len("orphan:work").await, 2);
    assert_eq!(env.len("jobs:dlq").await, 1);
    env.cleanup().await;
}

#[tokio::test]
async fn unreachable_redis_is_exit_3() {
    let env = Env::new().await;
    for args in [&["stats"][..], &["list", "jobs:dlq"], &["replay", "jobs:dlq", "--all"]] {
        let started = std::time::Instant::now();
        let run = env.command(args).env("REDIS_URL", "redis://127.0.0.1:1/0").output().await.expect("ran");
        let run = Run::from(run);
        assert_eq!(run.code, 3, "{args:?}: {run:?}");
        assert!(run.stderr.contains("redis unreachable"), "{run:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "gave up quickly");
    }
}
