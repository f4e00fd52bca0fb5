//! The `souls` table: a Soul read, locked, created and changed, always inside
//! a transaction scoped to its org (row-level security).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;
use xentri_core::sql;

use super::machine::SoulState;
use crate::problem::ApiError;

/// Named sections: section name → its content.
pub type Sections = serde_json::Map<String, serde_json::Value>;

/// An org's Soul, as stored and answered.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Soul {
    /// The Soul's id.
    pub id: Uuid,
    /// Its org (one Soul per org).
    pub org_id: Uuid,
    /// Where it is in the Soul Generation Flow.
    pub state: SoulState,
    /// Named sections: each key a section's name, each value its content.
    #[schema(value_type = Object, example = json!({"mission": "We help small teams ship.", "voice": "warm, direct"}))]
    pub content: Sections,
    /// Goes up by one with every change; the `ETag` is this number in quotes.
    #[schema(example = 3, minimum = 1)]
    pub version: i64,
    /// When it was first approved; null until then.
    pub approved_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A row of `souls`, in `soul_columns!` order.
#[derive(sqlx::FromRow)]
struct SoulRow {
    id: Uuid,
    org_id: Uuid,
    state: String,
    content: Json<Sections>,
    version: i64,
    first_approved_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<SoulRow> for Soul {
    type Error = ApiError;

    fn try_from(row: SoulRow) -> Result<Self, ApiError> {
        let state = SoulState::parse(&row.state)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("souls.state holds an unknown state {:?}", row.state)))?;
        Ok(Soul {
            id: row.id,
            org_id: row.org_id,
            state,
            content: row.content.0,
            version: row.version,
            approved_at: row.first_approved_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn soul(row: Option<SoulRow>) -> Result<Option<Soul>, ApiError> {
    row.map(Soul::try_from).transpose()
}

/// The org's Soul.
pub async fn find(conn: &mut PgConnection, org_id: Uuid) -> Result<Option<Soul>, ApiError> {
    soul(sqlx::query_as(sql::SOUL_BY_ORG).bind(org_id).fetch_optional(conn).await?)
}

/// The org's Soul, locked until the transaction ends: changes of one Soul
/// take turns.
pub async fn lock(conn: &mut PgConnection, org_id: Uuid) -> Result<Option<Soul>, ApiError> {
    soul(sqlx::query_as(sql::SOUL_BY_ORG_FOR_UPDATE).bind(org_id).fetch_optional(conn).await?)
}

/// A new Soul for the org, `initiated`; `None` when the org has one.
pub async fn insert(conn: &mut PgConnection, org_id: Uuid) -> Result<Option<Soul>, ApiError> {
    let row = sqlx::query_as(sql::SOUL_INSERT)
        .bind(Uuid::now_v7())
        .bind(org_id)
        .bind(SoulState::Initiated.as_str())
        .fetch_optional(conn)
        .await?;
    soul(row)
}

/// Changes `current` (locked by [`lock`]) to `state` with `content`; the
/// version goes up by one, `approved_at` is set by the first approval.
pub async fn update(
    conn: &mut PgConnection,
    current: &Soul,
    state: SoulState,
    content: &Sections,
    approved_at: Option<DateTime<Utc>>,
) -> Result<Soul, ApiError> {
    let row = sqlx::query_as(sql::SOUL_UPDATE)
        .bind(current.id)
        .bind(current.version)
        .bind(state.as_str())
        .bind(Json(content))
        .bind(approved_at)
        .fetch_optional(conn)
        .await?;
    soul(row)?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a locked Soul changed version")))
}
