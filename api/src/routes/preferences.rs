//! `GET` and `PUT /api/v1/me/preferences` (the caller's own language) and
//! `GET` and `PUT /api/v1/org/settings` (the org's default language; changed
//! by admins only): the warp filters, their bodies and their handlers. What
//! they do is [`crate::preferences`].

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use utoipa::ToSchema;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::events::request::require_json;
use super::{answer, json_response, set_etag, with_state};
use crate::auth::{Authenticator, Principal, authenticated};
use crate::domain::precondition;
use crate::domain::request::Mutating;
use crate::edge::RequestContext;
use crate::i18n::Lang;
use crate::preferences::{self, OrgSettings, UserPreferences};
use crate::problem::{ApiError, FieldError, Problem, ProblemDocument, ProblemKind, respond};
use crate::routes::openapi::headers::{ChangeHeaders, OrgHeader};
use crate::routes::openapi::responses::{
    Guarded, IfMatchRequired, JsonOnly, KeyInFlight, MalformedChange, MalformedOrg, MutationUnavailable, OrgGranted,
    ReadUnavailable,
};
use crate::state::AppState;

/// The org role that may change the org's settings (Clerk's admin role).
pub const ADMIN_ROLE: &str = "org:admin";

/// A change of the caller's preferences.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    /// `en`, `de`, `fr` or `es`; null clears the choice.
    #[schema(required = true)]
    pub language: Option<Lang>,
}

/// A change of the org's settings.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgSettingsBody {
    /// `en`, `de`, `fr` or `es`; null: English.
    #[schema(required = true)]
    pub default_language: Option<Lang>,
}

/// The four routes.
pub fn routes(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    get_preferences(state.clone(), auth.clone())
        .or(put_preferences(state.clone(), auth.clone()))
        .unify()
        .or(get_org_settings(state.clone(), auth.clone()))
        .unify()
        .or(put_org_settings(state, auth))
        .unify()
        .boxed()
}

/// Reads the caller's preferences in the org.
#[utoipa::path(get, path = "/api/v1/me/preferences", tag = "preferences",
    params(OrgHeader),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The caller's preferences (`language` null and version 0 when never set), with the version's `ETag`", body = UserPreferences,
            headers(("ETag" = String, description = "The version, in quotes: send it as `If-Match` to change them"))),
        Guarded, OrgGranted, MalformedOrg, ReadUnavailable,
    ))]
pub fn get_preferences(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "me" / "preferences")
        .and(warp::get())
        .and(authenticated(auth))
        .and(with_state(state))
        .then(read_preferences)
        .map(respond)
        .boxed()
}

/// Sets the caller's language: problem titles follow it before
/// `Accept-Language`.
#[utoipa::path(put, path = "/api/v1/me/preferences", tag = "preferences",
    request_body(content = PreferencesBody, content_type = "application/json"),
    params(ChangeHeaders),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Set; the preferences with their new version's `ETag`; `xentri.user.preferences.updated.v1` appended", body = UserPreferences,
            headers(("ETag" = String, description = "The new version, in quotes"))),
        (status = 412, description = "If-Match names another version than the current one (`\"0\"` before the first choice)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "A language that is not supported, or other fields breaking their rules (`errors` lists them); or the key was used with another request", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, OrgGranted, MutationUnavailable, MalformedChange, JsonOnly, IfMatchRequired, KeyInFlight,
    ))]
pub fn put_preferences(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "me" / "preferences"), warp::put(), state, auth, write_preferences)
}

/// Reads the org's settings.
#[utoipa::path(get, path = "/api/v1/org/settings", tag = "preferences",
    params(OrgHeader),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The org's settings (`default_language` null and version 0 when never set), with the version's `ETag`", body = OrgSettings,
            headers(("ETag" = String, description = "The version, in quotes: send it as `If-Match` to change them"))),
        Guarded, OrgGranted, MalformedOrg, ReadUnavailable,
    ))]
pub fn get_org_settings(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "org" / "settings")
        .and(warp::get())
        .and(authenticated(auth))
        .and(with_state(state))
        .then(read_org_settings)
        .map(respond)
        .boxed()
}

/// Sets the org's default language (admins only, `org_role` `org:admin`):
/// problem titles fall back to it when neither the user's choice nor
/// `Accept-Language` names one.
#[utoipa::path(put, path = "/api/v1/org/settings", tag = "preferences",
    request_body(content = OrgSettingsBody, content_type = "application/json"),
    params(ChangeHeaders),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Set; the settings with their new version's `ETag`; `xentri.org.settings.updated.v1` appended", body = OrgSettings,
            headers(("ETag" = String, description = "The new version, in quotes"))),
        (status = 403, description = "x-org-id names an org the token does not grant, or the caller is not the org's admin", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names another version than the current one (`\"0\"` before the first choice)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "A language that is not supported, or other fields breaking their rules (`errors` lists them); or the key was used with another request", body = ProblemDocument, content_type = "application/problem+json"),
        Guarded, MutationUnavailable, MalformedChange, JsonOnly, IfMatchRequired, KeyInFlight,
    ))]
