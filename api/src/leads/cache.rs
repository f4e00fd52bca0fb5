//! The leads list's cache-aside on `leads:list:{org_id}` (under
//! `redis.key_prefix`): the answer to the first page without a filter, at the
//! default size, living `cache.leads_list_ttl_secs`.
//!
//! Only reads fill it; the worker's `cache_invalidation` group deletes it on
//! `xentri.lead.created.v1` and `xentri.lead.updated.v1`, which every change of
//! a lead appends. A read that loaded the page before a change committed and
//! stores it after the worker's delete leaves a stale page for at most the
//! TTL. Redis away costs the cache, never the answer: errors are logged and
//! the read goes to PostgreSQL.

use uuid::Uuid;
use xentri_core::cache_keys;
use xentri_core::stream::Keys;

use crate::state::AppState;

/// The Redis key of the org's first page.
pub fn key(state: &AppState, org_id: Uuid) -> String {
    Keys::new(state.settings.redis.key_prefix.clone()).key(&cache_keys::leads_list(org_id))
}

/// The cached first page's body, if the cache is on and holds one.
pub async fn read(state: &AppState, org_id: Uuid) -> Option<String> {
    if !state.settings.cache.enabled {
        return None;
    }
    let read = async {
        let mut conn = state.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        let body: Option<String> = redis::cmd("GET").arg(key(state, org_id)).query_async(&mut conn).await?;
        anyhow::Ok(body)
    };
    match read.await {
        Ok(cached) => {
            let outcome = if cached.is_some() { "hit" } else { "miss" };
            metrics::counter!("api_cache_reads_total", "resource" => "leads_list", "outcome" => outcome).increment(1);
            cached
        }
        Err(error) => {
            metrics::counter!("api_cache_reads_total", "resource" => "leads_list", "outcome" => "error").increment(1);
            tracing::warn!(error = format!("{error:#}"), "leads list cache read failed; reading postgres");
            None
        }
    }
}

/// Caches `body` as the org's first page; a failure is logged (the TTL and
/// the worker bound staleness).
pub async fn store(state: &AppState, org_id: Uuid, body: &str) {
    if !state.settings.cache.enabled {
        return;
    }
    let ttl_ms = state.settings.cache.leads_list_ttl().as_millis() as u64;
    let write = async {
        let mut conn = state.redis.get().await.map_err(|e| anyhow::anyhow!(e))?;
        redis::cmd("SET").arg(key(state, org_id)).arg(body).arg("PX").arg(ttl_ms).query_async::<()>(&mut conn).await?;
        anyhow::Ok(())
    };
    if let Err(error) = write.await {
        tracing::warn!(error = format!("{error:#}"), "leads list cache write failed");
    }
}
