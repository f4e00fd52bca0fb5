//! The org's Soul (one per org): its flow ([`machine`]), its table
//! ([`store`]), its cached read ([`cache`]), and the operations the routes
//! call. Every change runs as one [`Mutation`]: the row and its events commit
//! together, under the request's idempotency key.
//!
//! Events (`payload.soul_id` on each):
//!
//! | event | when | payload besides `soul_id` |
//! |---|---|---|
//! | `xentri.soul.initiated.v1` | created | `state`, `version` |
//! | `xentri.soul.transitioned.v1` | every transition | `step`, `from`, `to`, `version`, `reason`, `sections` (names an answer or a draft filled) |
//! | `xentri.soul.content_replaced.v1` | `PUT` | `state`, `version`, `sections` (names) |
//! | `xentri.soul.created.v1` | the first approval | `version`, `content` |
//! | `xentri.soul.updated.v1` | every change to an approved Soul: it leaves approval for editing, and every later approval | `state`, `version`, `content` |
//!
//! Consumers that use only approved Souls need only `created` and `updated`;
//! the worker's cache invalidation deletes `soul:{org_id}` on `updated`.

pub mod cache;
pub mod machine;
pub mod store;

use chrono::Utc;
use http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use self::cache::Cached;
use self::machine::{Action, Caller, Refusal, SoulState, Step};
use self::store::{Sections, Soul};
use crate::domain::mutation::{Answer, Mutation, Ran};
use crate::domain::precondition;
use crate::domain::request::Mutating;
use crate::problem::{AllowedTransitions, ApiError, FieldError, Problem, ProblemKind};
use crate::state::AppState;

/// What a change of the Soul asks for, as the routes read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The versions `If-Match` named.
    pub if_match: Vec<i64>,
    /// The transition or the content replacement.
    pub action: Action,
    /// An answer's or a draft's sections, or the new content.
    pub sections: Option<Sections>,
    /// Why, for the record (transitions only).
    pub reason: Option<String>,
}

/// Creates the org's Soul, `initiated`; 409 when it has one.
pub async fn create(state: &AppState, request: Mutating) -> Result<Answer, ApiError> {
    match Mutation::run(state, request, async |mutation| insert(mutation).await).await? {
        Ran::Done(mutation, soul) => finish(state, *mutation, StatusCode::CREATED, soul).await,
        Ran::Replayed(stored) => Ok(Answer::Replayed(stored)),
    }
}

/// The new Soul's row and event, in the mutation's transaction.
async fn insert(mutation: &mut Mutation) -> Result<Soul, ApiError> {
    let org_id = mutation.request().org_id();
    let Some(soul) = store::insert(mutation.conn(), org_id).await? else {
        return Err(Problem::new(ProblemKind::AlreadyExists, "This org has a Soul already: GET /api/v1/soul").into());
    };
    mutation
        .emit("xentri.soul.initiated.v1", &json!({"soul_id": soul.id, "state": soul.state, "version": soul.version}))?;
    Ok(soul)
}

/// Changes the org's Soul as `change` asks: 404 without one, 412 when
/// `If-Match` names another version, 409 when the flow does not allow it from
/// the current state, 403 when the step is another kind of caller's.
pub async fn change(state: &AppState, request: Mutating, change: Change) -> Result<Answer, ApiError> {
    let caller = if request.principal.actor.as_str().starts_with("service:") { Caller::Service } else { Caller::User };
    match Mutation::run(state, request, async |mutation| apply(mutation, change, caller).await).await? {
        Ran::Done(mutation, soul) => finish(state, *mutation, StatusCode::OK, soul).await,
        Ran::Replayed(stored) => Ok(Answer::Replayed(stored)),
    }
}

