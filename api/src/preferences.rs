//! Language choices: a user's own (`user_preferences`, per user within an
//! org) and the org's default (`org_settings`). Each is read for its `GET`
//! and changed by its `PUT` as one [`Mutation`]: the row and its event commit
//! together, under the request's idempotency key. How problems use them is
//! [`crate::i18n`].
//!
//! A choice that was never made reads as `null` at version 0, so its first
//! `PUT` names `If-Match: "0"`, like every later one names the version it
//! was made from.
//!
//! Events:
//!
//! | event | when | payload |
//! |---|---|---|
//! | `xentri.user.preferences.updated.v1` | `PUT /api/v1/me/preferences` | `subject`, `language`, `version` |
//! | `xentri.org.settings.updated.v1` | `PUT /api/v1/org/settings` | `default_language`, `version` |

use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;
use xentri_core::sql;

use crate::domain::mutation::{Answer, Mutation, Ran};
use crate::domain::precondition;
use crate::domain::request::Mutating;
use crate::i18n::Lang;
use crate::problem::ApiError;
use crate::state::AppState;

/// A user's preferences within the org, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserPreferences {
    /// The language problem titles are written in for this user, before
    /// `Accept-Language`; null: none chosen.
    #[schema(required = true)]
    pub language: Option<Lang>,
    /// Goes up by one with every change; 0 before the first. The `ETag` is
    /// this number in quotes.
    #[schema(example = 1, minimum = 0)]
    pub version: i64,
}

/// The org's settings, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrgSettings {
    /// The language problem titles fall back to in this org when neither the
    /// user's choice nor `Accept-Language` names one; null: English.
    #[schema(required = true)]
    pub default_language: Option<Lang>,
    /// Goes up by one with every change; 0 before the first. The `ETag` is
    /// this number in quotes.
    #[schema(example = 1, minimum = 0)]
    pub version: i64,
}

/// A stored language and its version, as the statements return them.
type Row = (Option<String>, i64);

fn language(code: Option<String>) -> Result<Option<Lang>, ApiError> {
    code.map(|code| {
        Lang::parse(&code).ok_or_else(|| ApiError::Internal(anyhow::anyhow!("an unknown language {code:?} is stored")))
    })
    .transpose()
}

/// `subject`'s preferences in `org_id` (version 0 when never set).
pub async fn user(state: &AppState, org_id: Uuid, subject: &str) -> Result<UserPreferences, ApiError> {
    let mut tx = state.db.begin(org_id).await?;
    let row: Option<Row> =
        sqlx::query_as(sql::USER_PREFERENCES_BY_SUBJECT).bind(org_id).bind(subject).fetch_optional(&mut *tx).await?;
    tx.finish_read();
    let (code, version) = row.unwrap_or((None, 0));
    Ok(UserPreferences { language: language(code)?, version })
}

/// `org_id`'s settings (version 0 when never set).
pub async fn org(state: &AppState, org_id: Uuid) -> Result<OrgSettings, ApiError> {
    let mut tx = state.db.begin(org_id).await?;
    let row: Option<Row> = sqlx::query_as(sql::ORG_SETTINGS_BY_ORG).bind(org_id).fetch_optional(&mut *tx).await?;
    tx.finish_read();
    let (code, version) = row.unwrap_or((None, 0));
    Ok(OrgSettings { default_language: language(code)?, version })
}

/// Sets the caller's language to `choice`; 412 unless `if_match` names the
/// current version (0 before the first choice).
pub async fn set_user(
    state: &AppState,
    request: Mutating,
    if_match: Vec<i64>,
    choice: Option<Lang>,
) -> Result<Answer, ApiError> {
    match Mutation::run(state, request, async |mutation| write_user(mutation, &if_match, choice).await).await? {
        Ran::Done(mutation, preferences) => finish(state, *mutation, preferences.version, &preferences).await,
        Ran::Replayed(stored) => Ok(Answer::Replayed(stored)),
    }
}

