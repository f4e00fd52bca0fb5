//! The leads list's cache-aside on `leads:list:{org_id}` (under
//! `redis.key_prefix`): the answer to the first page without a filter, at the
//! default size, living `cache.leads_list_ttl_secs`.
//!
//! Only reads fill it; the worker's `cache_invalidation` group deletes it on
//! `xentri.lead.created.v1` and `xentri.lead.updated.v1`, which every change of
//! a lead appends, and raises the key's generation (`cache_keys::generation`).
//! A miss notes the generation in the same round trip as the read, and the
//! page is stored only while the generation is still that one: a read that
//! loaded the page before a change cannot put it back after the worker's
//! delete. Redis away costs the cache, never the answer: errors are logged and
//! the read goes to PostgreSQL.

use std::sync::LazyLock;

use uuid::Uuid;
use xentri_core::cache_keys;
use xentri_core::stream::Keys;

use crate::state::AppState;

/// The Redis key of the org's first page.
pub fn key(state: &AppState, org_id: Uuid) -> String {
    Keys::new(state.settings.redis.key_prefix.clone()).key(&cache_keys::leads_list(org_id))
}

/// What the cache said of the org's first page.
pub enum Cached {
    /// The page's body.
    Hit(String),
    /// No page; the key's generation when it was read (`None`: never raised,
    /// or expired), to store the page under.
    Miss(Option<i64>),
    /// The cache is off or could not be read: nothing is stored.
    Unavailable,
}

/// The cached first page's body, or the generation to store one under.
pub async fn read(state: &AppState, org_id: Uuid) -> Cached {
    if !state.settings.cache.enabled {
        return Cached::Unavailable;
    }
    let key = key(state, org_id);
    let read = async {
        let mut conn = state.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        let (body, generation): (Option<String>, Option<i64>) =
            redis::cmd("MGET").arg(&key).arg(cache_keys::generation(&key)).query_async(&mut conn).await?;
        anyhow::Ok(match body {
            Some(body) => Cached::Hit(body),
            None => Cached::Miss(generation),
        })
    };
    match read.await {
        Ok(cached) => {
            let outcome = if matches!(cached, Cached::Hit(_)) { "hit" } else { "miss" };
            metrics::counter!("api_cache_reads_total", "resource" => "leads_list", "outcome" => outcome).increment(1);
            cached
        }
        Err(error) => {
            metrics::counter!("api_cache_reads_total", "resource" => "leads_list", "outcome" => "error").increment(1);
            tracing::warn!(error = format!("{error:#}"), "leads list cache read failed; reading postgres");
            Cached::Unavailable
        }
    }
}

/// Stores `KEYS[1]` = `ARGV[1]` for `ARGV[2]` ms if its generation `KEYS[2]`
/// is still `ARGV[3]` (`""`: none). Returns 1 when stored.
static STORE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
",
    )
});

/// Caches `body` as the org's first page if no change was invalidated since
/// `generation` was read; a failure is logged (the TTL and the worker bound
/// staleness).
pub async fn store(state: &AppState, org_id: Uuid, generation: Option<i64>, body: &str) {
    let ttl_ms = state.settings.cache.leads_list_ttl().as_millis() as u64;
    let key = key(state, org_id);
    let seen = generation.map(|g| g.to_string()).unwrap_or_default();
    let write = async {
        let mut conn = state.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        STORE
            .key(&key)
            .key(cache_keys::generation(&key))
            .arg(body)
            .arg(ttl_ms)
            .arg(seen)
            .invoke_async::<i64>(&mut conn)
            .await?;
        anyhow::Ok(())
    };
    if let Err(error) = write.await {
        tracing::warn!(error = format!("{error:#}"), "leads list cache write failed");
    }
}
