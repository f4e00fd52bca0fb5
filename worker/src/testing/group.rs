//! A group around a bare handler: a test writes only how it handles a
//! delivery.

use std::ops::Deref;

use crate::handler::{Handler, Handling, PostgresStoreHandler, RedisStoreHandler};

/// Group `group` on `events:work`, taking every event type, handled by
/// `handler` (reachable through `Deref`) with its records in the store it was
/// built for.
pub struct Group<H> {
    group: String,
    handler: H,
    handling: for<'h> fn(&'h H) -> Handling<'h>,
}

impl<H: RedisStoreHandler + 'static> Group<H> {
    /// A Redis-store group `group` handled by `handler`.
    pub fn redis(group: &str, handler: H) -> Self {
        Self { group: group.to_owned(), handler, handling: |handler| Handling::Redis(handler) }
    }
}

impl<H: PostgresStoreHandler + 'static> Group<H> {
    /// A Postgres-store group `group` handled by `handler`.
    pub fn postgres(group: &str, handler: H) -> Self {
        Self { group: group.to_owned(), handler, handling: |handler| Handling::Postgres(handler) }
    }
}

impl<H> Deref for Group<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.handler
    }
}

impl<H: Send + Sync + 'static> Handler for Group<H> {
    fn group(&self) -> &str {
        &self.group
    }

    fn streams(&self) -> Vec<String> {
        vec!["events:work".to_owned()]
    }

    fn accepts(&self, _event_type: &str) -> bool {
        true
    }

    fn handling(&self) -> Handling<'_> {
        (self.handling)(&self.handler)
    }
}
