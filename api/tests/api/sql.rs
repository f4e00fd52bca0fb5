//! SQL in one place, checked against the schema: every statement of
//! `xentri_core::sql` prepares on a freshly migrated database, and no crate's
//! source passes SQL to sqlx any other way.

use std::path::{Path, PathBuf};

use sqlx::{Executor, PgPool};

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn every_statement_prepares_against_the_migrated_schema(pool: PgPool) {
    let mut conn = pool.acquire().await.expect("a connection");
    let mut refused = Vec::new();
    for (name, statement) in xentri_core::sql::ALL {
        if let Err(error) = conn.prepare(statement).await {
            refused.push(format!("{name}: {error}"));
        }
    }
    assert!(refused.is_empty(), "statements the schema refuses:\n{}", refused.join("\n"));
    // Every statement the module defines is in ALL (and so was prepared).
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src/sql.rs"))
        .expect("core/src/sql.rs");
    let defined = regex::Regex::new(r"(?m)^    ([A-Z][A-Z0-9_]*) =").expect("regex").find_iter(&source).count();
    assert_eq!(xentri_core::sql::ALL.len(), defined, "every statement is listed");
    assert!(defined >= 20, "the statements were found in the source");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_statement_naming_a_missing_column_is_refused(pool: PgPool) {
    // What the check above would report for a statement gone stale.
    let mut conn = pool.acquire().await.expect("a connection");
    let error = conn.prepare("SELECT no_such_column FROM system_events").await.expect_err("refused");
    assert!(error.to_string().contains("no_such_column"), "{error}");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_event_tables_checks_are_the_rust_rules(pool: PgPool) {
    // Every row the table accepts reads back as a StoredEvent: its type and
    // actor rules are xentri_core's, to the character.
    let insert = |event_type: String, actor: String| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
                 VALUES (gen_random_uuid(), gen_random_uuid(), $1, '{}', $2, 't', 'c', now())",
            )
            .bind(event_type)
            .bind(actor)
            .execute(&pool)
            .await
            .is_ok()
        }
    };
    let longest_type = format!("xentri.{}.updated.v1", "a".repeat(255 - "xentri..updated.v1".len()));
    for (event_type, actor) in [
        ("xentri.soul.updated.v1".to_owned(), format!("user:{}", "u".repeat(255))),
        (longest_type.clone(), "service:worker".to_owned()),
        (format!("{longest_type}0"), "service:worker".to_owned()),
        ("xentri.soul.updated.v1".to_owned(), format!("user:{}", "u".repeat(256))),
        ("xentri.soul.updated.v1".to_owned(), format!("service:{}", "s".repeat(255))),
        ("xentri.soul.updated.v1".to_owned(), format!("service:{}", "s".repeat(256))),
        ("xentri.soul.updated.v1".to_owned(), "user:".to_owned()),
        ("xentri.soul.updated.v1".to_owned(), "user:a b".to_owned()),
        ("xentri.soul.updated.v1".to_owned(), "user:a:b".to_owned()),
        ("xentri.soul.updated.v1".to_owned(), "user:é".to_owned()),
        ("xentri.Soul.updated.v1".to_owned(), "user:u".to_owned()),
        ("xentri.soul.updated.v1".to_owned(), "admin:u".to_owned()),
    ] {
        let rust = xentri_core::EventType::parse(&event_type).is_ok() && xentri_core::Actor::parse(&actor).is_ok();
        assert_eq!(insert(event_type.clone(), actor.clone()).await, rust, "type {event_type:?}, actor {actor:?}");
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Whether `file` is `dir/tests.rs` declared by `dir.rs` or `dir/mod.rs` as
/// `#[cfg(test)] mod tests;`.
fn is_unit_test_module(file: &Path) -> bool {
    let (Some(dir), true) = (file.parent(), file.ends_with("tests.rs")) else { return false };
    let parents = [dir.with_extension("rs"), dir.join("mod.rs")];
    parents
        .iter()
        .any(|parent| std::fs::read_to_string(parent).is_ok_and(|text| text.contains("#[cfg(test)]\nmod tests;")))
}

#[test]
fn no_source_passes_sql_to_sqlx_except_through_the_statements_module() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf();
    let mut files = Vec::new();
    for krate in ["core", "api", "worker", "dlq-tool"] {
        rust_files(&workspace.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 20, "the sources were found: {files:?}");
    let call = regex::Regex::new(r"sqlx::query(?:_as|_scalar)?(?:::<[^>]*>)?\(\s*([^\s,)]+)").expect("regex");
    let mut elsewhere = Vec::new();
    // Unit-test modules (a `tests.rs` its parent declares under `cfg(test)`)
    // set up rows directly, as the integration tests do: the rule is for the
    // SQL the services run.
    for file in files.iter().filter(|file| !is_unit_test_module(file)) {
        let text = std::fs::read_to_string(file).expect("readable source");
        for found in call.captures_iter(&text) {
            let argument = &found[1];
            if !argument.starts_with("sql::")
                && !argument.starts_with("xentri_core::sql::")
                && !argument.starts_with("crate::sql::")
            {
                elsewhere.push(format!("{}: {}", file.display(), &found[0]));
            }
        }
    }
    assert!(elsewhere.is_empty(), "SQL outside xentri_core::sql:\n{}", elsewhere.join("\n"));
}
