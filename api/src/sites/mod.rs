//! The org's websites: their table ([`store`]), their cached read
//! ([`cache`]), and the operations the routes call. The Website Publish Flow
//! and what a page may hold are the worker's vocabulary too, so they live in
//! [`xentri_core::site`] (the events are listed there). Every change runs as
//! one [`Mutation`]: the row and its events commit together, under the
//! request's idempotency key; the transition to `publishing` enqueues the
//! site.build job in the same transaction.

pub mod cache;
pub mod store;

use http::StatusCode;
use serde_json::json;
use uuid::Uuid;
use xentri_core::site::machine::{self, Caller, Refusal, SiteState};
use xentri_core::site::page::Page;
use xentri_core::site::{self as vocabulary, Site};

use self::store::Changed;
use crate::domain::cache::Cached;
use crate::domain::mutation::{Answer, Mutation, Ran};
use crate::domain::precondition;
use crate::domain::request::Mutating;
use crate::problem::{AllowedTransitions, ApiError, Problem, ProblemKind};
use crate::state::AppState;

/// What a change of one site asks for, as the routes read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New content: a name, pages (the whole list), or both. The site goes
    /// back to `draft`.
    Edit {
        /// A new name.
        name: Option<String>,
        /// New pages, replacing all of them.
        pages: Option<Vec<Page>>,
    },
    /// A user's transition of the Website Publish Flow.
    Transition {
        /// The state to go to.
        to: SiteState,
        /// Why, for the record.
        reason: Option<String>,
    },
}

/// Creates a site, `draft`.
pub async fn create(state: &AppState, request: Mutating, name: String, pages: Vec<Page>) -> Result<Answer, ApiError> {
    match Mutation::run(state, request, async |mutation| insert(mutation, &name, &pages).await).await? {
        Ran::Done(mutation, site) => finish(state, *mutation, StatusCode::CREATED, site).await,
        Ran::Replayed(stored) => Ok(Answer::Replayed(stored)),
    }
}

/// The new site's row and event, in the mutation's transaction.
async fn insert(mutation: &mut Mutation, name: &str, pages: &[Page]) -> Result<Site, ApiError> {
    let org_id = mutation.request().org_id();
    let site = store::insert(mutation.conn(), org_id, name, pages).await?;
    mutation.emit(
        vocabulary::CREATED,
        &json!({
            "site_id": site.id, "name": site.name, "state": site.state, "version": site.version,
            "pages": slugs(&site.pages),
        }),
    )?;
    Ok(site)
}

/// Changes site `id` as `change` asks: 404 when the org has no such site,
/// 412 when `If-Match` (`if_match`) names another version, 409 when the flow
/// does not allow it from the current state, 403 for a build's step.
pub async fn change(
    state: &AppState,
    request: Mutating,
    id: Uuid,
    if_match: Vec<i64>,
    change: Change,
) -> Result<Answer, ApiError> {
    match Mutation::run(state, request, async |mutation| apply(mutation, id, &if_match, change).await).await? {
        Ran::Done(mutation, site) => finish(state, *mutation, StatusCode::OK, site).await,
        Ran::Replayed(stored) => Ok(Answer::Replayed(stored)),
    }
}

