//! Event-driven cache invalidation (SPEC.md "Cache invalidation").
//!
//! | key | invalidated by |
//! |---|---|
//! | `soul:{org_id}` | `xentri.soul.updated.v1` |
//! | `site:{org_id}:{site_id}` | `xentri.website.published.v1`, `xentri.website.build_failed.v1` (`payload.site_id`) |
//! | `leads:list:{org_id}` | `xentri.lead.created.v1`, `xentri.lead.updated.v1` |
//!
//! The names come from `xentri_core::cache_keys`, as the api fills them, under the
//! same `redis.key_prefix`. A site's key goes on both of its build's outcomes:
//! the api writes the versions of the changes it makes, the build's are the
//! worker's (a failed build must not leave a cached `publishing` behind).

use xentri_core::{Settings, StoredEvent, cache_keys};

use crate::handler::{BoxFuture, Handler, HandlerError, Handling, RedisDelivery, RedisStoreHandler};

/// The group name.
pub const GROUP: &str = "cache_invalidation";

/// Deletes cached reads when the events that change them arrive.
pub struct CacheInvalidation {
    stream: String,
}

impl CacheInvalidation {
    /// Reads the events stream.
    pub fn new(settings: &Settings) -> Self {
        Self { stream: settings.streams.events.work.clone() }
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
            let event = delivery.event;
            let Some(key) = Self::key_for(event)? else {
                return Ok(());
            };
            // Errors stay causes, not messages: Redis away makes the entry
            // wait instead of spending its attempts.
            let mut conn = delivery.redis.get().await.map_err(|e| HandlerError::Transient(e.into()))?;
            redis::cmd("DEL")
                .arg(delivery.keys.key(&key))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| HandlerError::Transient(e.into()))?;
            tracing::debug!(key, "cache invalidated");
            Ok(())
        })
    }
}
