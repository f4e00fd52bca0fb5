//! The Website Publish Flow, in one place: the states, the transitions, who
//! may take each, and [`transition`], the one function every change of a
//! site's state asks (the api's and the worker's build alike).
//!
//! ```text
//!            ┌──────── edit ────────┐
//!            ▼                      │
//! draft ─▶ preview ─▶ publishing ─build─▶ live
//!   ▲         │            │               │
//!   │         ▼          build             │ edit
//!   └───── draft           ▼               │
//!   ▲                    failed ─build (replayed job)─▶ live
//!   └──────────────────────┘ ◀─────────────┘
//! ```
//!
//! Users take `draft → preview`, `preview → draft | publishing`,
//! `failed → draft` and `live → draft` (an edit of a live site takes it, and
//! so may a transition). Only the build takes `publishing → live | failed`,
//! and `failed → live`: a build whose job was dead-lettered (the site then
//! failed) and replayed with `dlq-tool replay` may still make the site live,
//! as long as the site still names that job (no edit and no new publish
//! request since). A user asking for a build's step gets a 403; a step the
//! flow does not have is a 409 listing what the current state allows.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a site is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SiteState {
    /// Being written; what is served (if anything) is the last published build.
    Draft,
    /// Ready for review before publishing.
    Preview,
    /// A build job is queued or running.
    Publishing,
    /// The latest build succeeded: its HTML is served.
    Live,
    /// The latest build failed (`failure_reason` says why).
    Failed,
}

impl SiteState {
    /// Every state, in flow order.
    pub const ALL: [SiteState; 5] =
        [SiteState::Draft, SiteState::Preview, SiteState::Publishing, SiteState::Live, SiteState::Failed];

    /// The name stored and answered (`sites.state`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SiteState::Draft => "draft",
            SiteState::Preview => "preview",
            SiteState::Publishing => "publishing",
            SiteState::Live => "live",
            SiteState::Failed => "failed",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

/// Who asks for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A user (or a service) through the api.
    User,
    /// The worker's site build.
    Build,
}

/// Every transition of the flow: from, to, who takes it.
const FLOW: [(SiteState, SiteState, Caller); 8] = {
    use Caller::*;
    use SiteState::*;
    [
        (Draft, Preview, User),
        (Preview, Draft, User),
        (Preview, Publishing, User),
        (Publishing, Live, Build),
        (Publishing, Failed, Build),
        (Failed, Draft, User),
        (Failed, Live, Build),
        (Live, Draft, User),
    ]
};

/// An allowed transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before it.
    pub from: SiteState,
    /// The state after it.
    pub to: SiteState,
}

impl Transition {
    /// Whether it queues a site.build job (`preview → publishing`).
    pub const fn requests_build(self) -> bool {
        matches!(self.to, SiteState::Publishing)
    }
}

/// Why a transition is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The flow has no such step from `from` (409).
    #[error("a site cannot go from {} to {}", .from.as_str(), .to.as_str())]
    NotAllowed {
        /// The current state.
        from: SiteState,
        /// The state asked for.
        to: SiteState,
    },
    /// The step is the other caller's: a user asked for a build's step (403),
    /// or the build for a user's.
    #[error("{} to {} is not this caller's step", .from.as_str(), .to.as_str())]
    WrongCaller {
        /// The current state.
        from: SiteState,
        /// The state asked for.
        to: SiteState,
    },
}

/// The one transition function: `from → to` asked by `caller`, if the flow allows it.
pub fn transition(from: SiteState, to: SiteState, caller: Caller) -> Result<Transition, Refusal> {
    match FLOW.iter().find(|(f, t, _)| *f == from && *t == to) {
        Some((_, _, by)) if *by == caller => Ok(Transition { from, to }),
        Some(_) => Err(Refusal::WrongCaller { from, to }),
        None => Err(Refusal::NotAllowed { from, to }),
    }
}

