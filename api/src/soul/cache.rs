//! `GET /api/v1/soul`'s cache-aside on `soul:{org_id}` (under
//! `redis.key_prefix`), living `cache.soul_ttl_secs`: a versioned answer
//! ([`crate::domain::cache`]). The worker's `cache_invalidation` group deletes
//! the key on `xentri.soul.updated.v1`.

use uuid::Uuid;
use xentri_core::cache_keys;
use xentri_core::stream::Keys;

pub use crate::domain::cache::Cached;
use crate::state::AppState;

/// The Redis key of the org's Soul.
pub fn key(state: &AppState, org_id: Uuid) -> String {
    Keys::new(state.settings.redis.key_prefix.clone()).key(&cache_keys::soul(org_id))
}

/// The cached answer, if the cache is on and holds one.
pub async fn read(state: &AppState, org_id: Uuid) -> Option<Cached> {
    crate::domain::cache::read(state, &key(state, org_id), "soul").await
}

/// Caches `body` as version `version` of the org's Soul, unless a newer one is
/// cached.
pub async fn store(state: &AppState, org_id: Uuid, version: i64, body: &str) {
    let ttl = state.settings.cache.soul_ttl();
    crate::domain::cache::store(state, &key(state, org_id), "soul", ttl, version, body).await;
}
