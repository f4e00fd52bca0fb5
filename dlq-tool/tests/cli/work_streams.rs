//! A configured work stream is never the source of `purge`, `archive` or
//! `replay`, whatever the flags: its unacknowledged entries are work whose
//! outbox rows are gone, and taking them would lose it. `--stream-is-dlq`
//! still takes an unconfigured DLQ, but no stream a consumer group reads.

use crate::support::{Env, Run, Seed, ago};

/// The configured work streams and their DLQs (`config/default.toml`).
const WORK_STREAMS: [(&str, &str); 3] =
    [("events:work", "events:dlq"), ("jobs:work", "jobs:dlq"), ("sync:work", "sync:dlq")];

/// Every work stream holds three entries from two days ago, delivered to its
/// group and not acknowledged (pending); the ids of each stream's entries.
async fn setup() -> (Env, Vec<Vec<String>>) {
    let mut env = Env::new().await;
    let mut ids = Vec::new();
    for (stream, _) in WORK_STREAMS {
        ids.push(pending_work(&mut env, stream).await);
    }
    (env, ids)
}

/// Three old entries on `stream`, read by its group `workers` and not acknowledged.
async fn pending_work(env: &mut Env, stream: &str) -> Vec<String> {
    let key = env.key(stream);
    let start = ago(2 * 86_400).timestamp_millis();
    let mut ids = Vec::new();
    for n in 0..3 {
        let id: String = redis::cmd("XADD")
            .arg(&key)
            .arg(format!("{}-0", start + n))
            .arg(&["id", &format!("event-{n}"), "type", "xentri.site.build.requested.v1"])
            .query_async(&mut env.conn)
            .await
            .expect("work entry added");
        ids.push(id);
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("workers")
        .arg("0")
        .query_async(&mut env.conn)
        .await
        .expect("group created");
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("worker-1")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut env.conn)
        .await
        .expect("entries delivered");
    ids
}

/// The entries `stream`'s group holds pending.
async fn pending(env: &mut Env, stream: &str) -> usize {
    let summary: (usize, redis::Value, redis::Value, redis::Value) =
        redis::cmd("XPENDING").arg(env.key(stream)).arg("workers").query_async(&mut env.conn).await.expect("xpending");
    summary.0
}

/// Runs `args` (with `extra` environment variables), expects exit 2 and
/// `message` on stderr without any advice to pass `--stream-is-dlq`, and that
/// no key changed (entries, groups and their pending entries included).
async fn refused(env: &mut Env, args: &[&str], extra: &[(&str, &str)], message: &str) {
    let before = env.dump().await;
    let mut command = env.command(args);
    for (name, value) in extra {
        command.env(name, value);
    }
    let run = Run::from(command.output().await.expect("dlq-tool runs"));
    assert_eq!(run.code, 2, "{args:?}: expected exit 2: {run:?}");
    assert!(run.stderr.contains(message), "{args:?}: expected `{message}` in stderr: {run:?}");
    assert!(!run.stderr.contains("pass --stream-is-dlq"), "{args:?}: advises --stream-is-dlq: {run:?}");
    assert_eq!(env.dump().await, before, "{args:?} changed Redis");
}

fn work_stream(stream: &str, dlq: &str) -> String {
    format!("`{stream}` is a work stream, not a DLQ (its DLQ is `{dlq}`): dlq-tool never purges")
}

