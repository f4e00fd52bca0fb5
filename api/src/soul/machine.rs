//! The Soul Generation Flow, in one place: the states, the steps between them,
//! who may take each, and [`transition`], the one function every change of a
//! Soul asks.
//!
//! ```text
//! initiated ─start─▶ conversing ─request draft─▶ drafting ─deliver draft (service)─▶ review_pending ─approve─▶ approved
//!                    │  ▲                                                             │  ▲                      │
//!                    └──┘ record answer                                begin editing ▼  │ submit edits         │
//!                                                                                  editing ◀───begin editing───┘
//! ```
//!
//! The content may be replaced while `conversing` or `editing`. A draft is
//! delivered only by a service (the platform's AI agents); every other step is
//! a user's.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a Soul is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SoulState {
    /// Created; the conversation has not started.
    Initiated,
    /// The user answers questions; each answer fills sections.
    Conversing,
    /// A draft has been asked for; an agent is writing it.
    Drafting,
    /// A draft or an edit waits for the user's review.
    ReviewPending,
    /// The user edits the content.
    Editing,
    /// Approved: what the platform uses.
    Approved,
}

impl SoulState {
    /// Every state, in flow order.
    pub const ALL: [SoulState; 6] = [
        SoulState::Initiated,
        SoulState::Conversing,
        SoulState::Drafting,
        SoulState::ReviewPending,
        SoulState::Editing,
        SoulState::Approved,
    ];

    /// The name stored and answered (`souls.state`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SoulState::Initiated => "initiated",
            SoulState::Conversing => "conversing",
            SoulState::Drafting => "drafting",
            SoulState::ReviewPending => "review_pending",
            SoulState::Editing => "editing",
            SoulState::Approved => "approved",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

/// Who asks for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A user token.
    User,
    /// A service token (`sub = service:<name>`).
    Service,
}

/// What a change asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Move to this state.
    To(SoulState),
    /// Replace the content, staying in the state.
    ReplaceContent,
}

/// A step the flow allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// `initiated → conversing`.
    Start,
    /// `conversing → conversing`: an answer fills sections.
    RecordAnswer,
    /// `conversing → drafting`.
    RequestDraft,
    /// `drafting → review_pending`: a service delivers the draft's sections.
    DeliverDraft,
    /// `review_pending → editing`, or `approved → editing`.
    BeginEditing,
    /// `editing → review_pending`.
    SubmitEdits,
    /// `review_pending → approved`.
    Approve,
    /// The content replaced, in `conversing` or `editing`.
    ReplaceContent,
}

impl Step {
    /// Who may take it.
    pub const fn caller(self) -> Caller {
        match self {
            Step::DeliverDraft => Caller::Service,
            _ => Caller::User,
        }
    }

    /// A short name, for logs and events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::Start => "start",
            Step::RecordAnswer => "record_answer",
            Step::RequestDraft => "request_draft",
            Step::DeliverDraft => "deliver_draft",
            Step::BeginEditing => "begin_editing",
            Step::SubmitEdits => "submit_edits",
            Step::Approve => "approve",
            Step::ReplaceContent => "replace_content",
        }
    }
}

/// Every allowed change: from, action, the step it is, and the state after it.
const FLOW: [(SoulState, Action, Step, SoulState); 10] = {
    use SoulState::*;
    [
        (Initiated, Action::To(Conversing), Step::Start, Conversing),
        (Conversing, Action::To(Conversing), Step::RecordAnswer, Conversing),
        (Conversing, Action::To(Drafting), Step::RequestDraft, Drafting),
        (Drafting, Action::To(ReviewPending), Step::DeliverDraft, ReviewPending),
        (ReviewPending, Action::To(Editing), Step::BeginEditing, Editing),
        (Approved, Action::To(Editing), Step::BeginEditing, Editing),
        (Editing, Action::To(ReviewPending), Step::SubmitEdits, ReviewPending),
        (ReviewPending, Action::To(Approved), Step::Approve, Approved),
        (Conversing, Action::ReplaceContent, Step::ReplaceContent, Conversing),
        (Editing, Action::ReplaceContent, Step::ReplaceContent, Editing),
    ]
};

/// An allowed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The step.
    pub step: Step,
    /// The state before it.
    pub from: SoulState,
    /// The state after it.
    pub to: SoulState,
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The flow has no such change from this state (409).
    #[error("not allowed from {}", .from.as_str())]
    NotAllowed {
        /// The current state.
        from: SoulState,
        /// What was asked.
        action: Action,
    },
    /// The step is another kind of caller's (403): a draft is a service's,
    /// everything else a user's.
    #[error("{} is not the caller's step", .step.as_str())]
    WrongCaller {
        /// The step asked for.
        step: Step,
    },
}

