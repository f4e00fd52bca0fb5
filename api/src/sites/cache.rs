//! `GET /api/v1/marketing/sites/{id}`'s cache-aside on
//! `site:{org_id}:{site_id}` (under `redis.key_prefix`), living
//! `cache.site_ttl_secs`: a versioned answer ([`crate::domain::cache`]) that
//! reads fill and every change the api commits writes. The build's changes
//! are the worker's: its `cache_invalidation` group deletes the key on
//! `xentri.website.published.v1` and `xentri.website.build_failed.v1`.

use uuid::Uuid;
use xentri_core::cache_keys;
use xentri_core::stream::Keys;

use crate::domain::cache::Cached;
use crate::state::AppState;

/// The Redis key of site `id` of `org_id`.
pub fn key(state: &AppState, org_id: Uuid, id: Uuid) -> String {
    Keys::new(state.settings.redis.key_prefix.clone()).key(&cache_keys::site(org_id, &id.to_string()))
}

/// The cached answer, if the cache is on and holds one.
pub async fn read(state: &AppState, org_id: Uuid, id: Uuid) -> Option<Cached> {
    crate::domain::cache::read(state, &key(state, org_id, id), "site").await
}

/// Caches `body` as version `version` of the site, unless a newer one is cached.
pub async fn store(state: &AppState, org_id: Uuid, id: Uuid, version: i64, body: &str) {
    let ttl = state.settings.cache.site_ttl();
    crate::domain::cache::store(state, &key(state, org_id, id), "site", ttl, version, body).await;
}