/// The change's row, events and job, in the mutation's transaction.
async fn apply(mutation: &mut Mutation, id: Uuid, if_match: &[i64], change: Change) -> Result<Site, ApiError> {
    let current = store::lock(mutation.conn(), id).await?.ok_or_else(|| missing(Some(id)))?;
    precondition::check(if_match, current.version, "site")?;
    // The row is locked: the change makes exactly the next version.
    let version = current.version + 1;
    match change {
        Change::Edit { name, pages } => {
            let transition = machine::edit(current.state).map_err(|refusal| refused(refusal, "edited"))?;
            let name = name.unwrap_or_else(|| current.name.clone());
            let pages = pages.unwrap_or_else(|| current.pages.clone());
            mutation.emit(
                vocabulary::UPDATED,
                &json!({
                    "site_id": id, "version": version, "state": transition.to, "change": "content",
                    "from": transition.from, "to": transition.to, "name": name, "pages": slugs(&pages),
                }),
            )?;
            let changed = Changed {
                name: &name,
                pages: &pages,
                state: transition.to,
                build_job_id: current.build_job_id,
                failure_reason: None,
            };
            store::update(mutation.conn(), &current, changed).await
        }
        Change::Transition { to, reason } => {
            let transition =
                machine::transition(current.state, to, Caller::User).map_err(|refusal| refused(refusal, "moved"))?;
            mutation.emit(
                vocabulary::UPDATED,
                &json!({
                    "site_id": id, "version": version, "state": transition.to, "change": "transition",
                    "from": transition.from, "to": transition.to, "reason": reason,
                }),
            )?;
            let build_job_id = if transition.requests_build() {
                Some(mutation.enqueue_job(vocabulary::BUILD_REQUESTED, &json!({"site_id": id, "version": version}))?)
            } else {
                current.build_job_id
            };
            let changed = Changed {
                name: &current.name,
                pages: &current.pages,
                state: transition.to,
                build_job_id,
                failure_reason: None,
            };
            store::update(mutation.conn(), &current, changed).await
        }
    }
}

/// Site `id` of `org_id` as answered (cache-aside), if the org has it.
pub async fn read(state: &AppState, org_id: Uuid, id: Uuid) -> Result<Option<Cached>, ApiError> {
    if let Some(cached) = cache::read(state, org_id, id).await {
        return Ok(Some(cached));
    }
    let mut tx = state.db.begin(org_id).await?;
    let site = store::find(&mut tx, id).await?;
    tx.finish_read();
    let Some(site) = site else { return Ok(None) };
    let body = serde_json::to_string(&site).map_err(|e| ApiError::Internal(e.into()))?;
    cache::store(state, org_id, id, site.version, &body).await;
    Ok(Some(Cached { version: site.version, body }))
}

/// The published HTML of page `slug` of site `id` of `org_id`, if a build
/// has published it.
pub async fn page_html(state: &AppState, org_id: Uuid, id: Uuid, slug: &str) -> Result<Option<String>, ApiError> {
    let mut tx = state.db.begin(org_id).await?;
    let html = store::page_html(&mut tx, id, slug).await?;
    tx.finish_read();
    Ok(html)
}

/// Commits `mutation` with `site` as its answer, then caches that answer.
async fn finish(state: &AppState, mutation: Mutation, status: StatusCode, site: Site) -> Result<Answer, ApiError> {
    let body = match serde_json::to_string(&site) {
        Ok(body) => body,
        Err(error) => {
            mutation.rollback().await;
            return Err(ApiError::Internal(error.into()));
        }
    };
    mutation.commit(state, status, &body).await?;
    cache::store(state, site.org_id, site.id, site.version, &body).await;
    Ok(Answer::Done { status, version: Some(site.version), body })
}

/// The pages' slugs, for events.
fn slugs(pages: &[Page]) -> Vec<&str> {
    pages.iter().map(|page| page.slug.as_str()).collect()
}

/// The answer for a site the org does not have: another org's, none at all,
/// or an id that is not a UUID (`None`), alike.
pub fn missing(id: Option<Uuid>) -> ApiError {
    let detail = match id {
        Some(id) => format!("Site {id} not found"),
        None => "Site not found".to_owned(),
    };
    Problem::new(ProblemKind::NotFound, detail).into()
}

/// The answer to a change the flow refuses; `what` says what the site could
/// not be (`edited`, `moved`).
fn refused(refusal: Refusal, what: &str) -> ApiError {
    match refusal {
        Refusal::NotAllowed { from, to } => {
            let detail = if what == "edited" {
                format!("The site is {}: it can be edited once its build has finished", from.as_str())
            } else {
                format!("The site is {}: it cannot go to {}", from.as_str(), to.as_str())
            };
            let allowed = machine::allowed_from(from, Caller::User).into_iter().map(SiteState::as_str).collect();
            Problem::invalid_transition(detail, AllowedTransitions { state: from.as_str(), allowed }).into()
        }
        Refusal::WrongCaller { from, to } => Problem::new(
            ProblemKind::Forbidden,
            format!("Only the site build moves a site from {} to {}", from.as_str(), to.as_str()),
        )
        .into(),
    }
}
