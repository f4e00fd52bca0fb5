//! Where the test services and the workspace are, and a Redis key prefix of a
//! test's own.

use std::path::PathBuf;

use redis::aio::MultiplexedConnection;
use sqlx::postgres::PgConnectOptions;

/// The workspace root (binaries run with it as their working directory, so
/// they find `config/`).
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `config/` of the workspace.
pub fn config_dir() -> PathBuf {
    workspace().join("config")
}

/// The URL of the database behind `options` (trust auth, no password), such
/// as the one `#[sqlx::test]` made for the test.
pub fn database_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

/// `REDIS_URL`, or the local default `./scripts/test` uses.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// A Redis key prefix no other test uses: tests share one Redis server.
pub fn unique_key_prefix() -> String {
    format!("t-{}:", uuid::Uuid::new_v4().simple())
}

/// A connection to the test Redis, for the test's own checks.
pub async fn redis_connection() -> MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("REDIS_URL is a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis accepts a connection")
}

/// Deletes every key under `prefix` (`SCAN`, then `UNLINK`): a test cleans up
/// after itself without touching what other tests hold.
pub async fn delete_keys_under(conn: &mut MultiplexedConnection, prefix: &str) -> redis::RedisResult<usize> {
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            deleted += redis::cmd("UNLINK").arg(&keys).query_async::<usize>(conn).await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_root_holds_the_config() {
        assert!(config_dir().join("default.toml").is_file(), "{}", config_dir().display());
    }

    #[test]
    fn prefixes_differ_and_end_with_a_colon() {
        let (a, b) = (unique_key_prefix(), unique_key_prefix());
        assert_ne!(a, b);
        assert!(a.starts_with("t-") && a.ends_with(':'), "{a}");
    }

    #[test]
    fn a_database_url_names_user_host_port_and_database() {
        let options = PgConnectOptions::new().username("u").host("db.test").port(5433).database("d");
        assert_eq!(database_url(&options), "postgres://u@db.test:5433/d");
    }

    #[tokio::test]
    async fn keys_under_a_prefix_are_deleted_and_no_others() {
        let mut conn = redis_connection().await;
        let (mine, other) = (unique_key_prefix(), unique_key_prefix());
        for key in [format!("{mine}a"), format!("{mine}b"), format!("{other}a")] {
            let _: () = redis::cmd("SET").arg(&key).arg(1).query_async(&mut conn).await.unwrap();
        }
        assert_eq!(delete_keys_under(&mut conn, &mine).await.unwrap(), 2);
        let left: bool = redis::cmd("EXISTS").arg(format!("{other}a")).query_async(&mut conn).await.unwrap();
        assert!(left);
        delete_keys_under(&mut conn, &other).await.unwrap();
    }
}