/// The change's row and events, in the mutation's transaction.
async fn apply(mutation: &mut Mutation, change: Change, caller: Caller) -> Result<Soul, ApiError> {
    let org_id = mutation.request().org_id();
    let current = store::lock(mutation.conn(), org_id).await?.ok_or_else(missing)?;
    precondition::check(&change.if_match, current.version, "Soul")?;
    let transition = machine::transition(current.state, change.action, caller).map_err(refused)?;
    let step = transition.step;
    let content = content_after(step, &current.content, change.sections.as_ref())?;
    let first_approval = step == Step::Approve && current.approved_at.is_none();
    let soul = store::update(mutation.conn(), &current, transition.to, &content, first_approval.then(Utc::now)).await?;
    let names: Option<Vec<&String>> = change.sections.as_ref().map(|s| s.keys().collect());
    if step == Step::ReplaceContent {
        mutation.emit(
            "xentri.soul.content_replaced.v1",
            &json!({"soul_id": soul.id, "state": soul.state, "version": soul.version, "sections": names}),
        )?;
    } else {
        mutation.emit(
            "xentri.soul.transitioned.v1",
            &json!({
                "soul_id": soul.id, "step": step.as_str(), "from": current.state, "to": soul.state,
                "version": soul.version, "reason": change.reason, "sections": names,
            }),
        )?;
    }
    let approved_changed = step == Step::Approve || current.state == SoulState::Approved;
    if approved_changed {
        let event_type = if first_approval { "xentri.soul.created.v1" } else { "xentri.soul.updated.v1" };
        let mut payload = json!({"soul_id": soul.id, "version": soul.version, "content": soul.content});
        if !first_approval {
            payload["state"] = json!(soul.state);
        }
        mutation.emit(event_type, &payload)?;
    }
    Ok(soul)
}

/// The org's Soul as answered (cache-aside), if it has one.
pub async fn read(state: &AppState, org_id: Uuid) -> Result<Option<Cached>, ApiError> {
    if let Some(cached) = cache::read(state, org_id).await {
        return Ok(Some(cached));
    }
    let mut tx = state.db.begin(org_id).await?;
    let soul = store::find(&mut tx, org_id).await?;
    tx.finish_read();
    let Some(soul) = soul else { return Ok(None) };
    let body = serde_json::to_string(&soul).map_err(|e| ApiError::Internal(e.into()))?;
    cache::store(state, org_id, soul.version, &body).await;
    Ok(Some(Cached { version: soul.version, body }))
}

/// Commits `mutation` with `soul` as its answer, then caches that answer.
async fn finish(state: &AppState, mutation: Mutation, status: StatusCode, soul: Soul) -> Result<Answer, ApiError> {
    let body = match serde_json::to_string(&soul) {
        Ok(body) => body,
        Err(error) => {
            mutation.rollback().await;
            return Err(ApiError::Internal(error.into()));
        }
    };
    mutation.commit(state, status, &body).await?;
    cache::store(state, soul.org_id, soul.version, &body).await;
    Ok(Answer::Done { status, version: Some(soul.version), body })
}

/// The content after `step`: an answer adds or replaces its sections, a draft
/// or a replacement is the whole content; other steps carry no sections.
fn content_after(step: Step, current: &Sections, sections: Option<&Sections>) -> Result<Sections, ApiError> {
    let refuse = |message: &str| {
        ApiError::from(Problem::validation(vec![FieldError { field: "sections".into(), message: message.into() }]))
    };
    match (step, sections) {
        (Step::RecordAnswer, Some(answer)) if !answer.is_empty() => {
            let mut content = current.clone();
            content.extend(answer.iter().map(|(name, value)| (name.clone(), value.clone())));
            Ok(content)
        }
        (Step::RecordAnswer, _) => Err(refuse("an answer fills at least one section")),
        (Step::DeliverDraft, Some(draft)) if !draft.is_empty() => Ok(draft.clone()),
        (Step::DeliverDraft, _) => Err(refuse("a draft carries at least one section")),
        (Step::ReplaceContent, Some(content)) => Ok(content.clone()),
        (Step::ReplaceContent, None) => Err(refuse("the content is required")),
        (_, Some(_)) => Err(refuse("only an answer (conversing to conversing) or a draft carries sections")),
        (_, None) => Ok(current.clone()),
    }
}

fn missing() -> ApiError {
    Problem::new(ProblemKind::NotFound, "This org has no Soul yet: POST /api/v1/soul creates it").into()
}

/// The answer to a change the flow refuses.
fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotAllowed { from, action } => {
            let detail = match action {
                Action::To(to) => format!("The Soul is {}: it cannot go to {}", from.as_str(), to.as_str()),
                Action::ReplaceContent => format!(
                    "The Soul is {}: its content can be replaced only while conversing or editing",
                    from.as_str()
                ),
            };
            let allowed = machine::allowed_from(from).into_iter().map(SoulState::as_str).collect();
            Problem::invalid_transition(detail, AllowedTransitions { state: from.as_str(), allowed }).into()
        }
        Refusal::WrongCaller { step: Step::DeliverDraft } => {
            Problem::new(ProblemKind::Forbidden, "Only a service token may deliver a draft").into()
        }
        Refusal::WrongCaller { step } => {
            Problem::new(ProblemKind::Forbidden, format!("Only a user token may {}", step.as_str().replace('_', " ")))
                .into()
        }
    }
}
