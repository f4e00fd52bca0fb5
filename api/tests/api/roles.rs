//! The database login: the migrations create `xentri_service`, a login row-level
//! security binds, and the api serves as it; the api refuses to run on a login
//! that a superuser is, that has `BYPASSRLS` (itself or through a role it is a
//! member of), or that owns objects of the database.
//!
//! Roles are cluster-wide: the roles these tests create have names of their
//! own and are dropped at the end. Altering the shared service roles would
//! break every other test on the server, so a service role that can bypass
//! row-level security is shown on a private cluster (`tests/tests/e2e/operator.rs`).

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgPool};
use uuid::Uuid;
use xentri_api::startup::Application;
use xentri_core::roles::{API, RELAY, SERVICE_LOGIN, WORKER};

use crate::helpers::{database_url, event_body, json, settings, spawn_with, user_token, wait_listable};

/// The URL of the test database, logged in as `user` (trust auth).
fn url_as(options: &PgConnectOptions, user: &str) -> String {
    format!(
        "postgres://{user}@{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

/// The test settings on `url`, without the test profile's leave to run on a
/// privileged login.
fn checked(url: &str) -> xentri_core::Settings {
    settings(url, &[("XENTRI_DATABASE__TEST_ALLOW_PRIVILEGED_LOGIN", "false")])
}

/// The line the api refuses to start with.
async fn refusal(settings: xentri_core::Settings) -> String {
    xentri_api::install_crypto_provider();
    match Application::build(settings).await {
        Ok(_) => panic!("expected the api to refuse to run"),
        Err(error) => {
            let line = error.to_string();
            assert_eq!(line.lines().count(), 1, "one line: {line}");
            line
        }
    }
}

/// A role of this test's own, dropped by [`drop_role`].
fn unique_role(label: &str) -> String {
    format!("t_{label}_{}", Uuid::new_v4().simple())
}

async fn drop_role(pool: &PgPool, role: &str) {
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}")).execute(pool).await.expect("the test's role is dropped");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_service_login_role_exists_with_only_what_it_needs(pool: PgPool) {
    let attributes: (bool, bool, bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolinherit
           FROM pg_roles WHERE rolname = $1",
    )
    .bind(SERVICE_LOGIN)
    .fetch_one(&pool)
    .await
    .expect("the migrations create the service login role");
    assert_eq!(
        attributes,
        (true, false, false, false, false, false, true),
        "LOGIN INHERIT, and not SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB or REPLICATION"
    );
    for role in [API, RELAY, WORKER] {
        let member: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
            .bind(SERVICE_LOGIN)
            .bind(role)
            .fetch_one(&pool)
            .await
            .expect("membership");
        assert!(member, "{SERVICE_LOGIN} can switch to {role}");
    }
    let owned: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
              + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
              + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
              + (SELECT count(*) FROM pg_database WHERE datdba = r.oid)
           FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(SERVICE_LOGIN)
    .fetch_one(&pool)
    .await
    .expect("ownership");
    assert_eq!(owned, 0, "{SERVICE_LOGIN} owns nothing");

    // Logged in as it, the start-up check passes even without the test leave.
    let options = pool.connect_options().as_ref().clone().username(SERVICE_LOGIN);
    let mut conn = sqlx::PgConnection::connect_with(&options).await.expect("the service login connects");
    xentri_core::roles::check(&mut conn, false).await.expect("row-level security binds the service login");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_api_serves_when_logged_in_as_the_service_role(pool: PgPool) {
    let app = spawn_with(checked(&url_as(&pool.connect_options(), SERVICE_LOGIN))).await;
    let org = Uuid::new_v4();
    let token = user_token(org);
    let (status, _, event) =
        json(app.post_event(&token, "service-login", event_body("xentri.soul.updated.v1")).await).await;
    assert_eq!(status, 201, "{event}");
    let seq = event["seq"].as_i64().expect("the event's seq");
    wait_listable(&app, &token, seq).await;
    let (status, _, replay) =
        json(app.post_event(&token, "service-login", event_body("xentri.soul.updated.v1")).await).await;
    assert_eq!((status, &replay["id"]), (201, &event["id"]), "the key replays the event");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_api_refuses_to_run_on_a_superuser_login(pool: PgPool) {
    let options = pool.connect_options();
    let line = refusal(checked(&database_url(&options))).await;
    let expected = format!(
        "refusing to run: the database login `{}` bypasses row-level security (superuser or BYPASSRLS: ",
        options.get_username()
    );
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.ends_with(&format!("log in as {SERVICE_LOGIN} (database.url)")), "{line}");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_api_refuses_to_run_on_a_bypassrls_login_or_one_that_can_become_it(pool: PgPool) {
    let options = pool.connect_options();
    let bypass = unique_role("bypass");
    sqlx::query(&format!("CREATE ROLE {bypass} LOGIN BYPASSRLS")).execute(&pool).await.expect("role");
    let line = refusal(checked(&url_as(&options, &bypass))).await;
    assert_eq!(
        line,
        format!(
            "refusing to run: the database login `{bypass}` bypasses row-level security \
             (superuser or BYPASSRLS: {bypass}); log in as {SERVICE_LOGIN} (database.url)"
        )
    );

    // A login without the attribute that may SET ROLE to one with it.
    let member = unique_role("member");
    sqlx::query(&format!("CREATE ROLE {member} LOGIN IN ROLE {bypass}")).execute(&pool).await.expect("role");
    let line = refusal(checked(&url_as(&options, &member))).await;
    assert!(line.contains(&format!("`{member}` bypasses row-level security (superuser or BYPASSRLS: {bypass})")));

    drop_role(&pool, &member).await;
    drop_role(&pool, &bypass).await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_api_refuses_to_run_on_a_login_that_owns_objects(pool: PgPool) {
    let owner = unique_role("owner");
    sqlx::query(&format!("CREATE ROLE {owner} LOGIN IN ROLE {API}")).execute(&pool).await.expect("role");
    sqlx::query(&format!("CREATE SCHEMA {owner} AUTHORIZATION {owner}")).execute(&pool).await.expect("schema");
    let line = refusal(checked(&url_as(&pool.connect_options(), &owner))).await;
    assert!(line.starts_with(&format!("refusing to run: the database login `{owner}` owns objects")), "{line}");

    sqlx::query(&format!("DROP SCHEMA {owner}")).execute(&pool).await.expect("schema dropped");
    drop_role(&pool, &owner).await;
}
