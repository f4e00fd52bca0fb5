//! `worker audit` and `worker republish`: what a group has neither handled,
//! nor holds pending, nor dead-lettered, against real PostgreSQL and Redis;
//! republishing it; and the binary's exit codes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use redis::aio::MultiplexedConnection;
use sqlx::PgPool;
use uuid::Uuid;
use xentri_core::Settings;
use xentri_core::dlq::{DeadLetter, dead_letter_fields};
use xentri_core::stream::StreamEntry;
use xentri_worker::audit::republish::{self, Options};
use xentri_worker::audit::{self, AuditError, Since, Sources, cli};
use xentri_worker::jobs::PURGE_IDEMPOTENCY_KEYS;
use xentri_worker::relay::Relay;
use xentri_worker::runtime::Shared;

use crate::helpers::{DEADLINE, database_url, entries, prefix, redis, redis_url, settings, start, wait_until, xlen};

const EVENT_COUNTS: [(&str, &str); 1] = [("XENTRI_WORKER__GROUPS__EVENT_COUNTS__ENABLED", "true")];
const CACHE: [(&str, &str); 1] = [("XENTRI_WORKER__GROUPS__CACHE_INVALIDATION__ENABLED", "true")];

/// One test's world: settings under its own key prefix, the relay's shared
/// state, and a Redis connection.
struct World {
    pool: PgPool,
    prefix: String,
    settings: Settings,
    shared: Arc<Shared>,
    conn: MultiplexedConnection,
}

impl World {
    async fn new(pool: &PgPool, extra: &[(&str, &str)]) -> Self {
        let prefix = prefix();
        let settings = settings(&database_url(&pool.connect_options()), &prefix, extra);
        let shared = Arc::new(crate::helpers::shared_state(pool, settings.clone()));
        Self { pool: pool.clone(), prefix, settings, shared, conn: redis().await }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn sources(&self) -> Sources {
        Sources::connect(self.settings.clone()).await.expect("sources connect")
    }

    /// Appends one event of `org` by `actor`, `age_secs` old, with an outbox
    /// row for `stream`; returns its seq and id.
    async fn append_as(&self, org: Uuid, actor: &str, event_type: &str, stream: &str, age_secs: i64) -> (i64, Uuid) {
        sqlx::query_as(
            "WITH ev AS (
                INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
                VALUES (gen_random_uuid(), $1, $2, '{\"site_id\":\"s-1\"}', $3, '4bf92f3577b34da6a3ce929d0e0e4736',
                        'corr-audit', now() - make_interval(secs => $5))
                RETURNING seq, id, org_id
             ), ob AS (
                INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, $4, org_id FROM ev
             )
             SELECT seq, id FROM ev",
        )
        .bind(org)
        .bind(event_type)
        .bind(actor)
        .bind(stream)
        .bind(age_secs as f64)
        .fetch_one(&self.pool)
        .await
        .expect("append")
    }

    /// Appends a fresh event of a user to events:work; returns its id.
    async fn append(&self, event_type: &str) -> Uuid {
        self.append_as(Uuid::now_v7(), "user:u", event_type, "events:work", 0).await.1
    }

