//! The Lead Lifecycle Flow, in one place: the statuses, the transitions
//! between them, and [`transition`], the one function every status change of
//! a lead asks.
//!
//! ```text
//! new ─▶ contacted ─▶ qualified ─▶ proposal ─▶ won
//!            │                         │
//!            ▼                         ▼
//!       disqualified                  lost
//! ```
//!
//! `won`, `lost` and `disqualified` are terminal: nothing leaves them, and
//! reaching one appends an event of its own besides `xentri.lead.updated.v1`
//! ([`Transition::outcome_event`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a lead is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    /// Created; nobody has reached out yet.
    New,
    /// Someone has been in touch.
    Contacted,
    /// Worth a proposal.
    Qualified,
    /// Not a fit (terminal).
    Disqualified,
    /// A proposal is out.
    Proposal,
    /// The deal is won (terminal).
    Won,
    /// The deal is lost (terminal).
    Lost,
}

impl LeadStatus {
    /// Every status, in flow order.
    pub const ALL: [LeadStatus; 7] = [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::Qualified,
        LeadStatus::Disqualified,
        LeadStatus::Proposal,
        LeadStatus::Won,
        LeadStatus::Lost,
    ];

    /// The name stored and answered (`leads.status`).
    pub const fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::Contacted => "contacted",
            LeadStatus::Qualified => "qualified",
            LeadStatus::Disqualified => "disqualified",
            LeadStatus::Proposal => "proposal",
            LeadStatus::Won => "won",
            LeadStatus::Lost => "lost",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// Every allowed transition: from, to.
const FLOW: [(LeadStatus, LeadStatus); 6] = {
    use LeadStatus::*;
    [
        (New, Contacted),
        (Contacted, Qualified),
        (Contacted, Disqualified),
        (Qualified, Proposal),
        (Proposal, Won),
        (Proposal, Lost),
    ]
};

/// An allowed transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The status before it.
    pub from: LeadStatus,
    /// The status after it.
    pub to: LeadStatus,
}

impl Transition {
    /// The event a terminal transition appends besides
    /// `xentri.lead.updated.v1`: the deal won or lost, or the lead disqualified.
    pub const fn outcome_event(self) -> Option<&'static str> {
        match self.to {
            LeadStatus::Won => Some("xentri.deal.won.v1"),
            LeadStatus::Lost => Some("xentri.deal.lost.v1"),
            LeadStatus::Disqualified => Some("xentri.lead.disqualified.v1"),
            _ => None,
        }
    }
}

/// Why a transition is refused: the flow has no such step from `from` (409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a lead cannot go from {} to {}", .from.as_str(), .to.as_str())]
pub struct NotAllowed {
    /// The current status.
    pub from: LeadStatus,
    /// The status asked for.
    pub to: LeadStatus,
}

/// The one transition function: `from → to`, if the flow allows it.
pub fn transition(from: LeadStatus, to: LeadStatus) -> Result<Transition, NotAllowed> {
    if FLOW.contains(&(from, to)) { Ok(Transition { from, to }) } else { Err(NotAllowed { from, to }) }
}

/// The statuses a transition may go to from `from`, in flow order.
pub fn allowed_from(from: LeadStatus) -> Vec<LeadStatus> {
    LeadStatus::ALL.into_iter().filter(|to| FLOW.contains(&(from, *to))).collect()
}

#[cfg(test)]
mod tests {
    use super::LeadStatus::*;
    use super::*;

    /// The flow as the issue states it, written out apart from [`FLOW`].
    const EXPECTED: [(LeadStatus, LeadStatus); 6] = [
        (New, Contacted),
        (Contacted, Qualified),
        (Contacted, Disqualified),
        (Qualified, Proposal),
        (Proposal, Won),
        (Proposal, Lost),
    ];

    #[test]
    fn every_allowed_and_every_forbidden_transition() {
        let mut allowed = 0;
        let mut forbidden = 0;
        for from in LeadStatus::ALL {
            for to in LeadStatus::ALL {
                let got = transition(from, to);
                if EXPECTED.contains(&(from, to)) {
                    assert_eq!(got, Ok(Transition { from, to }), "{from:?} → {to:?}");
                    allowed += 1;
                } else {
                    assert_eq!(got, Err(NotAllowed { from, to }), "{from:?} → {to:?}");
                    forbidden += 1;
                }
            }
        }
        assert_eq!((allowed, forbidden), (6, 49 - 6));
    }

    #[test]
    fn what_each_status_allows() {
        assert_eq!(allowed_from(New), [Contacted]);
        assert_eq!(allowed_from(Contacted), [Qualified, Disqualified]);
        assert_eq!(allowed_from(Qualified), [Proposal]);
        assert_eq!(allowed_from(Proposal), [Won, Lost]);
        for terminal in [Disqualified, Won, Lost] {
            assert!(allowed_from(terminal).is_empty(), "{terminal:?} is terminal");
        }
    }

    #[test]
    fn terminal_transitions_name_their_outcome() {
        let outcome = |from, to| transition(from, to).ok().and_then(Transition::outcome_event);
        assert_eq!(outcome(Proposal, Won), Some("xentri.deal.won.v1"));
        assert_eq!(outcome(Proposal, Lost), Some("xentri.deal.lost.v1"));
        assert_eq!(outcome(Contacted, Disqualified), Some("xentri.lead.disqualified.v1"));
        for (from, to) in [(New, Contacted), (Contacted, Qualified), (Qualified, Proposal)] {
            assert_eq!(outcome(from, to), None, "{from:?} → {to:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for status in LeadStatus::ALL {
            assert_eq!(LeadStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::Value::from(status.as_str())));
        }
        assert_eq!(LeadStatus::parse("Won"), None);
    }
}
