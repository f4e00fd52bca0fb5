//! The worker runs only on a login that row-level security binds, and as the
//! service login it relays and handles with the service roles' grants.

use sqlx::PgPool;
use uuid::Uuid;
use xentri_core::roles::SERVICE_LOGIN;
use xentri_worker::app::Worker;

use crate::helpers::{DEADLINE, database_url, prefix, settings, start, wait_until};

/// The test settings without the test profile's leave to run on a privileged
/// login, plus `extra`.
fn checked(url: &str, prefix: &str, extra: &[(&str, &str)]) -> xentri_core::Settings {
    let mut vars = vec![("XENTRI_DATABASE__TEST_ALLOW_PRIVILEGED_LOGIN", "false")];
    vars.extend_from_slice(extra);
    settings(url, prefix, &vars)
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_worker_refuses_to_run_on_a_superuser_login(pool: PgPool) {
    let options = pool.connect_options();
    let Err(error) = Worker::build(checked(&database_url(&options), &prefix(), &[]), Vec::new()).await else {
        panic!("expected the worker to refuse a superuser login");
    };
    let line = error.to_string();
    let expected = format!(
        "refusing to run: the database login `{}` bypasses row-level security (superuser or BYPASSRLS: ",
        options.get_username()
    );
    assert!(line.starts_with(&expected), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn as_the_service_login_the_worker_relays_and_counts_events(pool: PgPool) {
    let options = pool.connect_options();
    let url = format!(
        "postgres://{SERVICE_LOGIN}@{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    );
    let settings = checked(&url, &prefix(), &[("XENTRI_WORKER__GROUPS__EVENT_COUNTS__ENABLED", "true")]);
    let worker = start(settings, Vec::new()).await;
    // An event and its outbox row, as the api commits them.
    let org = Uuid::new_v4();
    sqlx::query(
        "WITH ev AS (
            INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
            VALUES (gen_random_uuid(), $1, 'xentri.soul.updated.v1', '{}', 'user:u',
                    '4bf92f3577b34da6a3ce929d0e0e4736', 'c', now())
            RETURNING seq, org_id
         )
         INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events:work', org_id FROM ev",
    )
    .bind(org)
    .execute(&pool)
    .await
    .expect("append");
    wait_until(DEADLINE, "the event relayed and counted as the service login", || async {
        let counted: Option<i64> = sqlx::query_scalar("SELECT count FROM event_counts WHERE org_id = $1")
            .bind(org)
            .fetch_optional(&pool)
            .await
            .expect("event_counts");
        counted == Some(1)
    })
    .await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.expect("outbox");
    assert_eq!(left, 0, "the relay deleted what it published");
    worker.stop().await;
}
