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
    assert!(xentri_core::sql::ALL.len() >= 25, "every statement is listed");
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn a_statement_naming_a_missing_column_is_refused(pool: PgPool) {
    // What the check above would report for a statement gone stale.
    let mut conn = pool.acquire().await.expect("a connection");
    let error = conn.prepare("SELECT no_such_column FROM system_events").await.expect_err("refused");
    assert!(error.to_string().contains("no_such_column"), "{error}");
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
    for file in &files {
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