    /// Appends `n` events in one statement; returns their ids in seq order.
    async fn append_many(&self, n: i64) -> Vec<Uuid> {
        sqlx::query_scalar(
            "WITH ev AS (
                INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
                SELECT gen_random_uuid(), gen_random_uuid(), 'xentri.lead.created.v1', json_build_object('i', i),
                       'user:u', '4bf92f3577b34da6a3ce929d0e0e4736', 'c', now()
                FROM generate_series(1, $1) AS i
                RETURNING seq, id, org_id
             ), ob AS (
                INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events:work', org_id FROM ev
             )
             SELECT id FROM ev ORDER BY seq",
        )
        .bind(n)
        .fetch_all(&self.pool)
        .await
        .expect("append many")
    }

    /// Publishes the whole outbox with the relay.
    async fn relay_all(&self) {
        crate::helpers::outbox_visible(&self.pool).await;
        let mut relay = Relay::new(self.shared.clone());
        while relay.publish_batch().await.expect("relay batch") > 0 {}
        relay.end_session().await;
    }

    /// Creates `group` on events:work at its end: what is on the stream now is
    /// never delivered to it (as if trimmed away before it read it).
    async fn create_group_at_end(&mut self, group: &str) {
        let key = self.key("events:work");
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async::<()>(&mut self.conn)
            .await
            .expect("xgroup create");
    }

    /// Delivers up to `count` entries of events:work to `group` (consumer
    /// `c1`) without acknowledging them; returns them.
    async fn deliver(&mut self, group: &str, count: usize) -> Vec<StreamEntry> {
        let key = self.key("events:work");
        crate::helpers::read_group(&mut self.conn, &key, group, count)
            .await
            .into_iter()
            .map(|id| StreamEntry::from_redis(id.id, &id.map).expect("text fields"))
            .collect()
    }

    /// Dead-letters a delivered entry the way the worker does (one script:
    /// DLQ entry, then ack), in the name of `failed_by`.
    async fn dead_letter(&mut self, entry: &StreamEntry, group: &str, failed_by: &str) {
        let letter = DeadLetter {
            stream: "events:work".into(),
            id: entry.id.clone(),
            group: failed_by.into(),
            consumer: "c1".into(),
            attempts: 3,
            error: "scripted".into(),
            failed_at: Utc::now(),
        };
        let mut invocation = xentri_core::scripts::DEAD_LETTER.prepare_invoke();
        invocation.key(self.key("events:work")).key(self.key("events:dlq")).arg(group).arg("c1").arg(&entry.id);
        for (name, value) in dead_letter_fields(entry, &letter) {
            invocation.arg(name).arg(value);
        }
        let moved: Option<String> = invocation.invoke_async(&mut self.conn).await.expect("dead letter");
        assert!(moved.is_some(), "entry was pending, so it moved");
    }

    /// Entries on events:work.
    async fn work_len(&mut self) -> usize {
        let key = self.key("events:work");
        xlen(&mut self.conn, &key).await
    }

    async fn work_entries(&mut self) -> Vec<StreamEntry> {
        let key = self.key("events:work");
        entries(&mut self.conn, &key).await
    }

    async fn processed_rows(&self, group: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE group_name = $1")
            .bind(group)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    async fn counted(&self) -> i64 {
        sqlx::query_scalar("SELECT coalesce(sum(count), 0)::bigint FROM event_counts")
            .fetch_one(&self.pool)
            .await
            .expect("sum")
    }

    async fn audit(&self, group: &str, since: Since) -> audit::Audit {
        let handler = audit::group_handler(&self.settings, group).expect("group enabled");
        audit::audit(&self.sources().await, handler.as_ref(), since, 100).await.expect("audit runs")
    }

    async fn republish(&self, group: &str, confirmed: bool) -> Result<republish::Republished, AuditError> {
        let handler = audit::group_handler(&self.settings, group).expect("group enabled");
        let options = Options { dry_run: false, confirmed };
        republish::republish(&self.sources().await, handler.as_ref(), Since::Seq(1), 100, options, |_, _| {}).await
    }
}

