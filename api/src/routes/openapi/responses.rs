//! Problem answers that many operations document alike, each written once.
//!
//! An operation names the sets that apply to it in its `responses(...)`
//! beside the answers that are its own (`Guarded, OrgGranted`, …); an answer
//! worded for one operation stays in that operation's list. Every answer here
//! is a `ProblemDocument` served as `application/problem+json`, like the
//! operations' own problem answers.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

/// One problem answer: its status and what it means.
fn problems(answers: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    answers
        .iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ProblemDocument"))).build();
            let response =
                ResponseBuilder::new().description(*description).content("application/problem+json", content);
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// Declares a set: a unit type whose `IntoResponses` lists its answers.
macro_rules! problem_set {
    ($(#[doc = $doc:literal])* $name:ident { $($status:literal => $description:expr),+ $(,)? }) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                problems(&[$(($status, $description)),+])
            }
        }
    };
}

problem_set! {
    /// Every operation behind a token: none that is valid, or a failure of
    /// the api's own.
    Guarded {
        401 => "No valid token; one `detail` whatever the cause",
        500 => "An unexpected failure (logged with the trace id); nothing more is disclosed",
    }
}

problem_set! {
    /// Every operation that acts for an org the token grants.
    OrgGranted {
        403 => "x-org-id names an org the token does not grant",
    }
}

problem_set! {
    /// Operations whose only input is the org they act for.
    MalformedOrg {
        400 => "A malformed x-org-id",
    }
}

problem_set! {
    /// Reads: what makes the api answer none.
    ReadUnavailable {
        503 => "The database is unavailable, no user-token keys could be fetched yet, or the api sheds load (`overloaded`); always with `Retry-After`",
    }
}

problem_set! {
    /// Mutations: what makes the api take none.
    MutationUnavailable {
        503 => "The database is unavailable, the api is shutting down, or it sheds load; always with `Retry-After`",
    }
}

problem_set! {
    /// Mutations that create: what the request's envelope can get wrong.
    MalformedCreation {
        400 => "Missing or malformed Idempotency-Key, malformed JSON, or a malformed x-org-id or x-correlation-id",
    }
}

problem_set! {
    /// Mutations of a version: what the request's envelope can get wrong.
    MalformedChange {
        400 => "Missing or malformed Idempotency-Key, malformed JSON or If-Match, or a malformed x-org-id or x-correlation-id",
    }
}

problem_set! {
    /// Mutations whose body is held to `api.body_limit_bytes`.
    BodyLimit {
        413 => "The body is over `api.body_limit_bytes` (1 MiB by default)",
    }
}

problem_set! {
    /// Mutations that take a JSON body.
    JsonOnly {
        415 => "The Content-Type is not `application/json`",
    }
}

problem_set! {
    /// Mutations of a versioned resource, which must name the version they
    /// change.
    IfMatchRequired {
        428 => "No If-Match, or `If-Match: *`",
    }
}

problem_set! {
    /// Mutations of a versioned resource whose version moved on.
    StaleVersion {
        412 => "If-Match names another version than the current one",
    }
}

problem_set! {
    /// Mutations under an `Idempotency-Key` whose first request may still be
    /// running.
    KeyInFlight {
        409 => "The first request with this key is still in flight",
    }
}

problem_set! {
    /// Mutations whose fields have rules.
    InvalidFields {
        422 => "Fields break their rules (`errors` lists them), or the key was used with another request",
    }
}