#[tokio::test]
async fn purge_never_deletes_entries_of_a_configured_work_stream_whatever_the_flags() {
    let (mut env, ids) = setup().await;
    for ((stream, dlq), ids) in WORK_STREAMS.into_iter().zip(&ids) {
        let message = work_stream(stream, dlq);
        refused(&mut env, &["purge", stream, "--older-than", "1h", "--yes", "--stream-is-dlq"], &[], &message).await;
        refused(&mut env, &["purge", stream, &ids[0], &ids[1], "--yes", "--stream-is-dlq"], &[], &message).await;
        refused(&mut env, &["purge", stream, "--older-than", "1h", "--yes"], &[], &message).await;
        refused(&mut env, &["purge", stream, "--older-than", "1h", "--dry-run", "--stream-is-dlq"], &[], &message)
            .await;
        // Typed as its Redis key, prefix included.
        let key = env.key(stream);
        let message = work_stream(&key, dlq);
        refused(&mut env, &["purge", &key, "--older-than", "1h", "--yes", "--stream-is-dlq"], &[], &message).await;
    }
    // A work stream renamed in the configuration is refused by its new name.
    let renamed = [("XENTRI_STREAMS__SYNC__WORK", "outbound:queue")];
    pending_work(&mut env, "outbound:queue").await;
    let message = work_stream("outbound:queue", "sync:dlq");
    refused(
        &mut env,
        &["purge", "outbound:queue", "--older-than", "1h", "--yes", "--stream-is-dlq"],
        &renamed,
        &message,
    )
    .await;
    for (stream, _) in WORK_STREAMS.into_iter().chain([("outbound:queue", "")]) {
        assert_eq!(env.len(stream).await, 3, "{stream} lost entries");
        assert_eq!(pending(&mut env, stream).await, 3, "{stream} lost pending entries");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn archive_never_moves_entries_of_a_configured_work_stream_whatever_the_flags() {
    let (mut env, _) = setup().await;
    for (stream, dlq) in WORK_STREAMS {
        let message = work_stream(stream, dlq);
        refused(&mut env, &["archive", stream, "--older-than", "1h", "--stream-is-dlq"], &[], &message).await;
        refused(&mut env, &["archive", stream, "--stream-is-dlq", "--batch", "1"], &[], &message).await;
        refused(&mut env, &["archive", stream], &[], &message).await;
        let key = env.key(stream);
        refused(&mut env, &["archive", &key, "--older-than", "1h", "--stream-is-dlq"], &[], &work_stream(&key, dlq))
            .await;
    }
    let renamed = [("XENTRI_STREAMS__EVENTS__WORK", "api:events")];
    pending_work(&mut env, "api:events").await;
    let message = work_stream("api:events", "events:dlq");
    refused(&mut env, &["archive", "api:events", "--older-than", "1h", "--stream-is-dlq"], &renamed, &message).await;
    for (stream, _) in WORK_STREAMS.into_iter().chain([("api:events", "")]) {
        assert_eq!(env.len(stream).await, 3, "{stream} lost entries");
        assert_eq!(pending(&mut env, stream).await, 3, "{stream} lost pending entries");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn replay_never_takes_entries_of_a_configured_work_stream_whatever_the_flags() {
    let (mut env, ids) = setup().await;
    for ((stream, dlq), ids) in WORK_STREAMS.into_iter().zip(&ids) {
        let message = work_stream(stream, dlq);
        refused(&mut env, &["replay", stream, "--all", "--force", "--stream-is-dlq"], &[], &message).await;
        refused(
            &mut env,
            &["replay", stream, &ids[0], "--force", "--stream-is-dlq", "--to", "jobs:work"],
            &[],
            &message,
        )
        .await;
        refused(&mut env, &["replay", stream, "--all"], &[], &message).await;
        let key = env.key(stream);
        refused(&mut env, &["replay", &key, "--all", "--force", "--stream-is-dlq"], &[], &work_stream(&key, dlq)).await;
    }
    let renamed = [("XENTRI_STREAMS__JOBS__WORK", "jobs:queue")];
    pending_work(&mut env, "jobs:queue").await;
    let message = work_stream("jobs:queue", "jobs:dlq");
    refused(&mut env, &["replay", "jobs:queue", "--all", "--force", "--stream-is-dlq"], &renamed, &message).await;
    for (stream, _) in WORK_STREAMS.into_iter().chain([("jobs:queue", "")]) {
        assert_eq!(env.len(stream).await, 3, "{stream} lost entries");
        assert_eq!(pending(&mut env, stream).await, 3, "{stream} lost pending entries");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn stream_is_dlq_takes_an_unconfigured_dlq_but_no_stream_a_group_reads() {
    let mut env = Env::new().await;
    // The DLQ of a family since renamed: dead letters, no consumer group.
    env.seed("old:dlq", &[Seed::at(ago(2 * 86_400), "a"), Seed::at(ago(2 * 86_400 - 1), "b")]).await;
    // An unconfigured stream a group works on.
    pending_work(&mut env, "legacy:work").await;

    refused(
        &mut env,
        &["purge", "legacy:work", "--older-than", "1h", "--yes", "--stream-is-dlq"],
        &[],
        "`legacy:work` is read by consumer group workers: it holds work, not dead letters, and dlq-tool never \
         takes it for a DLQ",
    )
    .await;
    refused(&mut env, &["archive", "legacy:work", "--stream-is-dlq"], &[], "is read by consumer group workers").await;
    refused(
        &mut env,
        &["replay", "legacy:work", "--all", "--force", "--stream-is-dlq"],
        &[],
        "is read by consumer group",
    )
    .await;
    refused(&mut env, &["list", "legacy:work", "--stream-is-dlq"], &[], "is read by consumer group workers").await;
    refused(&mut env, &["purge", "old:dlq", "--older-than", "1h", "--yes"], &[], "`old:dlq` is not a DLQ").await;
    refused(&mut env, &["list", "events:work", "--stream-is-dlq"], &[], &work_stream("events:work", "events:dlq"))
        .await;

    let run = env.run(&["purge", "old:dlq", "--older-than", "1h", "--yes", "--stream-is-dlq"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("purged 2 of 2 entries older than 1h from old:dlq"), "{run:?}");
    assert_eq!(env.len("old:dlq").await, 0);
    assert_eq!(env.len("legacy:work").await, 3);
    env.cleanup().await;
}
