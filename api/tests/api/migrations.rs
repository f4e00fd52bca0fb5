//! Migrations apply to an empty database, again to a migrated one, and to two
//! databases at once (roles are cluster-wide); what they set on tables holds.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;
use xentri_core::MIGRATOR;

async fn tables(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        .fetch_all(pool)
        .await
        .expect("tables")
}

#[sqlx::test(migrations = false)]
async fn apply_to_empty_then_again(pool: PgPool) {
    MIGRATOR.run(&pool).await.expect("first run");
    let first = tables(&pool).await;
    assert_eq!(
        first,
        [
            "_sqlx_migrations",
            "event_count_slots",
            "idempotency_keys",
            "leads",
            "org_settings",
            "outbox",
            "processed_events",
            "site_pages_html",
            "sites",
            "souls",
            "system_events",
            "user_preferences"
        ]
    );
    MIGRATOR.run(&pool).await.expect("second run is a no-op");
    assert_eq!(tables(&pool).await, first);
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.expect("applied");
    assert_eq!(applied, MIGRATOR.iter().count() as i64);
}

#[sqlx::test(migrations = false)]
async fn two_databases_migrate_in_parallel(_: PgPoolOptions, options: PgConnectOptions) {
    let mut admin = PgConnection::connect_with(&options).await.expect("admin connection");
    let names: Vec<String> = (0..2).map(|_| format!("xentri_par_{}", Uuid::new_v4().simple())).collect();
    for name in &names {
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create");
    }
    let pools: Vec<PgPool> =
        names.iter().map(|name| PgPool::connect_lazy_with(options.clone().database(name))).collect();
    let (a, b) = tokio::join!(MIGRATOR.run(&pools[0]), MIGRATOR.run(&pools[1]));
    a.expect("first database migrates");
    b.expect("second database migrates");
    for pool in &pools {
        assert!(tables(pool).await.contains(&"system_events".to_owned()));
        pool.close().await;
    }
    for name in &names {
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut admin).await.expect("drop");
    }
}

/// Vacuum frees the outbox's emptied pages for reuse but never cuts them off:
/// that would lock every append out (see the outbox migration).
#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn vacuum_never_truncates_the_outbox(pool: PgPool) {
    let org = Uuid::now_v7();
    sqlx::query(
        "WITH e AS (
             INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
             SELECT gen_random_uuid(), $1, 'xentri.test.filled.v1', '{}',
                    'service:test', 't', 'c', now()
             FROM generate_series(1, 2000)
             RETURNING seq, org_id)
         INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events', org_id FROM e",
    )
    .bind(org)
    .execute(&pool)
    .await
    .expect("fill the outbox");
    let size = || async {
        sqlx::query_scalar::<_, i64>("SELECT pg_relation_size('outbox')").fetch_one(&pool).await.expect("size")
    };
    let filled = size().await;
    assert!(filled > 8192 * 4, "the outbox spans several pages ({filled} bytes)");
    sqlx::query("DELETE FROM outbox").execute(&pool).await.expect("empty the outbox");
    sqlx::query("VACUUM outbox").execute(&pool).await.expect("vacuum");
    assert_eq!(size().await, filled, "vacuum kept every page of the emptied outbox");
    // The control: the same table without the setting is cut back to nothing.
    sqlx::query("ALTER TABLE outbox RESET (vacuum_truncate)").execute(&pool).await.expect("reset");
    sqlx::query("VACUUM outbox").execute(&pool).await.expect("vacuum");
    assert_eq!(size().await, 0, "without the setting vacuum truncates");
}
