//! The request headers many operations take alike, each described once.
//!
//! An operation names the set it takes at the end of its `params(...)`, after
//! its own parameters (`("id" = String, Path, …), ChangeHeaders`). The
//! patterns and examples of these headers are [`super::rules`]'s: the same
//! rules the parsers enforce.

use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// What `x-org-id` is, on every operation that takes it.
pub const ORG_DESCRIPTION: &str = "Act for this org instead of the token's active one: a UUID, or a Clerk organisation \
    id (`org_` and letters and digits, mapped to one stable internal id). It must be one the token grants (its active \
    org or one of `orgs`), else 403; a value of neither form is a 400";

/// What `Idempotency-Key` is, on every mutating operation.
pub const IDEMPOTENCY_DESCRIPTION: &str = "Required: 1 to 255 visible ASCII characters (`!` to `~`), scoped to \
    the org. A retry with the same key and request replays the stored answer (with `Idempotent-Replayed: true`); the \
    same key with another request is a 422, and while its first request is still in flight a 409";

/// What `If-Match` is, on every update.
pub const IF_MATCH_DESCRIPTION: &str = "Required: the `ETag` of the version the change was made from (`\"3\"`), or a \
    comma-separated list of them. Missing or `*` is a 428; a version that is not the current one a 412";

/// What `x-correlation-id` is, on every mutation.
pub const CORRELATION_DESCRIPTION: &str = "Groups the events of one flow: every event the request appends carries it \
    (generated, UUID v7, when absent; echoed on the answer). 1 to 128 characters of `A-Z a-z 0-9 . _ : -`";

const ORG: (&str, bool, &str) = ("x-org-id", false, ORG_DESCRIPTION);
const IDEMPOTENCY_KEY: (&str, bool, &str) = ("Idempotency-Key", true, IDEMPOTENCY_DESCRIPTION);
const CORRELATION: (&str, bool, &str) = ("x-correlation-id", false, CORRELATION_DESCRIPTION);
const IF_MATCH: (&str, bool, &str) = ("If-Match", true, IF_MATCH_DESCRIPTION);

/// Header parameters: name, whether required, description; strings all.
fn headers(list: &[(&str, bool, &str)]) -> Vec<Parameter> {
    list.iter()
        .map(|(name, required, description)| {
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Header)
                .required(if *required { Required::True } else { Required::False })
                .description(Some(*description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        })
        .collect()
}

/// Declares a set: a unit type whose `IntoParams` lists its headers.
macro_rules! header_set {
    ($(#[doc = $doc:literal])* $name:ident [$($header:expr),+ $(,)?]) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                headers(&[$($header),+])
            }
        }
    };
}

header_set! {
    /// Every operation that acts for an org: `x-org-id`.
    OrgHeader [ORG]
}

header_set! {
    /// Mutations: `Idempotency-Key`, `x-correlation-id`, `x-org-id`.
    MutationHeaders [IDEMPOTENCY_KEY, CORRELATION, ORG]
}

header_set! {
    /// Mutations of a version: `If-Match`, then what every mutation takes.
    ChangeHeaders [IF_MATCH, IDEMPOTENCY_KEY, CORRELATION, ORG]
}