/// The one transition function: the step `action` is from `from`, if the flow
/// allows it and `caller` may take it.
pub fn transition(from: SoulState, action: Action, caller: Caller) -> Result<Transition, Refusal> {
    let (_, _, step, to) = FLOW
        .iter()
        .copied()
        .find(|(at, asked, _, _)| *at == from && *asked == action)
        .ok_or(Refusal::NotAllowed { from, action })?;
    if step.caller() != caller {
        return Err(Refusal::WrongCaller { step });
    }
    Ok(Transition { step, from, to })
}

/// The states a transition may go to from `from` (by any caller), in flow order.
pub fn allowed_from(from: SoulState) -> Vec<SoulState> {
    SoulState::ALL
        .into_iter()
        .filter(|to| FLOW.iter().any(|(at, action, _, _)| *at == from && *action == Action::To(*to)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::SoulState::*;
    use super::*;

    /// The flow as the issue states it, written out apart from [`FLOW`]:
    /// (from, action, caller, state after).
    const EXPECTED: [(SoulState, Action, Caller, SoulState); 10] = [
        (Initiated, Action::To(Conversing), Caller::User, Conversing),
        (Conversing, Action::To(Conversing), Caller::User, Conversing),
        (Conversing, Action::To(Drafting), Caller::User, Drafting),
        (Drafting, Action::To(ReviewPending), Caller::Service, ReviewPending),
        (ReviewPending, Action::To(Editing), Caller::User, Editing),
        (Editing, Action::To(ReviewPending), Caller::User, ReviewPending),
        (ReviewPending, Action::To(Approved), Caller::User, Approved),
        (Approved, Action::To(Editing), Caller::User, Editing),
        (Conversing, Action::ReplaceContent, Caller::User, Conversing),
        (Editing, Action::ReplaceContent, Caller::User, Editing),
    ];

    #[test]
    fn every_allowed_and_every_forbidden_change() {
        let actions = SoulState::ALL.into_iter().map(Action::To).chain([Action::ReplaceContent]);
        let mut allowed = 0;
        for from in SoulState::ALL {
            for action in actions.clone() {
                let expected = EXPECTED.iter().find(|(f, a, _, _)| *f == from && *a == action);
                for caller in [Caller::User, Caller::Service] {
                    let got = transition(from, action, caller);
                    match expected {
                        Some((_, _, who, to)) if *who == caller => {
                            let got = got.unwrap_or_else(|e| panic!("{from:?} {action:?} by {caller:?}: {e}"));
                            assert_eq!((got.from, got.to), (from, *to), "{action:?}");
                            allowed += 1;
                        }
                        Some(_) => assert!(
                            matches!(got, Err(Refusal::WrongCaller { .. })),
                            "{from:?} {action:?} by {caller:?}: {got:?}"
                        ),
                        None => assert_eq!(got, Err(Refusal::NotAllowed { from, action }), "{caller:?}"),
                    }
                }
            }
        }
        assert_eq!(allowed, EXPECTED.len(), "each allowed change is allowed to one kind of caller");
    }

    #[test]
    fn only_a_service_delivers_a_draft() {
        assert!(matches!(
            transition(Drafting, Action::To(ReviewPending), Caller::User),
            Err(Refusal::WrongCaller { step: Step::DeliverDraft })
        ));
        assert_eq!(
            transition(Drafting, Action::To(ReviewPending), Caller::Service).map(|t| t.step),
            Ok(Step::DeliverDraft)
        );
    }

    #[test]
    fn what_each_state_allows() {
        assert_eq!(allowed_from(Initiated), [Conversing]);
        assert_eq!(allowed_from(Conversing), [Conversing, Drafting]);
        assert_eq!(allowed_from(Drafting), [ReviewPending]);
        assert_eq!(allowed_from(ReviewPending), [Editing, Approved]);
        assert_eq!(allowed_from(Editing), [ReviewPending]);
        assert_eq!(allowed_from(Approved), [Editing]);
    }

    #[test]
    fn names_round_trip() {
        for state in SoulState::ALL {
            assert_eq!(SoulState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).ok(), Some(serde_json::Value::from(state.as_str())));
        }
        assert_eq!(SoulState::parse("Approved"), None);
    }
}
