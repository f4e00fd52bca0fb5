//! `[cache]`: cached reads of the domain resources (cache-aside in Redis,
//! invalidated by the worker's `cache_invalidation` group).

use std::time::Duration;

use serde::Deserialize;

/// `[cache]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Whether reads are cached at all; off, every read goes to PostgreSQL
    /// (for comparison in benchmarks, or while Redis is being replaced).
    pub enabled: bool,
    /// How long a cached Soul (`soul:{org_id}`) lives, in seconds: the
    /// longest a read can lag behind a change whose invalidation was lost.
    pub soul_ttl_secs: u64,
    /// How long the cached first page of an org's leads
    /// (`leads:list:{org_id}`) lives, in seconds: the longest the list can lag
    /// behind a change whose invalidation was lost.
    pub leads_list_ttl_secs: u64,
    /// How long a cached site (`site:{org_id}:{site_id}`) lives, in seconds:
    /// the longest a read can lag behind a build whose invalidation was lost.
    pub site_ttl_secs: u64,
}

impl CacheSettings {
    /// The Soul's time to live as a duration.
    pub fn soul_ttl(&self) -> Duration {
        Duration::from_secs(self.soul_ttl_secs)
    }

    /// The leads list's time to live as a duration.
    pub fn leads_list_ttl(&self) -> Duration {
        Duration::from_secs(self.leads_list_ttl_secs)
    }

    /// A site's time to live as a duration.
    pub fn site_ttl(&self) -> Duration {
        Duration::from_secs(self.site_ttl_secs)
    }
}