pub fn put_org_settings(state: AppState, auth: Arc<Authenticator>) -> BoxedFilter<(Response,)> {
    mutating!(warp::path!("api" / "v1" / "org" / "settings"), warp::put(), state, auth, write_org_settings)
}

/// A JSON answer of `body` with the `ETag` of `version`.
fn versioned(body: &impl serde::Serialize, version: i64) -> Result<Response, ApiError> {
    let text = serde_json::to_string(body).map_err(|e| ApiError::Internal(e.into()))?;
    let mut response = json_response(StatusCode::OK, text);
    set_etag(&mut response, version);
    Ok(response)
}

async fn read_preferences(principal: Result<Principal, ApiError>, state: AppState) -> Result<Response, ApiError> {
    let principal = principal?;
    let preferences = preferences::user(&state, principal.org_id, &principal.subject).await?;
    versioned(&preferences, preferences.version)
}

async fn write_preferences(
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    let if_match = precondition::if_match(&headers)?;
    require_json(&headers)?;
    let (canonical, language) = parse_language(&body, "language")?;
    let request = Mutating::read(principal, &context, &headers, "PUT", "/api/v1/me/preferences", &canonical)?;
    let correlation_id = request.correlation_id.clone();
    Ok(answer(preferences::set_user(&state, request, if_match, language).await?, &correlation_id))
}

async fn read_org_settings(principal: Result<Principal, ApiError>, state: AppState) -> Result<Response, ApiError> {
    let principal = principal?;
    let settings = preferences::org(&state, principal.org_id).await?;
    versioned(&settings, settings.version)
}

async fn write_org_settings(
    principal: Result<Principal, ApiError>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
    state: AppState,
) -> Result<Response, ApiError> {
    let principal = principal?;
    if principal.org_role.as_deref() != Some(ADMIN_ROLE) {
        return Err(Problem::new(ProblemKind::Forbidden, "Only the org's admins may change its settings").into());
    }
    let if_match = precondition::if_match(&headers)?;
    require_json(&headers)?;
    let (canonical, language) = parse_language(&body, "default_language")?;
    let request = Mutating::read(principal, &context, &headers, "PUT", "/api/v1/org/settings", &canonical)?;
    let correlation_id = request.correlation_id.clone();
    Ok(answer(preferences::set_org(&state, request, if_match, language).await?, &correlation_id))
}

/// Parses a body of one required field, `field`: a supported language's code
/// or null. Also returns the body as a JSON value, for the request's hash.
pub fn parse_language(body: &[u8], field: &str) -> Result<(Value, Option<Lang>), ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::new(ProblemKind::MalformedRequest, format!("The request body is not valid JSON: {e}")))?;
    let error = |field: &str, message: &str| FieldError { field: field.to_owned(), message: message.to_owned() };
    let Value::Object(object) = &value else {
        return Err(Problem::validation(vec![error("body", "must be a JSON object")]).into());
    };
    let mut errors: Vec<FieldError> =
        object.keys().filter(|key| key.as_str() != field).map(|key| error(key, "unknown field")).collect();
    let codes = Lang::ALL.map(Lang::code).join(", ");
    let language = match object.get(field) {
        None => {
            errors.push(error(field, &format!("is required: one of {codes}, or null")));
            None
        }
        Some(Value::Null) => None,
        Some(Value::String(code)) => match Lang::parse(code) {
            Some(lang) => Some(lang),
            None => {
                errors.push(error(field, &format!("must be one of {codes}, or null")));
                None
            }
        },
        Some(_) => {
            errors.push(error(field, &format!("must be one of {codes}, or null")));
            None
        }
    };
    if errors.is_empty() { Ok((value, language)) } else { Err(Problem::validation(errors).into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(result: Result<(Value, Option<Lang>), ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Problem(problem)) => problem.errors.into_iter().map(|e| e.field).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn a_language_is_a_supported_code_or_null() {
        assert_eq!(parse_language(br#"{"language":"fr"}"#, "language").ok().map(|(_, l)| l), Some(Some(Lang::Fr)));
        assert_eq!(parse_language(br#"{"language":null}"#, "language").ok().map(|(_, l)| l), Some(None));
        assert_eq!(fields(parse_language(br#"{"language":"it"}"#, "language")), ["language"]);
        assert_eq!(fields(parse_language(br#"{"language":7}"#, "language")), ["language"]);
        assert_eq!(fields(parse_language(br#"{}"#, "language")), ["language"]);
        assert_eq!(fields(parse_language(br#"{"language":"de","theme":"dark"}"#, "language")), ["theme"]);
    }
}
