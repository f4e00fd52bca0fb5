//! `GET /api/v1/soul`'s cache-aside on `soul:{org_id}` (under
//! `redis.key_prefix`): a hash of the answer's `version` and `body`, living
//! `cache.soul_ttl_secs`.
//!
//! Reads fill it on a miss and every committed change writes its new version;
//! a write never replaces a newer version than its own, so a read that loaded
//! the Soul before a change committed cannot put the old answer back over the
//! new one. The worker's `cache_invalidation` group deletes the key on
//! `xentri.soul.updated.v1`. Redis away costs the cache, never the answer:
//! errors are logged and the read goes to PostgreSQL.

use std::sync::LazyLock;

use uuid::Uuid;
use xentri_core::cache_keys;
use xentri_core::stream::Keys;

use crate::state::AppState;

/// Writes version `ARGV[1]` with body `ARGV[2]` and a TTL of `ARGV[3]` ms,
/// unless the key holds that version or a newer one.
static STORE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local cached = tonumber(redis.call('HGET', KEYS[1], 'version'))
if cached and cached >= tonumber(ARGV[1]) then
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
    /// The Soul's version (its `ETag`).
    pub version: i64,
    /// The answer's JSON body, byte for byte.
    pub body: String,
}

/// The Redis key of the org's Soul.
pub fn key(state: &AppState, org_id: Uuid) -> String {
    Keys::new(state.settings.redis.key_prefix.clone()).key(&cache_keys::soul(org_id))
}

/// The cached answer, if the cache is on and holds one.
pub async fn read(state: &AppState, org_id: Uuid) -> Option<Cached> {
    if !state.settings.cache.enabled {
        return None;
    }
    let read = async {
        let mut conn = state.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        let (version, body): (Option<i64>, Option<String>) =
            redis::cmd("HMGET").arg(key(state, org_id)).arg("version").arg("body").query_async(&mut conn).await?;
        anyhow::Ok(version.zip(body).map(|(version, body)| Cached { version, body }))
    };
    match read.await {
        Ok(cached) => {
            let outcome = if cached.is_some() { "hit" } else { "miss" };
            metrics::counter!("api_cache_reads_total", "resource" => "soul", "outcome" => outcome).increment(1);
            cached
        }
        Err(error) => {
            metrics::counter!("api_cache_reads_total", "resource" => "soul", "outcome" => "error").increment(1);
            tracing::warn!(error = format!("{error:#}"), "soul cache read failed; reading postgres");
            None
        }
    }
}

/// Caches `body` as version `version` of the org's Soul, unless a newer one is
/// cached; a failure is logged (the TTL and the worker bound staleness).
pub async fn store(state: &AppState, org_id: Uuid, version: i64, body: &str) {
    if !state.settings.cache.enabled {
        return;
    }
    let ttl_ms = state.settings.cache.soul_ttl().as_millis() as u64;
    let write = async {
        let mut conn = state.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        STORE.key(key(state, org_id)).arg(version).arg(body).arg(ttl_ms).invoke_async::<i64>(&mut conn).await?;
        anyhow::Ok(())
    };
    if let Err(error) = write.await {
        tracing::warn!(error = format!("{error:#}"), "soul cache write failed");
    }
}
