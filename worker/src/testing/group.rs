//! A group around a bare Redis-store handler: a test writes only how it
//! handles a delivery.

use std::ops::Deref;

use crate::handler::{Handler, Handling, RedisStoreHandler};

/// Group `group` on `events:work`, taking every event type, recording in
/// Redis, handled by `handler` (reachable through `Deref`).
pub struct RedisGroup<H> {
    group: String,
    handler: H,
}

impl<H> RedisGroup<H> {
    /// Group `group` handled by `handler`.
    pub fn new(group: &str, handler: H) -> Self {
        Self { group: group.to_owned(), handler }
    }
}

impl<H> Deref for RedisGroup<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.handler
    }
}

impl<H: RedisStoreHandler + 'static> Handler for RedisGroup<H> {
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
        Handling::Redis(&self.handler)
    }
}
