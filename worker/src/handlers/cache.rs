//! Event-driven cache invalidation (SPEC.md "Cache invalidation").
//!
//! | key | invalidated by |
//! |---|---|
//! | `soul:{org_id}` | `xentri.soul.updated.v1` |
//! | `site:{org_id}:{site_id}` | `xentri.website.published.v1`, `xentri.website.build_failed.v1` (`payload.site_id`) |
//! | `leads:list:{org_id}` | `xentri.lead.created.v1`, `xentri.lead.updated.v1` |
//!
//! The names come from `xentri_core::cache_keys`, as the api fills them, under the
//! same `redis.key_prefix`. The Soul's and a site's keys are versioned: with
//! the deletion goes the event's `payload.version` as the key's floor
//! (`cache_keys::floor`, living as long as a cached answer would), below which
//! the api caches nothing, so a read that loaded the resource before the
//! change cannot fill the emptied key with its older answer. The leads list
//! has no version: its deletion raises the key's generation
//! (`cache_keys::generation`), and the api stores a list only while the
//! generation is the one it saw before reading. A site's key goes on both of its build's outcomes:
//! the api writes the versions of the changes it makes, the build's are the
//! worker's (a failed build must not leave a cached `publishing` behind).

use std::sync::LazyLock;

use xentri_core::{Settings, StoredEvent, cache_keys};

use crate::handler::{BoxFuture, Handler, HandlerError, Handling, RedisDelivery, RedisStoreHandler};

/// The group name.
pub const GROUP: &str = "cache_invalidation";

/// Deletes `KEYS[1]` and raises its floor `KEYS[2]` to version `ARGV[1]`
/// (never lowers it: events of one resource may be handled out of order),
/// the floor living `ARGV[2]` ms.
static INVALIDATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local floor = tonumber(redis.call('GET', KEYS[2]))
if not floor or floor < tonumber(ARGV[1]) then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// Deletes `KEYS[1]` and raises its generation `KEYS[2]`, which lives
/// `ARGV[1]` ms from the latest raise.
static BUMP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// Deletes cached reads when the events that change them arrive.
pub struct CacheInvalidation {
    stream: String,
    /// How long a floor lives: as long as the api caches the resource.
    soul_ttl_ms: u64,
    site_ttl_ms: u64,
    leads_list_ttl_ms: u64,
}

/// What an event invalidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// The cache key (logical name).
    pub key: String,
    /// What keeps an older read from filling the emptied key.
    pub guard: Guard,
}

/// What the deletion leaves beside the key, so that a read that loaded the
/// resource before the change cannot put its answer back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// A versioned key: the change's version as its floor.
    Floor {
        /// The change's version.
        version: i64,
        /// How long the floor lives: as long as a cached answer would.
        ttl_ms: u64,
    },
    /// An unversioned key: its generation raised.
    Generation {
        /// How long the generation lives after its latest raise.
        ttl_ms: u64,
    },
    /// A versioned key whose event carries no version: the deletion alone.
    None,
}

impl CacheInvalidation {
    /// Reads the events stream.
    pub fn new(settings: &Settings) -> Self {
        Self {
            stream: settings.streams.events.work.clone(),
            soul_ttl_ms: settings.cache.soul_ttl_secs.saturating_mul(1000),
            site_ttl_ms: settings.cache.site_ttl_secs.saturating_mul(1000),
            leads_list_ttl_ms: settings.cache.leads_list_ttl_secs.saturating_mul(1000),
        }
    }

    /// What an event invalidates, if anything: its key and what to leave
    /// beside it (a versioned key's floor from `payload.version`, or the
    /// leads list's raised generation).
    pub fn invalidation(&self, event: &StoredEvent) -> Result<Option<Invalidation>, HandlerError> {
        let Some(key) = Self::key_for(event)? else { return Ok(None) };
        let ttl_ms = match event.event_type.as_str() {
            "xentri.soul.updated.v1" => self.soul_ttl_ms,
            "xentri.website.published.v1" | "xentri.website.build_failed.v1" => self.site_ttl_ms,
            _ => {
                return Ok(Some(Invalidation {
                    key,
                    guard: Guard::Generation { ttl_ms: self.leads_list_ttl_ms.max(1) },
                }));
            }
        };
        let version = event.payload_object().ok().and_then(|payload| payload.get("version")?.as_i64());
        let guard = version.map_or(Guard::None, |version| Guard::Floor { version, ttl_ms: ttl_ms.max(1) });
        Ok(Some(Invalidation { key, guard }))
    }

    /// The cache key an event invalidates (logical name), if any.
    pub fn key_for(event: &StoredEvent) -> Result<Option<String>, HandlerError> {
        let org = event.org_id;
        Ok(match event.event_type.as_str() {
            "xentri.soul.updated.v1" => Some(cache_keys::soul(org)),
            "xentri.lead.created.v1" | "xentri.lead.updated.v1" => Some(cache_keys::leads_list(org)),
            "xentri.website.published.v1" | "xentri.website.build_failed.v1" => {
                let payload =
                    event.payload_object().map_err(|_| HandlerError::permanent("payload is not a JSON object"))?;
                let site = payload
                    .get("site_id")
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty() && !s.contains(':'))
                    .ok_or_else(|| HandlerError::permanent("payload.site_id is missing or not a plain string"))?;
                Some(cache_keys::site(org, site))
            }
            _ => None,
        })
    }
}

impl Handler for CacheInvalidation {
    fn group(&self) -> &str {
        GROUP
    }

    fn streams(&self) -> Vec<String> {
        vec![self.stream.clone()]
    }

    fn accepts(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            "xentri.soul.updated.v1"
                | "xentri.website.published.v1"
                | "xentri.website.build_failed.v1"
                | "xentri.lead.created.v1"
                | "xentri.lead.updated.v1"
        )
    }

    fn handling(&self) -> Handling<'_> {
        Handling::Redis(self)
    }
}

impl RedisStoreHandler for CacheInvalidation {
    fn handle<'a>(&'a self, delivery: RedisDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let Some(Invalidation { key, guard }) = self.invalidation(delivery.event)? else {
                return Ok(());
            };
            let full = delivery.keys.key(&key);
            // Errors stay causes, not messages: Redis away makes the entry
            // wait instead of spending its attempts.
            let mut conn = delivery.redis.get().await.map_err(|e| HandlerError::Transient(e.into()))?;
            let deleted = match guard {
                Guard::Floor { version, ttl_ms } => {
                    INVALIDATE
                        .key(&full)
                        .key(cache_keys::floor(&full))
                        .arg(version)
                        .arg(ttl_ms)
                        .invoke_async::<i64>(&mut conn)
                        .await
                }
                Guard::Generation { ttl_ms } => {
                    BUMP.key(&full).key(cache_keys::generation(&full)).arg(ttl_ms).invoke_async::<i64>(&mut conn).await
                }
                Guard::None => redis::cmd("DEL").arg(&full).query_async::<i64>(&mut conn).await,
            };
            deleted.map_err(|e| HandlerError::Transient(e.into()))?;
            tracing::debug!(key, "cache invalidated");
            Ok(())
        })
    }
}
