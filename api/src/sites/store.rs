//! The `sites` and `site_pages_html` tables as the api reads and changes
//! them, always inside a transaction scoped to their org (row-level
//! security). The worker's build writes the published pages.

use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;
use xentri_core::site::machine::SiteState;
use xentri_core::site::page::Page;
use xentri_core::site::{Site, SiteRow};
use xentri_core::sql;

use crate::problem::ApiError;

fn site(row: Option<SiteRow>) -> Result<Option<Site>, ApiError> {
    row.map(|row| row.into_site().map(|(site, _)| site).map_err(|e| ApiError::Internal(e.into()))).transpose()
}

/// Site `id` of the transaction's org.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Site>, ApiError> {
    site(sqlx::query_as(sql::SITE_BY_ID).bind(id).fetch_optional(conn).await?)
}

/// Site `id`, locked until the transaction ends: changes of one site (the
/// build's included) take turns.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Site>, ApiError> {
    site(sqlx::query_as(sql::SITE_BY_ID_FOR_UPDATE).bind(id).fetch_optional(conn).await?)
}

/// A new site of `org_id`, `draft`.
pub async fn insert(conn: &mut PgConnection, org_id: Uuid, name: &str, pages: &[Page]) -> Result<Site, ApiError> {
    let row = sqlx::query_as(sql::SITE_INSERT)
        .bind(Uuid::now_v7())
        .bind(org_id)
        .bind(name)
        .bind(Json(pages))
        .fetch_optional(conn)
        .await?;
    site(row)?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a created site was not returned")))
}

/// What a user's change writes.
pub struct Changed<'a> {
    /// The name.
    pub name: &'a str,
    /// The pages.
    pub pages: &'a [Page],
    /// The state.
    pub state: SiteState,
    /// The build job of the latest publish request.
    pub build_job_id: Option<Uuid>,
    /// Why the latest build failed.
    pub failure_reason: Option<&'a str>,
}

/// Changes `current` (locked by [`lock`]) to `changed`; the version goes up by one.
pub async fn update(conn: &mut PgConnection, current: &Site, changed: Changed<'_>) -> Result<Site, ApiError> {
    let row = sqlx::query_as(sql::SITE_UPDATE)
        .bind(current.id)
        .bind(current.version)
        .bind(changed.name)
        .bind(Json(changed.pages))
        .bind(changed.state.as_str())
        .bind(changed.build_job_id)
        .bind(changed.failure_reason)
        .fetch_optional(conn)
        .await?;
    site(row)?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a locked site changed version")))
}

/// The published HTML of page `slug` of site `id`, if it has been built.
pub async fn page_html(conn: &mut PgConnection, id: Uuid, slug: &str) -> Result<Option<String>, ApiError> {
    Ok(sqlx::query_scalar(sql::SITE_PAGE_HTML).bind(id).bind(slug).fetch_optional(conn).await?)
}
