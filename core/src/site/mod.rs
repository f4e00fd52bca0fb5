//! A website's vocabulary, shared by the api (which creates, edits and moves
//! sites) and the worker (whose build renders them and takes the build's
//! steps): the Website Publish Flow ([`machine`]), what a page and its blocks
//! may hold ([`page`]), and the names of the site's events and its build job.
//!
//! Events (`payload.site_id` on each):
//!
//! | event | stream | when | payload besides `site_id` |
//! |---|---|---|---|
//! | `xentri.website.created.v1` | events | created | `name`, `state`, `version`, `pages` (slugs) |
//! | `xentri.website.updated.v1` | events | every change by a user | `version`, `state`, `change` (`content` or `transition`); `name` and `pages` (slugs) or `from`, `to`, `reason` |
//! | `xentri.website.build_requested.v1` | **jobs** | `preview → publishing` | `version`: the site.build job |
//! | `xentri.website.published.v1` | events | a build made the site live | `version`, `published_version`, `pages` (slugs), `build_job_id` |
//! | `xentri.website.build_failed.v1` | events | a build failed | `version`, `reason`, `build_job_id`, `dead_lettered` |
//!
//! The worker's cache invalidation deletes `site:{org_id}:{site_id}` on
//! `published` and `build_failed`, the two changes the api does not make.

pub mod machine;
pub mod page;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use self::machine::SiteState;
use self::page::Page;

/// A site was created.
pub const CREATED: &str = "xentri.website.created.v1";
/// A user changed a site: its content or its state.
pub const UPDATED: &str = "xentri.website.updated.v1";
/// The site.build job: an event aimed at the jobs stream, appended with the
/// transition to `publishing`; the worker's `site_builds` group runs it.
pub const BUILD_REQUESTED: &str = "xentri.website.build_requested.v1";
/// A build made the site live.
pub const PUBLISHED: &str = "xentri.website.published.v1";
/// A build failed: invalid content, or its job dead-lettered.
pub const BUILD_FAILED: &str = "xentri.website.build_failed.v1";

/// A site, as stored and answered.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Site {
    /// The site's id.
    pub id: Uuid,
    /// Its org.
    pub org_id: Uuid,
    /// Its name.
    #[schema(example = "Acme Bakery")]
    pub name: String,
    /// Where it is in the Website Publish Flow.
    pub state: SiteState,
    /// Its pages, in order.
    pub pages: Vec<Page>,
    /// Goes up by one with every change (the build's included); the `ETag`
    /// is this number in quotes.
    #[schema(example = 1, minimum = 1)]
    pub version: i64,
    /// The site.build job of the latest publish request (its event id); null
    /// before the first.
    pub build_job_id: Option<Uuid>,
    /// Why the latest build failed; null unless `failed`.
    pub failure_reason: Option<String>,
    /// The version whose pages are served as HTML; null until a build succeeds.
    pub published_version: Option<i64>,
    /// When that version was published.
    pub published_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A row of `sites`, in `site_columns!` order (`crate::sql`).
#[derive(sqlx::FromRow)]
pub struct SiteRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    state: String,
    pages: Json<serde_json::Value>,
    version: i64,
    build_job_id: Option<Uuid>,
    failure_reason: Option<String>,
    published_version: Option<i64>,
    published_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A row of `sites` that does not read as a [`Site`].
#[derive(Debug, thiserror::Error)]
pub enum InvalidSiteRow {
    /// `state` is not a [`SiteState`].
    #[error("sites.state holds an unknown state {0:?}")]
    State(String),
}

impl SiteRow {
    /// The site, with its stored pages as they are: the api answers them, the
    /// build checks them again with [`page::parse_pages`].
    pub fn into_site(self) -> Result<(Site, serde_json::Value), InvalidSiteRow> {
        let state = SiteState::parse(&self.state).ok_or(InvalidSiteRow::State(self.state))?;
        let raw = self.pages.0;
        // The api stores only pages it parsed; a row it did not write answers
        // its readable pages, and the build says what is wrong with the rest.
        let pages = serde_json::from_value(raw.clone()).unwrap_or_default();
        let site = Site {
            id: self.id,
            org_id: self.org_id,
            name: self.name,
            state,
            pages,
            version: self.version,
            build_job_id: self.build_job_id,
            failure_reason: self.failure_reason,
            published_version: self.published_version,
            published_at: self.published_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        Ok((site, raw))
    }
}