/// The states `caller` may move a site to from `from`, in flow order.
pub fn allowed_from(from: SiteState, caller: Caller) -> Vec<SiteState> {
    SiteState::ALL.into_iter().filter(|to| transition(from, *to, caller).is_ok()).collect()
}

/// What an edit of the content does to the state: a draft stays a draft;
/// from `preview`, `failed` or `live` the edit takes the flow's step back to
/// `draft`. While `publishing` the build reads the content: refused.
pub fn edit(from: SiteState) -> Result<Transition, Refusal> {
    if from == SiteState::Draft {
        return Ok(Transition { from, to: SiteState::Draft });
    }
    transition(from, SiteState::Draft, Caller::User)
}

#[cfg(test)]
mod tests {
    use super::Caller::*;
    use super::SiteState::*;
    use super::*;

    /// The flow as the issue states it, written out apart from [`FLOW`]:
    /// the user's steps, then the build's.
    const USERS: [(SiteState, SiteState); 5] =
        [(Draft, Preview), (Preview, Draft), (Preview, Publishing), (Failed, Draft), (Live, Draft)];
    const BUILDS: [(SiteState, SiteState); 3] = [(Publishing, Live), (Publishing, Failed), (Failed, Live)];

    #[test]
    fn every_allowed_and_every_forbidden_transition() {
        let mut counts = [0; 3];
        for caller in [User, Build] {
            let (own, other): (&[_], &[_]) = if caller == User { (&USERS, &BUILDS) } else { (&BUILDS, &USERS) };
            for from in SiteState::ALL {
                for to in SiteState::ALL {
                    let got = transition(from, to, caller);
                    if own.contains(&(from, to)) {
                        assert_eq!(got, Ok(Transition { from, to }), "{caller:?}: {from:?} → {to:?}");
                        counts[0] += 1;
                    } else if other.contains(&(from, to)) {
                        assert_eq!(got, Err(Refusal::WrongCaller { from, to }), "{caller:?}: {from:?} → {to:?}");
                        counts[1] += 1;
                    } else {
                        assert_eq!(got, Err(Refusal::NotAllowed { from, to }), "{caller:?}: {from:?} → {to:?}");
                        counts[2] += 1;
                    }
                }
            }
        }
        assert_eq!(counts, [8, 8, 2 * 25 - 16], "allowed, the other caller's, not in the flow");
    }

    #[test]
    fn what_each_state_allows() {
        assert_eq!(allowed_from(Draft, User), [Preview]);
        assert_eq!(allowed_from(Preview, User), [Draft, Publishing]);
        assert!(allowed_from(Publishing, User).is_empty(), "only the build leaves publishing");
        assert_eq!(allowed_from(Publishing, Build), [Live, Failed]);
        assert_eq!(allowed_from(Live, User), [Draft]);
        assert_eq!(allowed_from(Failed, User), [Draft]);
        assert_eq!(allowed_from(Failed, Build), [Live]);
        for state in [Draft, Preview, Live] {
            assert!(allowed_from(state, Build).is_empty(), "{state:?}");
        }
    }

    #[test]
    fn an_edit_goes_back_to_draft_except_while_publishing() {
        for from in [Draft, Preview, Live, Failed] {
            assert_eq!(edit(from), Ok(Transition { from, to: Draft }), "{from:?}");
        }
        assert_eq!(edit(Publishing), Err(Refusal::NotAllowed { from: Publishing, to: Draft }));
    }

    #[test]
    fn only_publishing_requests_a_build() {
        assert!(transition(Preview, Publishing, User).is_ok_and(Transition::requests_build));
        assert!(transition(Publishing, Live, Build).is_ok_and(|t| !t.requests_build()));
    }

    #[test]
    fn names_round_trip() {
        for state in SiteState::ALL {
            assert_eq!(SiteState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).ok(), Some(serde_json::Value::from(state.as_str())));
        }
        assert_eq!(SiteState::parse("Live"), None);
    }
}
