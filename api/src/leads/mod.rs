//! The org's sales leads: their lifecycle ([`machine`]), their table
//! ([`store`]), their list ([`list`]) and its cached first page ([`cache`]),
//! and the operations the routes call. Every change runs as one
//! [`Mutation`]: the rows and their events commit together, under the
//! request's idempotency key.
//!
//! Events (`payload.lead_id` on each):
//!
//! | event | when | payload besides `lead_id` |
//! |---|---|---|
//! | `xentri.lead.created.v1` | created, and each lead of an import | `name`, `email`, `company`, `source`, `status`, `version` |
//! | `xentri.lead.updated.v1` | every change | `version`, `status`, `change` (`fields` or `transition`); `fields` (the changed fields' new values), or `from`, `to`, `reason` |
//! | `xentri.deal.won.v1` | `proposal → won` | `version`, `reason`, `name`, `email`, `company` |
//! | `xentri.deal.lost.v1` | `proposal → lost` | `version`, `reason`, `name`, `email`, `company` |
//! | `xentri.lead.disqualified.v1` | `contacted → disqualified` | `version`, `reason`, `name`, `email`, `company` |
//!
//! The worker's cache invalidation deletes `leads:list:{org_id}` on `created`
//! and `updated`.

pub mod cache;
pub mod list;
pub mod machine;
pub mod store;

use http::StatusCode;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use self::machine::{LeadStatus, NotAllowed};
use self::store::{Lead, NewLead};
use crate::domain::mutation::{Answer, Mutation, Ran};
use crate::domain::precondition;
use crate::domain::request::Mutating;
use crate::problem::{AllowedTransitions, ApiError, Problem, ProblemKind};
use crate::state::AppState;

/// The fields a `PATCH` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new email address.
    pub email: Option<String>,
    /// A new company, or `Some(None)` to clear it.
    pub company: Option<Option<String>>,
}

/// What a change of one lead asks for, as the routes read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New values of fields.
    Fields(FieldChanges),
    /// A transition of the Lead Lifecycle Flow.
    Transition {
        /// The status to go to.
        to: LeadStatus,
        /// Why, for the record.
        reason: Option<String>,
    },
}

/// Creates one lead, `new`.
pub async fn create(state: &AppState, request: Mutating, new: NewLead) -> Result<Answer, ApiError> {
    let created = async |mutation: &mut Mutation| {
        let mut leads = insert(mutation, std::slice::from_ref(&new)).await?;
        leads.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a created lead was not returned")))
    };
    match Mutation::run(state, request, created).await? {
        Ran::Done(mutation, lead) => finish(state, *mutation, StatusCode::CREATED, Some(lead.version), &lead).await,
        Ran::Replayed(stored) => Ok(Answer::Replayed(stored)),
    }
}

/// Creates every lead of an import, `new`, each with its own
/// `xentri.lead.created.v1`: all of them or, on any failure, none.
pub async fn import(state: &AppState, request: Mutating, leads: Vec<NewLead>) -> Result<Answer, ApiError> {
    match Mutation::run(state, request, async |mutation| insert(mutation, &leads).await).await? {
        Ran::Done(mutation, created) => {
            let answer = json!({"count": created.len(), "data": created});
            finish(state, *mutation, StatusCode::CREATED, None, &answer).await
        }
        Ran::Replayed(stored) => Ok(Answer::Replayed(stored)),
    }
}

/// The new leads' rows and events, in the mutation's transaction.
async fn insert(mutation: &mut Mutation, leads: &[NewLead]) -> Result<Vec<Lead>, ApiError> {
    let org_id = mutation.request().org_id();
    let created = store::insert(mutation.conn(), org_id, leads).await?;
    for lead in &created {
        mutation.emit(
            "xentri.lead.created.v1",
            &json!({
                "lead_id": lead.id, "name": lead.name, "email": lead.email, "company": lead.company,
                "source": lead.source, "status": lead.status, "version": lead.version,
            }),
        )?;
    }
    Ok(created)
}