fn ids(audit: &audit::Audit) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = audit.missing.iter().map(|e| e.id).collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn nothing_is_missing_once_the_worker_handled_every_event(pool: PgPool) {
    let world = World::new(&pool, &EVENT_COUNTS).await;
    for _ in 0..20 {
        world.append("xentri.soul.updated.v1").await;
    }
    world.append_many(30).await;
    let worker = start(world.settings.clone(), Vec::new()).await;
    wait_until(DEADLINE, "every event counted", || async { world.processed_rows("event_counts").await == 50 }).await;
    worker.stop().await;

    let by_seq = world.audit("event_counts", Since::Seq(1)).await;
    assert_eq!(by_seq.counts.missing, 0, "{:?}", by_seq.missing);
    assert!(by_seq.missing.is_empty() && by_seq.missing_seqs.is_empty() && by_seq.lost.is_empty());
    assert_eq!((by_seq.counts.scanned, by_seq.counts.checked, by_seq.counts.handled), (50, 50, 50));
    assert_eq!(by_seq.through_seq, 50);
    assert!(by_seq.records.is_none(), "PostgreSQL records prove themselves");

    let by_time = world.audit("event_counts", Since::Time(Utc::now() - chrono::Duration::hours(1))).await;
    assert_eq!(by_time.counts, by_seq.counts);
    let from_the_middle = world.audit("event_counts", Since::Seq(41)).await;
    assert_eq!((from_the_middle.counts.checked, from_the_middle.counts.handled), (10, 10));
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn events_nothing_will_deliver_are_missing_and_the_rest_are_not(pool: PgPool) {
    let jobs_too = [EVENT_COUNTS[0], ("XENTRI_WORKER__GROUPS__JOBS__ENABLED", "true")];
    let mut world = World::new(&pool, &jobs_too).await;
    let group = "event_counts";
    let soul = "xentri.soul.updated.v1";
    // On the stream before the group existed: never delivered to it.
    let early = vec![world.append(soul).await, world.append(soul).await, world.append(soul).await];
    world.relay_all().await;
    world.create_group_at_end(group).await;
    // A job is another stream's event: event_counts takes every type, but not from jobs:work.
    let job = xentri_worker::jobs::enqueue(&world.shared, PURGE_IDEMPOTENCY_KEYS, serde_json::json!({}))
        .await
        .expect("job enqueued");
    let handled = world.append(soul).await;
    let lost = world.append(soul).await;
    let pending = world.append(soul).await;
    let archived = world.append(soul).await;
    let dead = world.append(soul).await;
    let dead_for_another_group = world.append(soul).await;
    let waiting = world.append(soul).await;
    world.relay_all().await;

    let delivered = world.deliver(group, 6).await;
    let entry = |id: Uuid| delivered.iter().find(|e| e.get("id") == Some(&id.to_string())).expect("delivered").clone();
    sqlx::query("INSERT INTO processed_events (group_name, event_id) VALUES ($1, $2)")
        .bind(group)
        .bind(handled)
        .execute(&pool)
        .await
        .expect("record");
    redis::cmd("XACK")
        .arg(world.key("events:work"))
        .arg(group)
        .arg(&entry(handled).id)
        .query_async::<()>(&mut world.conn)
        .await
        .expect("ack");
    let lost_entry = entry(lost).id;
    redis::cmd("XDEL")
        .arg(world.key("events:work"))
        .arg(&lost_entry)
        .query_async::<()>(&mut world.conn)
        .await
        .expect("xdel");
    world.dead_letter(&entry(archived), group, group).await;
    let moved = xentri_worker::archiver::archive_older_than(
        &world.shared,
        "events:dlq",
        Duration::ZERO,
        Utc::now() + chrono::Duration::seconds(1),
    )
    .await
    .expect("archive");
    assert_eq!(moved, 1);
    world.dead_letter(&entry(dead), group, group).await;
    world.dead_letter(&entry(dead_for_another_group), group, "cache_invalidation").await;
    let unrelayed = world.append(soul).await;

    let audit = world.audit(group, Since::Seq(1)).await;
    assert_eq!(ids(&audit), sorted([early.clone(), vec![lost, dead_for_another_group]].concat()));
    let c = &audit.counts;
    assert_eq!((c.scanned, c.checked), (12, 11), "the job is read but not checked");
    assert_eq!((c.handled, c.pending, c.dead_lettered, c.waiting, c.missing), (1, 1, 2, 2, 5));
    assert_eq!(audit.missing_seqs, audit.missing.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert_eq!(audit.lost.len(), 1);
    assert_eq!((audit.lost[0].stream.as_str(), audit.lost[0].entry_id.as_str()), ("events:work", lost_entry.as_str()));
    for id in [handled, pending, archived, dead, waiting, unrelayed] {
        assert!(!audit.missing.iter().any(|e| e.id == id), "{id} is accounted for");
    }
    assert!(audit.missing.iter().all(|e| e.stream == "events:work"));

    let text = audit::report::text(&audit);
    assert!(text.contains(&lost.to_string()) && text.contains("lost: 1 pending entries"), "{text}");
    assert!(
        text.ends_with("checked 11 of 12 events: handled 1, pending 1, dead-lettered 2, waiting 2, missing 5\n"),
        "{text}"
    );
    let json = audit::report::json(&audit);
    assert_eq!(json["summary"]["missing"], 5);
    assert_eq!(json["missing"].as_array().map(Vec::len), Some(5));
    assert_eq!(json["lost_pending"][0]["entry_id"], lost_entry.as_str());

    // The job is the jobs group's, found on jobs:work (which has no group yet: waiting).
    let jobs = world.audit("jobs", Since::Seq(1)).await;
    assert_eq!((jobs.counts.checked, jobs.counts.waiting, jobs.counts.missing), (1, 1, 0));
    assert_eq!(jobs.streams, ["jobs:work"]);
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(world.key("jobs:work"))
        .arg("jobs")
        .arg("$")
        .query_async::<()>(&mut world.conn)
        .await
        .expect("jobs group at the end");
    let jobs = world.audit("jobs", Since::Seq(1)).await;
    assert_eq!(jobs.missing.iter().map(|e| (e.id, e.stream.as_str())).collect::<Vec<_>>(), [(job, "jobs:work")]);

    let limited = {
        let handler = audit::group_handler(&world.settings, group).expect("group");
        audit::audit(&world.sources().await, handler.as_ref(), Since::Seq(1), 2).await.expect("audit")
    };
    assert_eq!((limited.missing.len(), limited.counts.missing, limited.missing_seqs.len()), (2, 5, 5));
    assert!(audit::report::text(&limited).contains("… and 3 more missing events"));
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn republished_events_are_handled_exactly_once(pool: PgPool) {
    let mut world = World::new(&pool, &EVENT_COUNTS).await;
    let group = "event_counts";
    let lost: Vec<Uuid> = world.append_many(5).await;
    world.relay_all().await;
    world.create_group_at_end(group).await;
    world.append_many(3).await;
    world.relay_all().await;
    assert_eq!(ids(&world.audit(group, Since::Seq(1)).await), sorted(lost.clone()));

    let first = world.republish(group, false).await.expect("republish");
    assert_eq!((first.published, first.failed), (5, 0));
    let targeted: Vec<StreamEntry> =
        world.work_entries().await.into_iter().filter(|e| e.get("target_group").is_some()).collect();
    assert_eq!(targeted.len(), 5);
    assert!(targeted.iter().all(|e| e.get("target_group") == Some(group)));
    let republished: Vec<Uuid> = targeted.iter().map(|e| e.decode().expect("a whole event").id).collect();
    assert_eq!(sorted(republished), sorted(lost.clone()));

    let again = world.republish(group, false).await.expect("republish again");
    assert_eq!(again.published, 0, "what the first run published is waiting now, not missing");
    assert_eq!(again.audit.counts.waiting, 8);

    let worker = start(world.settings.clone(), Vec::new()).await;
    wait_until(DEADLINE, "every event handled", || async { world.processed_rows(group).await == 8 }).await;
    let third = world.republish(group, false).await.expect("republish after handling");
    assert_eq!(third.published, 0);
    // Give a duplicate delivery, were there one, time to land before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await;

    assert_eq!(world.processed_rows(group).await, 8);
    assert_eq!(world.counted().await, 8, "each event counted once");
    let audit = world.audit(group, Since::Seq(1)).await;
    assert_eq!((audit.counts.missing, audit.counts.handled), (0, 8));
    assert_eq!(world.work_len().await, 13, "8 relayed + 5 republished, no more");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn many_missing_events_need_confirmation_and_go_in_batches(pool: PgPool) {
    let mut world = World::new(&pool, &EVENT_COUNTS).await;
    let group = "event_counts";
    world.append_many(republish::CONFIRM_ABOVE as i64 + 1).await;
    world.relay_all().await;
    world.create_group_at_end(group).await;
    let before = world.work_len().await;

    let refused = world.republish(group, false).await;
    assert!(matches!(refused, Err(AuditError::NeedsConfirmation { count: 1001, limit: 1000 })), "{refused:?}");
    assert_eq!(refused.map(|_| ()).map_err(|e| e.exit_code()), Err(2));
    assert_eq!(world.work_len().await, before, "nothing published");

    let handler = audit::group_handler(&world.settings, group).expect("group");
    let dry = Options { dry_run: true, confirmed: false };
    let dry_run = republish::republish(&world.sources().await, handler.as_ref(), Since::Seq(1), 10, dry, |_, _| {})
        .await
        .expect("dry run");
    assert_eq!((dry_run.published, dry_run.audit.missing.len(), dry_run.audit.missing_seqs.len()), (0, 10, 1001));
    assert!(republish::text(&dry_run).starts_with("dry run: would republish 1001 events to events:work"));
    assert_eq!(world.work_len().await, before, "a dry run publishes nothing");

    let mut progress = Vec::new();
    let confirmed = Options { dry_run: false, confirmed: true };
    let done = republish::republish(&world.sources().await, handler.as_ref(), Since::Seq(1), 10, confirmed, |d, t| {
        progress.push((d, t))
    })
    .await
    .expect("republish");
    assert_eq!((done.published, done.failed), (1001, 0));
    assert_eq!(progress, [(1000, 1001), (1001, 1001)]);
    assert_eq!(world.work_len().await, before + 1001);
    assert_eq!(world.audit(group, Since::Seq(1)).await.counts.waiting, 1001);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_redis_store_group_is_audited_by_its_records(pool: PgPool) {
    let mut world = World::new(&pool, &CACHE).await;
    let group = "cache_invalidation";
    let handled = world.append("xentri.soul.updated.v1").await;
    let unhandled_soul = world.append("xentri.soul.updated.v1").await;
    let unhandled_lead = world.append("xentri.lead.created.v1").await;
    let not_taken = world.append("xentri.billing.invoice.paid.v1").await;
    let week_ago = 8 * 86_400;
    let (_, expired) =
        world.append_as(Uuid::now_v7(), "user:u", "xentri.soul.updated.v1", "events:work", week_ago).await;
    world.relay_all().await;
    world.create_group_at_end(group).await;
    redis::cmd("SET")
        .arg(world.key(&format!("processed:{group}:{handled}")))
        .arg(1)
        .query_async::<()>(&mut world.conn)
        .await
        .expect("record");

    let audit = world.audit(group, Since::Seq(1)).await;
    assert_eq!(ids(&audit), sorted(vec![unhandled_soul, unhandled_lead]));
    assert!(!audit.missing.iter().any(|e| e.id == not_taken || e.id == expired));
    let c = &audit.counts;
    assert_eq!((c.scanned, c.checked, c.handled, c.unverifiable, c.missing), (5, 4, 1, 1, 2));
    let records = audit.records.as_ref().expect("a Redis-store group says what its records prove");
    assert_eq!(records.ttl_secs, world.settings.worker.processed_ttl_secs);
    let text = audit::report::text(&audit);
    assert!(
        text.contains("unverifiable (record expired)") && text.contains("survive a Redis restart only with"),
        "{text}"
    );
    let json = audit::report::json(&audit);
    assert_eq!(json["store"], "redis");
    assert!(json["redis_records"]["survive_restart"].as_str().is_some_and(|s| s.contains("persistence")));

    // The record shows up, the event is handled.
    redis::cmd("SET")
        .arg(world.key(&format!("processed:{group}:{unhandled_lead}")))
        .arg(1)
        .query_async::<()>(&mut world.conn)
        .await
        .expect("record");
    assert_eq!(ids(&world.audit(group, Since::Seq(1)).await), vec![unhandled_soul]);

    // What the runtime records is what the audit looks for.
    let worker = start(world.settings.clone(), Vec::new()).await;
    let fresh = world.append("xentri.lead.updated.v1").await;
    wait_until(DEADLINE, "the worker's record counts as handled", || async {
        world.audit(group, Since::Seq(1)).await.counts.handled == 3
    })
    .await;
    worker.stop().await;
    let audit = world.audit(group, Since::Seq(1)).await;
    assert!(!audit.missing.iter().any(|e| e.id == fresh));
    assert_eq!(ids(&audit), vec![unhandled_soul]);
}

#[test]
fn the_command_line_parses_and_refuses_in_one_line() {
    let parsed = cli::parse(["worker"]).expect("no command runs the worker");
    assert!(parsed.command.is_none());
    let parsed = cli::parse(["worker", "audit", "--group", "jobs", "--since-seq", "7", "--json"]).expect("audit");
    match parsed.command {
        Some(cli::Command::Audit(range)) => {
            assert_eq!(
                (range.group.as_str(), range.since.start(), range.json, range.limit),
                ("jobs", Since::Seq(7), true, 100)
            );
        }
        other => panic!("not an audit: {other:?}"),
    }
    for bad in [
        vec!["worker", "audit", "--group", "jobs"],
        vec!["worker", "audit", "--group", "jobs", "--since", "yesterday"],
        vec!["worker", "audit", "--group", "jobs", "--since", "2h", "--since-seq", "1"],
        vec!["worker", "republish", "--since", "2h"],
        vec!["worker", "--frobnicate"],
    ] {
        let error = <cli::Cli as clap::Parser>::try_parse_from(&bad).expect_err("refused");
        let line = cli::usage_error_line(&error);
        assert!(line.starts_with("error: ") && !line.contains('\n'), "{bad:?}: {line}");
    }
}

/// The built binary, run from the workspace root as an operator would.
async fn worker_binary(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("XENTRI_ENV", "test")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .await
        .expect("worker runs");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(output.stdout), text(output.stderr))
}

#[tokio::test]
async fn the_binary_exits_2_with_one_line_on_bad_input() {
    for (args, says) in [
        (vec!["audit", "--group", "no_such_group", "--since", "2h"], "unknown group `no_such_group`"),
        (vec!["audit", "--group", "jobs", "--since", "yesterday"], "invalid time `yesterday`"),
        (vec!["audit", "--group", "jobs"], "required arguments were not provided"),
        (vec!["republish", "--group", "jobs", "--since-seq", "-4"], "-4"),
        (vec!["audit", "--group", "jobs", "--since", "2h", "--limit", "many"], "many"),
    ] {
        let (code, stdout, stderr) = worker_binary(&args, &[]).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_binary_exits_1_when_events_are_missing_0_when_not_3_when_unreachable_and_2_when_refused(pool: PgPool) {
    let mut world = World::new(&pool, &EVENT_COUNTS).await;
    world.append_many(2).await;
    world.relay_all().await;
    world.create_group_at_end("event_counts").await;
    let (database, redis) = (database_url(&pool.connect_options()), redis_url());
    let env = vec![
        ("DATABASE_URL", database.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("XENTRI_REDIS__KEY_PREFIX", &world.prefix),
    ];

    let (code, stdout, stderr) = worker_binary(&["audit", "--group", "event_counts", "--since-seq", "1"], &env).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("missing 2"), "{stdout}");

    let (code, stdout, stderr) =
        worker_binary(&["republish", "--group", "event_counts", "--since-seq", "1", "--json"], &env).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!((report["republished"].as_u64(), report["failed"].as_u64()), (Some(2), Some(0)));

    let (code, stdout, stderr) =
        worker_binary(&["audit", "--group", "event_counts", "--since", "1h", "--json"], &env).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!((report["summary"]["missing"].as_u64(), report["summary"]["waiting"].as_u64()), (Some(0), Some(2)));

    let mut unreachable = env.clone();
    unreachable.push(("REDIS_URL", "redis://127.0.0.1:1/0"));
    let (code, _, stderr) = worker_binary(&["audit", "--group", "event_counts", "--since", "1h"], &unreachable).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.starts_with("error: redis unreachable") && stderr.lines().count() == 1, "{stderr}");
    let mut unreachable = env.clone();
    unreachable.push(("DATABASE_URL", "postgres://postgres@127.0.0.1:1/xentri_test"));
    let (code, _, stderr) = worker_binary(&["audit", "--group", "event_counts", "--since", "1h"], &unreachable).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.starts_with("error: postgresql unreachable") && stderr.lines().count() == 1, "{stderr}");
    // A login PostgreSQL refuses is a configuration error: trying again changes nothing.
    for url in ["postgres://no_such_role@127.0.0.1:5432/xentri_test", "postgres://postgres@127.0.0.1:5432/no_such_db"] {
        let mut refused = env.clone();
        refused.push(("DATABASE_URL", url));
        let (code, _, stderr) = worker_binary(&["audit", "--group", "event_counts", "--since", "1h"], &refused).await;
        assert_eq!(code, 2, "{url}: {stderr}");
        assert!(stderr.starts_with("error: postgresql refused the login") && stderr.lines().count() == 1, "{stderr}");
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_postgres_store_group_counts_an_event_older_than_the_retention_without_a_record_as_unverifiable(
    pool: PgPool,
) {
    let mut world = World::new(&pool, &EVENT_COUNTS).await;
    let group = "event_counts";
    let retention = world.settings.worker.jobs.processed_retention_secs as i64;
    // Its record was purged after the retention, as the purge job does.
    let (_, purged) =
        world.append_as(Uuid::now_v7(), "user:u", "xentri.soul.updated.v1", "events:work", retention + 3_600).await;
    let unhandled = world.append("xentri.soul.updated.v1").await;
    world.relay_all().await;
    world.create_group_at_end(group).await;

    let audit = world.audit(group, Since::Seq(1)).await;
    assert_eq!(ids(&audit), vec![unhandled], "only the event within the retention is missing");
    let c = &audit.counts;
    assert_eq!((c.checked, c.handled, c.unverifiable, c.missing), (2, 0, 1, 1));
    let records = audit.postgres_records.as_ref().expect("a Postgres-store group says how long its records are kept");
    assert_eq!(records.retention_secs, world.settings.worker.jobs.processed_retention_secs);
    let text = audit::report::text(&audit);
    assert!(text.contains("unverifiable 1 (record purged)"), "{text}");
    assert!(text.contains("worker.jobs.processed_retention_secs"), "{text}");
    let json = audit::report::json(&audit);
    assert_eq!(json["postgres_records"]["retention_secs"], world.settings.worker.jobs.processed_retention_secs);

    // Republish puts back only what is missing, never an event whose record was purged.
    let done = world.republish(group, true).await.expect("republished");
    assert_eq!((done.published, done.failed), (1, 0));
    // The two relayed entries, then the one republished.
    let on_stream: Vec<Option<String>> =
        world.work_entries().await.iter().map(|e| e.get("id").map(str::to_owned)).collect();
    assert_eq!(on_stream, [Some(purged.to_string()), Some(unhandled.to_string()), Some(unhandled.to_string())]);
}
