//! Advisory lock classes: every advisory lock the services take is the two-key
//! form `pg_advisory_xact_lock(class int4, key int4)`, with a class per purpose.
//!
//! A class keeps purposes apart: before classes, the idempotency lock of a
//! client-chosen key (`hashtextextended(org || ':' || key)`) lived in the same
//! single-bigint space as the relay's lock, so a key could hash onto it. Within
//! the idempotency class a key's hash can only meet another key's.
//!
//! **Invariant:** the ids here equal the ones the SQL function
//! `xentri_lock_class(purpose)` returns (migration `20261126000006`), which
//! every SQL lock site calls; `api/tests/api/locks.rs` checks they agree. A new
//! purpose gets a variant here and a line in that function (a new migration
//! replaces it), never a bare number at a lock site.
//!
//! No lock serialises writers: appends take only their own idempotency key's
//! lock, and readers never skip an event however appends interleave (see
//! `system_events` in the migrations).
//!
//! The ids spell `xen` in their top bytes (`0x78656e__`), to stay clear of
//! other software's two-key locks in a shared database. sqlx's migration lock
//! is a single bigint, a key space of its own.

/// Why an advisory lock is taken; [`LockClass::id`] is the lock's first key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockClass {
    /// An idempotency key in flight (`append_events`); second key:
    /// `hashtext(org_id || ':' || key)`. Held until the append commits; a
    /// second request with the key meanwhile is answered 409.
    Idempotency,
    /// The publishing relay (`worker::relay`); second key 0, held by the
    /// relay's session while it publishes. One relay publishes at a time.
    Relay,
}

impl LockClass {
    /// Every class, in id order.
    pub const ALL: [LockClass; 2] = [LockClass::Idempotency, LockClass::Relay];

    /// The class id: the first key of the two-key lock.
    pub const fn id(self) -> i32 {
        match self {
            LockClass::Idempotency => 0x7865_6e01,
            LockClass::Relay => 0x7865_6e02,
        }
    }

    /// The name `xentri_lock_class(purpose)` knows it by.
    pub const fn purpose(self) -> &'static str {
        match self {
            LockClass::Idempotency => "idempotency",
            LockClass::Relay => "relay",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_distinct_and_positive() {
        let mut ids: Vec<i32> = LockClass::ALL.iter().map(|c| c.id()).collect();
        assert!(ids.iter().all(|id| *id > 0), "{ids:?}");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), LockClass::ALL.len());
    }
}
