//! Row-level security as the api's role, and the append-only log.

use sqlx::PgPool;
use uuid::Uuid;
use xentri_api::db::Db;

async fn insert_event(pool: &PgPool, org: Uuid) {
    sqlx::query(
        "INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
         VALUES ($1, $2, 'xentri.soul.updated.v1', '{}', 'user:u1', '4bf92f3577b34da6a3ce929d0e0e4736', 'c1', now())",
    )
    .bind(Uuid::now_v7())
    .bind(org)
    .execute(pool)
    .await
    .expect("insert as owner");
}

async fn count(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM system_events").fetch_one(conn).await.expect("count")
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn api_role_sees_only_its_org(pool: PgPool) {
    let (org_a, org_b) = (Uuid::new_v4(), Uuid::new_v4());
    for _ in 0..3 {
        insert_event(&pool, org_a).await;
    }
    for _ in 0..2 {
        insert_event(&pool, org_b).await;
    }
    let db = Db::new(pool.clone(), "xentri_api");

    let mut tx = db.begin(org_a).await.expect("begin");
    assert_eq!(count(&mut tx).await, 3, "no org filter in the query, only org A's rows");
    let role: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut *tx).await.expect("role");
    assert_eq!(role, "xentri_api", "runs as the api role although the pool logs in as a superuser");
    tx.commit().await.expect("commit");

    let mut tx = db.begin(org_b).await.expect("begin");
    assert_eq!(count(&mut tx).await, 2);
    drop(tx);

    // The setting is transaction-local: the next transaction on the same
    // connection starts without it. As the api role with no org set: nothing.
    let mut conn = pool.acquire().await.expect("conn");
    sqlx::query("BEGIN").execute(&mut *conn).await.expect("begin");
    sqlx::query("SET LOCAL ROLE xentri_api").execute(&mut *conn).await.expect("role");
    assert_eq!(count(&mut conn).await, 0, "no org set, no rows");
    sqlx::query("SELECT set_config('app.org_id', '', true)").execute(&mut *conn).await.expect("reset");
    assert_eq!(count(&mut conn).await, 0, "an empty org setting matches nothing (and does not error)");
    sqlx::query("ROLLBACK").execute(&mut *conn).await.expect("rollback");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn api_role_cannot_write_into_another_org(pool: PgPool) {
    let db = Db::new(pool.clone(), "xentri_api");
    let mut tx = db.begin(Uuid::new_v4()).await.expect("begin");
    let error = sqlx::query(
        "INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
         VALUES ($1, $2, 'xentri.soul.updated.v1', '{}', 'user:u1', 't', 'c1', now())",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::new_v4())
    .execute(&mut *tx)
    .await
    .expect_err("WITH CHECK refuses another org's row");
    assert!(error.to_string().contains("row-level security"), "{error}");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn system_events_is_append_only_for_every_role(pool: PgPool) {
    let org = Uuid::new_v4();
    insert_event(&pool, org).await;
    let statements = [
        "UPDATE system_events SET actor = 'user:mallory'",
        "DELETE FROM system_events",
        "TRUNCATE system_events CASCADE",
    ];
    for role in ["xentri_api", "xentri_relay", "xentri_worker", "owner"] {
        for statement in statements {
            let mut tx = pool.begin().await.expect("begin");
            if role != "owner" {
                sqlx::query(&format!("SET LOCAL ROLE {role}")).execute(&mut *tx).await.expect("role");
            }
            sqlx::query("SELECT set_config('app.org_id', $1, true)")
                .bind(org.to_string())
                .execute(&mut *tx)
                .await
                .expect("org");
            let error = sqlx::query(statement).execute(&mut *tx).await.expect_err(statement);
            let code = error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
            assert_eq!(code.as_deref(), Some("42501"), "{role}: {statement}: {error}");
        }
    }
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM system_events").fetch_one(&pool).await.expect("n");
    assert_eq!(remaining, 1);
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn relay_role_reads_across_orgs_and_api_role_owns_nothing(pool: PgPool) {
    insert_event(&pool, Uuid::new_v4()).await;
    insert_event(&pool, Uuid::new_v4()).await;
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL ROLE xentri_relay").execute(&mut *tx).await.expect("role");
    assert_eq!(count(&mut tx).await, 2);
    drop(tx);

    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner LIKE 'xentri\\_%'",
    )
    .fetch_one(&pool)
    .await
    .expect("owners");
    assert_eq!(owned, 0);
    let bypass: bool =
        sqlx::query_scalar("SELECT bool_or(rolbypassrls OR rolsuper) FROM pg_roles WHERE rolname LIKE 'xentri\\_%'")
            .fetch_one(&pool)
            .await
            .expect("roles");
    assert!(!bypass);
    let forced: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT relname::text, relrowsecurity, relforcerowsecurity FROM pg_class
         WHERE relname IN ('system_events', 'outbox', 'idempotency_keys', 'event_count_slots') ORDER BY relname",
    )
    .fetch_all(&pool)
    .await
    .expect("classes");
    assert_eq!(forced.len(), 4);
    assert!(forced.iter().all(|(_, enabled, forced)| *enabled && *forced), "{forced:?}");
}