/// Changes lead `id` as `change` asks: 404 when the org has no such lead, 412
/// when `If-Match` (`if_match`) names another version, 409 when the flow does
/// not allow the transition from the current status.
pub async fn change(
    state: &AppState,
    request: Mutating,
    id: Uuid,
    if_match: Vec<i64>,
    change: Change,
) -> Result<Answer, ApiError> {
    match Mutation::run(state, request, async |mutation| apply(mutation, id, &if_match, change).await).await? {
        Ran::Done(mutation, lead) => finish(state, *mutation, StatusCode::OK, Some(lead.version), &lead).await,
        Ran::Replayed(stored) => Ok(Answer::Replayed(stored)),
    }
}

/// The change's row and events, in the mutation's transaction.
async fn apply(mutation: &mut Mutation, id: Uuid, if_match: &[i64], change: Change) -> Result<Lead, ApiError> {
    let current = store::lock(mutation.conn(), id).await?.ok_or_else(|| missing(Some(id)))?;
    precondition::check(if_match, current.version, "lead")?;
    match change {
        Change::Fields(fields) => {
            let mut changed = current.clone();
            let mut values = Map::new();
            if let Some(name) = fields.name {
                values.insert("name".into(), json!(name));
                changed.name = name;
            }
            if let Some(email) = fields.email {
                values.insert("email".into(), json!(email));
                changed.email = email;
            }
            if let Some(company) = fields.company {
                values.insert("company".into(), json!(company));
                changed.company = company;
            }
            let lead = store::update(mutation.conn(), &current, &changed).await?;
            mutation.emit(
                "xentri.lead.updated.v1",
                &json!({
                    "lead_id": lead.id, "version": lead.version, "status": lead.status,
                    "change": "fields", "fields": Value::Object(values),
                }),
            )?;
            Ok(lead)
        }
        Change::Transition { to, reason } => {
            let transition = machine::transition(current.status, to).map_err(refused)?;
            let changed = Lead { status: transition.to, ..current.clone() };
            let lead = store::update(mutation.conn(), &current, &changed).await?;
            mutation.emit(
                "xentri.lead.updated.v1",
                &json!({
                    "lead_id": lead.id, "version": lead.version, "status": lead.status,
                    "change": "transition", "from": transition.from, "to": transition.to, "reason": reason,
                }),
            )?;
            if let Some(outcome) = transition.outcome_event() {
                mutation.emit(
                    outcome,
                    &json!({
                        "lead_id": lead.id, "version": lead.version, "reason": reason,
                        "name": lead.name, "email": lead.email, "company": lead.company,
                    }),
                )?;
            }
            Ok(lead)
        }
    }
}

/// Lead `id` of `org_id`, if the org has it.
pub async fn get(state: &AppState, org_id: Uuid, id: Uuid) -> Result<Option<Lead>, ApiError> {
    let mut tx = state.db.begin(org_id).await?;
    let lead = store::find(&mut tx, id).await?;
    tx.finish_read();
    Ok(lead)
}

/// Commits `mutation` with `answer` as its answer.
async fn finish(
    state: &AppState,
    mutation: Mutation,
    status: StatusCode,
    version: Option<i64>,
    answer: &impl serde::Serialize,
) -> Result<Answer, ApiError> {
    let body = match serde_json::to_string(answer) {
        Ok(body) => body,
        Err(error) => {
            mutation.rollback().await;
            return Err(ApiError::Internal(error.into()));
        }
    };
    mutation.commit(state, status, &body).await?;
    Ok(Answer::Done { status, version, body })
}

/// The answer for a lead the org does not have: another org's, none at all,
/// or an id that is not a UUID (`None`), alike.
pub fn missing(id: Option<Uuid>) -> ApiError {
    let detail = match id {
        Some(id) => format!("Lead {id} not found"),
        None => "Lead not found".to_owned(),
    };
    Problem::new(ProblemKind::NotFound, detail).into()
}

/// The answer to a transition the flow refuses.
fn refused(NotAllowed { from, to }: NotAllowed) -> ApiError {
    let detail = format!("The lead is {}: it cannot go to {}", from.as_str(), to.as_str());
    let allowed = machine::allowed_from(from).into_iter().map(LeadStatus::as_str).collect();
    Problem::invalid_transition(detail, AllowedTransitions { state: from.as_str(), allowed }).into()
}
