//! What a request to the site routes says, parsed and checked: a creation
//! ([`NewSiteBody`]), an edit ([`SitePatchBody`]) and a transition
//! ([`SiteTransitionBody`]). These types are also what the OpenAPI document
//! is generated from. Every field error is reported at once: top-level
//! fields by name, the pages' by JSON pointer (`/pages/0/blocks/2/src`), as
//! [`xentri_core::site::page`] checks them.

use serde_json::{Map, Value};
use utoipa::ToSchema;
use xentri_core::site::machine::SiteState;
use xentri_core::site::page::{self, Page};

use crate::problem::{ApiError, FieldError, Problem, ProblemKind};
use crate::sites::Change;

/// Longest `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// A new site.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSiteBody {
    /// The site's name: 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, example = "Acme Bakery")]
    pub name: String,
    /// Its pages (0 to 50; absent for none): slugs unique.
    #[schema(max_items = 50)]
    pub pages: Option<Vec<Page>>,
}

/// New content of a site: a name, the whole list of pages, or both. The site
/// goes back to `draft` (from `preview`, `live` or `failed`).
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SitePatchBody {
    /// A new name: 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, nullable = false)]
    pub name: Option<String>,
    /// New pages, replacing all of them (0 to 50).
    #[schema(max_items = 50, nullable = false)]
    pub pages: Option<Vec<Page>>,
}

/// A user's transition of the Website Publish Flow: `draft → preview`,
/// `preview → draft | publishing`, `failed → draft`, `live → draft`.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteTransitionBody {
    /// The state to go to.
    pub to: SiteState,
    /// Why, recorded on the transition's event: at most 500 characters.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// Parses a creation; also returns the body as a JSON value, for the request's hash.
pub fn parse_create(body: &[u8]) -> Result<(Value, String, Vec<Page>), ApiError> {
    let (value, object) = object(body)?;
    let mut errors = unknown_fields(&object, &["name", "pages"]);
    let name = match object.get("name") {
        None | Some(Value::Null) => {
            errors.push(error("name", "is required"));
            None
        }
        Some(value) => name(value, &mut errors),
    };
    let pages = match object.get("pages") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(value) => pages(value, &mut errors),
    };
    match (name, pages) {
        (Some(name), Some(pages)) if errors.is_empty() => Ok((value, name, pages)),
        _ => Err(Problem::validation(errors).into()),
    }
}

/// Parses an edit; also returns the body as a JSON value.
pub fn parse_patch(body: &[u8]) -> Result<(Value, Change), ApiError> {
    let (value, object) = object(body)?;
    let mut errors = Vec::new();
    for key in object.keys() {
        match key.as_str() {
            "name" | "pages" => {}
            "state" => errors.push(error(key, "changes only through POST /api/v1/marketing/sites/{id}/transitions")),
            _ => errors.push(error(key, "unknown field")),
        }
    }
    let new_name = object.get("name").and_then(|value| name(value, &mut errors));
    let new_pages = object.get("pages").and_then(|value| pages(value, &mut errors));
    if object.is_empty() {
        errors.push(error("body", "must change at least one of name, pages"));
    }
    if errors.is_empty() {
        Ok((value, Change::Edit { name: new_name, pages: new_pages }))
    } else {
        Err(Problem::validation(errors).into())
    }
}