async fn write_user(
    mutation: &mut Mutation,
    if_match: &[i64],
    choice: Option<Lang>,
) -> Result<UserPreferences, ApiError> {
    let org_id = mutation.request().org_id();
    let subject = mutation.request().principal.subject.clone();
    let code = choice.map(Lang::code);
    let conn = mutation.conn();
    let current: Option<Row> = sqlx::query_as(sql::USER_PREFERENCES_BY_SUBJECT_FOR_UPDATE)
        .bind(org_id)
        .bind(&subject)
        .fetch_optional(&mut *conn)
        .await?;
    let current_version = current.as_ref().map_or(0, |(_, version)| *version);
    precondition::check(if_match, current_version, "preferences")?;
    let written: Option<Row> = match current {
        None => {
            sqlx::query_as(sql::USER_PREFERENCES_INSERT)
                .bind(Uuid::now_v7())
                .bind(org_id)
                .bind(&subject)
                .bind(code)
                .fetch_optional(conn)
                .await?
        }
        Some((_, version)) => {
            sqlx::query_as(sql::USER_PREFERENCES_UPDATE)
                .bind(org_id)
                .bind(&subject)
                .bind(version)
                .bind(code)
                .fetch_optional(conn)
                .await?
        }
    };
    let (code, version) = written.ok_or_else(|| moved("preferences"))?;
    let preferences = UserPreferences { language: language(code)?, version };
    mutation.emit(
        "xentri.user.preferences.updated.v1",
        &json!({"subject": subject, "language": preferences.language, "version": version}),
    )?;
    Ok(preferences)
}

/// Sets the org's default language to `choice`; 412 unless `if_match` names
/// the current version (0 before the first choice). The route checks the
/// caller is an admin.
pub async fn set_org(
    state: &AppState,
    request: Mutating,
    if_match: Vec<i64>,
    choice: Option<Lang>,
) -> Result<Answer, ApiError> {
    match Mutation::run(state, request, async |mutation| write_org(mutation, &if_match, choice).await).await? {
        Ran::Done(mutation, settings) => finish(state, *mutation, settings.version, &settings).await,
        Ran::Replayed(stored) => Ok(Answer::Replayed(stored)),
    }
}

async fn write_org(mutation: &mut Mutation, if_match: &[i64], choice: Option<Lang>) -> Result<OrgSettings, ApiError> {
    let org_id = mutation.request().org_id();
    let code = choice.map(Lang::code);
    let conn: &mut PgConnection = mutation.conn();
    let current: Option<Row> =
        sqlx::query_as(sql::ORG_SETTINGS_BY_ORG_FOR_UPDATE).bind(org_id).fetch_optional(&mut *conn).await?;
    let current_version = current.as_ref().map_or(0, |(_, version)| *version);
    precondition::check(if_match, current_version, "org's settings")?;
    let written: Option<Row> = match current {
        None => {
            sqlx::query_as(sql::ORG_SETTINGS_INSERT)
                .bind(Uuid::now_v7())
                .bind(org_id)
                .bind(code)
                .fetch_optional(conn)
                .await?
        }
        Some((_, version)) => {
            sqlx::query_as(sql::ORG_SETTINGS_UPDATE).bind(org_id).bind(version).bind(code).fetch_optional(conn).await?
        }
    };
    let (code, version) = written.ok_or_else(|| moved("org's settings"))?;
    let settings = OrgSettings { default_language: language(code)?, version };
    mutation.emit(
        "xentri.org.settings.updated.v1",
        &json!({"default_language": settings.default_language, "version": version}),
    )?;
    Ok(settings)
}

/// A first choice made by another request between the read and the insert:
/// the version the caller named is no longer current.
fn moved(resource: &str) -> ApiError {
    crate::problem::Problem::new(
        crate::problem::ProblemKind::PreconditionFailed,
        format!("The {resource} changed meanwhile: read them again for the current ETag"),
    )
    .into()
}

/// Commits `mutation` with `answer` at `version` as its answer.
async fn finish(
    state: &AppState,
    mutation: Mutation,
    version: i64,
    answer: &impl Serialize,
) -> Result<Answer, ApiError> {
    let body = match serde_json::to_string(answer) {
        Ok(body) => body,
        Err(error) => {
            mutation.rollback().await;
            return Err(ApiError::Internal(error.into()));
        }
    };
    mutation.commit(state, StatusCode::OK, &body).await?;
    Ok(Answer::Done { status: StatusCode::OK, version: Some(version), body })
}
