//! Advisory locks: the SQL side takes them in the classes `xentri_core::locks`
//! names, each purpose in its own class, so a client's idempotency key can
//! never meet the relay's or the appender's lock.

use sqlx::PgPool;
use uuid::Uuid;
use xentri_core::locks::LockClass;

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_sql_lock_classes_are_the_ones_core_lists(pool: PgPool) {
    for class in LockClass::ALL {
        let id: i32 = sqlx::query_scalar("SELECT xentri_lock_class($1)")
            .bind(class.purpose())
            .fetch_one(&pool)
            .await
            .expect("the SQL side knows every class");
        assert_eq!(id, class.id(), "{class:?}");
    }
    let unknown = sqlx::query_scalar::<_, i32>("SELECT xentri_lock_class('nonesuch')").fetch_one(&pool).await;
    assert!(unknown.is_err(), "an unknown purpose is an error, never a NULL class that locks nothing");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn an_append_locks_only_its_key_in_the_idempotency_class(pool: PgPool) {
    let org = Uuid::new_v4();
    let mut append = pool.begin().await.expect("begin");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *append).await.expect("pid");
    let (claimed, seq): (bool, Option<i64>) = sqlx::query_as(
        "SELECT claimed, seq FROM append_events($1, 'events:work', 60, ARRAY[ROW($2, 'a-key', '\\x00'::bytea,
                gen_random_uuid(), 'xentri.soul.updated.v1', '{}', 'user:u', 't', 'c', NULL, now())::new_event])",
    )
    .bind(xentri_core::roles::API)
    .bind(org)
    .fetch_one(&mut *append)
    .await
    .expect("append_events");
    assert!(claimed && seq.is_some());

    // Still in the append's transaction: its locks are held.
    let held: Vec<(i64, i64, i32)> = sqlx::query_as(
        "SELECT classid::bigint, objid::bigint, objsubid::integer FROM pg_locks
          WHERE locktype = 'advisory' AND pid = $1 ORDER BY 1, 2",
    )
    .bind(pid)
    .fetch_all(&pool)
    .await
    .expect("pg_locks");
    let key: i32 =
        sqlx::query_scalar("SELECT hashtext($1)").bind(format!("{org}:a-key")).fetch_one(&pool).await.expect("hash");
    // objsubid 2: the two-key form; its keys read back as unsigned oids.
    let as_oid = |n: i32| i64::from(n as u32);
    assert_eq!(
        held,
        [(as_oid(LockClass::Idempotency.id()), as_oid(key), 2)],
        "the key's lock, and no lock that every append takes"
    );
    append.rollback().await.expect("rollback");
}