/// Parses a transition; also returns the body as a JSON value.
pub fn parse_transition(body: &[u8]) -> Result<(Value, Change), ApiError> {
    let (value, object) = object(body)?;
    let mut errors = unknown_fields(&object, &["to", "reason"]);
    let to = match object.get("to") {
        None | Some(Value::Null) => {
            errors.push(error("to", "is required"));
            None
        }
        Some(Value::String(name)) => SiteState::parse(name).or_else(|| {
            let names: Vec<&str> = SiteState::ALL.iter().map(|s| s.as_str()).collect();
            errors.push(error("to", &format!("must be one of {}", names.join(", "))));
            None
        }),
        Some(_) => {
            errors.push(error("to", "must be a string"));
            None
        }
    };
    let reason = match object.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) if reason.chars().count() > MAX_REASON_CHARS => {
            errors.push(error("reason", &format!("must be at most {MAX_REASON_CHARS} characters")));
            None
        }
        Some(Value::String(reason)) => Some(reason.clone()),
        Some(_) => {
            errors.push(error("reason", "must be a string"));
            None
        }
    };
    match to {
        Some(to) if errors.is_empty() => Ok((value, Change::Transition { to, reason })),
        _ => Err(Problem::validation(errors).into()),
    }
}

fn name(value: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
    let Value::String(name) = value else {
        errors.push(error("name", "must be a string"));
        return None;
    };
    match page::check_name(name) {
        Ok(()) => Some(name.clone()),
        Err(message) => {
            errors.push(error("name", &message));
            None
        }
    }
}

fn pages(value: &Value, errors: &mut Vec<FieldError>) -> Option<Vec<Page>> {
    page::parse_pages(value, "/pages")
        .map_err(|found| errors.extend(found.into_iter().map(|e| FieldError { field: e.pointer, message: e.message })))
        .ok()
}

fn object(body: &[u8]) -> Result<(Value, Map<String, Value>), ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::new(ProblemKind::MalformedRequest, format!("The request body is not valid JSON: {e}")))?;
    match &value {
        Value::Object(object) => {
            let object = object.clone();
            Ok((value, object))
        }
        _ => Err(Problem::validation(vec![error("body", "must be a JSON object")]).into()),
    }
}

fn unknown_fields(object: &Map<String, Value>, known: &[&str]) -> Vec<FieldError> {
    object.keys().filter(|key| !known.contains(&key.as_str())).map(|key| error(key, "unknown field")).collect()
}

fn error(field: &str, message: &str) -> FieldError {
    FieldError { field: field.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(result: Result<impl std::fmt::Debug, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Problem(problem)) => problem.errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a problem, got {other:?}"),
        }
    }

    fn bytes(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).expect("serialise")
    }

    #[test]
    fn a_creation_reads_and_reports_every_bad_field() {
        let (_, name, pages) = parse_create(&bytes(json!({"name": "Acme", "pages": [
            {"slug": "home", "title": "Home", "blocks": [{"type": "text", "text": "Hi"}]}
        ]})))
        .expect("valid");
        assert_eq!((name.as_str(), pages.len()), ("Acme", 1));
        assert!(parse_create(&bytes(json!({"name": "Acme"}))).is_ok_and(|(_, _, pages)| pages.is_empty()));
        let got = fields(parse_create(&bytes(json!({"name": " ", "colour": "red", "pages": [
            {"slug": "home", "title": "Home", "blocks": [{"type": "image", "src": "javascript:x", "alt": ""}]}
        ]}))));
        assert_eq!(got, ["colour", "name", "/pages/0/blocks/0/src"]);
    }

    #[test]
    fn an_edit_changes_something_and_never_the_state() {
        assert_eq!(fields(parse_patch(&bytes(json!({})))), ["body"]);
        assert_eq!(fields(parse_patch(&bytes(json!({"state": "live"})))), ["state"]);
        let (_, change) = parse_patch(&bytes(json!({"name": "New"}))).expect("valid");
        assert_eq!(change, Change::Edit { name: Some("New".into()), pages: None });
    }

    #[test]
    fn a_transition_names_a_state() {
        let (_, change) = parse_transition(&bytes(json!({"to": "preview", "reason": "ready"}))).expect("valid");
        assert_eq!(change, Change::Transition { to: SiteState::Preview, reason: Some("ready".into()) });
        assert_eq!(fields(parse_transition(&bytes(json!({"to": "gone"})))), ["to"]);
        assert_eq!(fields(parse_transition(&bytes(json!({"reason": 3})))), ["to", "reason"]);
    }
}
