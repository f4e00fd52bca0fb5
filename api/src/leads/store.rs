//! The `leads` table: leads read, listed, locked, created and changed, always
//! inside a transaction scoped to their org (row-level security).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;
use xentri_core::sql;

use super::machine::LeadStatus;
use crate::problem::ApiError;

/// Where a lead came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadSource {
    /// A form on a site.
    Form,
    /// A bulk import.
    Import,
    /// Entered by hand.
    Manual,
}

impl LeadSource {
    /// Every source.
    pub const ALL: [LeadSource; 3] = [LeadSource::Form, LeadSource::Import, LeadSource::Manual];

    /// The name stored and answered (`leads.source`).
    pub const fn as_str(self) -> &'static str {
        match self {
            LeadSource::Form => "form",
            LeadSource::Import => "import",
            LeadSource::Manual => "manual",
        }
    }

    /// The source named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|source| source.as_str() == name)
    }
}

/// A lead, as stored and answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Lead {
    /// The lead's id.
    pub id: Uuid,
    /// Its org.
    pub org_id: Uuid,
    /// The contact's name.
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    /// The contact's email address.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// The contact's company; null when unknown.
    #[schema(example = "Analytical Engines Ltd")]
    pub company: Option<String>,
    /// Where the lead came from.
    pub source: LeadSource,
    /// Where it is in the Lead Lifecycle Flow.
    pub status: LeadStatus,
    /// Goes up by one with every change; the `ETag` is this number in quotes.
    #[schema(example = 1, minimum = 1)]
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A lead's fields, as a creation or an import gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLead {
    /// The contact's name.
    pub name: String,
    /// The contact's email address.
    pub email: String,
    /// The contact's company.
    pub company: Option<String>,
    /// Where the lead came from.
    pub source: LeadSource,
}

/// A row of `leads`, in `lead_columns!` order.
#[derive(sqlx::FromRow)]
struct LeadRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    email: String,
    company: Option<String>,
    source: String,
    status: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<LeadRow> for Lead {
    type Error = ApiError;

    fn try_from(row: LeadRow) -> Result<Self, ApiError> {
        let unknown = |column: &str, value: &str| {
            ApiError::Internal(anyhow::anyhow!("leads.{column} holds an unknown value {value:?}"))
        };
        let status = LeadStatus::parse(&row.status).ok_or_else(|| unknown("status", &row.status))?;
        let source = LeadSource::parse(&row.source).ok_or_else(|| unknown("source", &row.source))?;
        Ok(Lead {
            id: row.id,
            org_id: row.org_id,
            name: row.name,
            email: row.email,
            company: row.company,
            source,
            status,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn lead(row: Option<LeadRow>) -> Result<Option<Lead>, ApiError> {
    row.map(Lead::try_from).transpose()
}

/// Lead `id` of the transaction's org.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Lead>, ApiError> {
    lead(sqlx::query_as(sql::LEAD_BY_ID).bind(id).fetch_optional(conn).await?)
}

/// Lead `id`, locked until the transaction ends: changes of one lead take turns.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Lead>, ApiError> {
    lead(sqlx::query_as(sql::LEAD_BY_ID_FOR_UPDATE).bind(id).fetch_optional(conn).await?)
}

/// New leads of `org_id`, `new`, in the order given: one statement however
/// many.
pub async fn insert(conn: &mut PgConnection, org_id: Uuid, leads: &[NewLead]) -> Result<Vec<Lead>, ApiError> {
    let ids: Vec<Uuid> = leads.iter().map(|_| Uuid::now_v7()).collect();
    let names: Vec<&str> = leads.iter().map(|l| l.name.as_str()).collect();
    let emails: Vec<&str> = leads.iter().map(|l| l.email.as_str()).collect();
    let companies: Vec<Option<&str>> = leads.iter().map(|l| l.company.as_deref()).collect();
    let sources: Vec<&str> = leads.iter().map(|l| l.source.as_str()).collect();
    let rows: Vec<LeadRow> = sqlx::query_as(sql::LEADS_INSERT)
        .bind(org_id)
        .bind(&ids)
        .bind(&names)
        .bind(&emails)
        .bind(&companies)
        .bind(&sources)
        .fetch_all(conn)
        .await?;
    // RETURNING promises no order: put the rows back in the order given.
    let mut by_id: std::collections::HashMap<Uuid, Lead> =
        rows.into_iter().map(|row| Lead::try_from(row).map(|lead| (lead.id, lead))).collect::<Result<_, _>>()?;
    ids.iter()
        .map(|id| {
            by_id.remove(id).ok_or_else(|| ApiError::Internal(anyhow::anyhow!("an inserted lead was not returned")))
        })
        .collect()
}

/// Changes `current` (locked by [`lock`]) to `changed`'s fields and status;
/// the version goes up by one.
pub async fn update(conn: &mut PgConnection, current: &Lead, changed: &Lead) -> Result<Lead, ApiError> {
    let row = sqlx::query_as(sql::LEAD_UPDATE)
        .bind(current.id)
        .bind(current.version)
        .bind(&changed.name)
        .bind(&changed.email)
        .bind(changed.company.as_deref())
        .bind(changed.status.as_str())
        .fetch_optional(conn)
        .await?;
    lead(row)?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a locked lead changed version")))
}

/// Where a page starts: after this lead in the list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    /// The lead's `created_at`.
    pub created_at: DateTime<Utc>,
    /// The lead's id.
    pub id: Uuid,
}

/// Up to `limit` of `org_id`'s leads newest first (by `created_at`, then id),
/// of `status` when given, after `after` when given.
pub async fn page(
    conn: &mut PgConnection,
    org_id: Uuid,
    status: Option<LeadStatus>,
    after: Option<After>,
    limit: i64,
) -> Result<Vec<Lead>, ApiError> {
    let rows: Vec<LeadRow> = sqlx::query_as(sql::LEADS_PAGE)
        .bind(org_id)
        .bind(status.map(LeadStatus::as_str))
        .bind(after.map(|a| a.created_at))
        .bind(after.map(|a| a.id))
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(Lead::try_from).collect()
}
