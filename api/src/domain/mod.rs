//! What every domain resource (the Soul, Leads and Sites) shares, one home
//! each:
//!
//! - [`cache`]: cache-aside of one resource's answer by version;
//! - [`request`]: what a mutating request brings besides its body — caller,
//!   `Idempotency-Key` and the request's hash, trace and correlation ids;
//! - [`mutation`]: the domain transaction — the key claimed, the domain table
//!   changed and the events appended through the one append path, in one
//!   transaction, with the answer stored under the key;
//! - [`precondition`]: versions as `ETag`s, `If-Match` (missing → 428, stale →
//!   412) and `If-None-Match` (304).
//!
//! A resource's state machine lives with the resource (e.g.
//! [`crate::soul::machine`]); an invalid transition is a 409
//! [`crate::problem::ProblemKind::InvalidTransition`] listing what the current
//! state allows.

pub mod cache;
pub mod mutation;
pub mod precondition;
pub mod request;
