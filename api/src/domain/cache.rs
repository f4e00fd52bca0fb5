//! Cache-aside of one resource's answer by version: a Redis hash of the
//! answer's `version` and `body` under the resource's key, with a TTL. What
//! the Soul (`soul:{org_id}`) and each site (`site:{org_id}:{site_id}`) use.
//!
//! Reads fill it on a miss and every committed change writes its new version;
//! a write never replaces a newer version than its own, so a read that loaded
//! the resource before a change committed cannot put the old answer back over
//! the new one. The worker's `cache_invalidation` group deletes the key on the
//! events of changes the api does not write itself. Redis away costs the
//! cache, never the answer: errors are logged and the read goes to PostgreSQL.

use std::sync::LazyLock;
use std::time::Duration;

use xentri_core::cache_keys;

use crate::state::AppState;

/// Writes version `ARGV[1]` with body `ARGV[2]` and a TTL of `ARGV[3]` ms,
/// unless the key holds that version or a newer one, or its floor (`KEYS[2]`,
/// set by the worker's invalidation) names a newer one.
static STORE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local version = tonumber(ARGV[1])
local cached = tonumber(redis.call('HGET', KEYS[1], 'version'))
if cached and cached >= version then
    return 0
end
local floor = tonumber(redis.call('GET', KEYS[2]))
if floor and floor > version then
    return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'body', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The resource's version (its `ETag`).
    pub version: i64,
    /// The answer's JSON body, byte for byte.
    pub body: String,
}

/// The answer cached under `key` (full, prefix included), if the cache is on
/// and holds one; `resource` labels the metric.
pub async fn read(state: &AppState, key: &str, resource: &'static str) -> Option<Cached> {
    if !state.settings.cache.enabled {
        return None;
    }
    let read = async {
        let mut conn = state.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        let (version, body): (Option<i64>, Option<String>) =
            redis::cmd("HMGET").arg(key).arg("version").arg("body").query_async(&mut conn).await?;
        anyhow::Ok(version.zip(body).map(|(version, body)| Cached { version, body }))
    };
    match read.await {
        Ok(cached) => {
            let outcome = if cached.is_some() { "hit" } else { "miss" };
            metrics::counter!("api_cache_reads_total", "resource" => resource, "outcome" => outcome).increment(1);
            cached
        }
        Err(error) => {
            metrics::counter!("api_cache_reads_total", "resource" => resource, "outcome" => "error").increment(1);
            tracing::warn!(resource, error = format!("{error:#}"), "cache read failed; reading postgres");
            None
        }
    }
}

/// Caches `body` as version `version` under `key` for `ttl`, unless a newer
/// version is cached; a failure is logged (the TTL and the worker bound
/// staleness).
pub async fn store(state: &AppState, key: &str, resource: &'static str, ttl: Duration, version: i64, body: &str) {
    if !state.settings.cache.enabled {
        return;
    }
    let ttl_ms = ttl.as_millis() as u64;
    let write = async {
        let mut conn = state.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        STORE
            .key(key)
            .key(cache_keys::floor(key))
            .arg(version)
            .arg(body)
            .arg(ttl_ms)
            .invoke_async::<i64>(&mut conn)
            .await?;
        anyhow::Ok(())
    };
    if let Err(error) = write.await {
        tracing::warn!(resource, error = format!("{error:#}"), "cache write failed");
    }
}
