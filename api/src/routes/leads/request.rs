//! What a request to the lead routes says, parsed and checked: a creation
//! ([`NewLeadBody`]), an import ([`LeadImportBody`]), a change of fields
//! ([`LeadPatchBody`]), a transition ([`LeadTransitionBody`]) and the list's query
//! ([`ListParams`]). These types are also what the OpenAPI document is
//! generated from. Every field error is reported at once; an import's name
//! the row by index (`/leads/3/email`).

use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::leads::FieldChanges;
use crate::leads::list::{self, ListQuery, MAX_LIMIT};
use crate::leads::machine::LeadStatus;
use crate::leads::store::{LeadSource, NewLead};
use crate::problem::{ApiError, FieldError, Problem, ProblemKind};

/// Longest name and company, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest email address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Most leads in one import.
pub const MAX_IMPORT: usize = 1000;

/// A new lead.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLeadBody {
    /// The contact's name: 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, example = "Ada Lovelace")]
    pub name: String,
    /// The contact's email address (`local@domain.tld`): at most 254 characters.
    #[schema(max_length = 254, example = "ada@example.com")]
    pub email: String,
    /// The contact's company: 1 to 200 characters; absent or null when unknown.
    #[schema(min_length = 1, max_length = 200, example = "Analytical Engines Ltd")]
    pub company: Option<String>,
    /// Where the lead came from.
    pub source: LeadSource,
}

/// An import: up to 1,000 new leads, created all or none.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadImportBody {
    /// The leads, 1 to 1,000.
    #[schema(min_items = 1, max_items = 1000)]
    pub leads: Vec<NewLeadBody>,
}

/// New values of a lead's fields (JSON merge patch): an absent field stays as
/// it is; `company: null` clears the company. At least one field. The status
/// changes only through transitions, the source never.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadPatchBody {
    /// A new name: 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, nullable = false)]
    pub name: Option<String>,
    /// A new email address.
    #[schema(max_length = 254, nullable = false)]
    pub email: Option<String>,
    /// A new company (1 to 200 characters), or null to clear it.
    #[schema(min_length = 1, max_length = 200)]
    pub company: Option<String>,
}

/// A transition of the Lead Lifecycle Flow.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadTransitionBody {
    /// The status to go to.
    pub to: LeadStatus,
    /// Why, recorded on the transition's events: at most 500 characters.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// The list's query parameters, as the OpenAPI document states them.
#[derive(Debug, Clone, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only leads of this status.
    #[param(value_type = Option<LeadStatus>)]
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(required = false, minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<i64>,
    /// The `next` cursor of a previous page (opaque).
    #[param(min_length = 48, max_length = 48, pattern = "^[0-9a-f]{48}$")]
    pub after: Option<String>,
}

/// Parses a creation; also returns the body as a JSON value, for the request's hash.
pub fn parse_create(body: &[u8]) -> Result<(Value, NewLead), ApiError> {
    let (value, object) = object(body)?;
    let mut errors = Vec::new();
    let lead = lead(&object, &|name| name.to_owned(), &mut errors);
    match lead {
        Some(lead) if errors.is_empty() => Ok((value, lead)),
        _ => Err(Problem::validation(errors).into()),
    }
}

/// Parses an import: every bad row is reported, each field by its pointer
/// (`/leads/3/email`); more than [`MAX_IMPORT`] leads is refused outright.
pub fn parse_import(body: &[u8]) -> Result<(Value, Vec<NewLead>), ApiError> {
    let (value, object) = object(body)?;
    let mut errors = unknown_fields(&object, &["leads"], &|name| format!("/{name}"));
    let rows = match object.get("leads") {
        Some(Value::Array(rows)) if rows.is_empty() => {
            errors.push(error("/leads", "must hold at least one lead"));
            None
        }
        Some(Value::Array(rows)) if rows.len() > MAX_IMPORT => {
            errors.push(error(
                "/leads",
                &format!("holds {} leads: an import takes at most {MAX_IMPORT}; split it", rows.len()),
            ));
            None
        }
        Some(Value::Array(rows)) => Some(rows),
        None | Some(Value::Null) => {
            errors.push(error("/leads", "is required"));
            None
        }
        Some(_) => {
            errors.push(error("/leads", "must be an array of leads"));
            None
        }
    };
    let mut leads = Vec::with_capacity(rows.map_or(0, Vec::len));
    for (index, row) in rows.into_iter().flatten().enumerate() {
        let pointer = |name: &str| format!("/leads/{index}/{name}");
        match row {
            Value::Object(row) => leads.extend(lead(row, &pointer, &mut errors)),
            _ => errors.push(error(&format!("/leads/{index}"), "must be a JSON object")),
        }
    }
    if errors.is_empty() { Ok((value, leads)) } else { Err(Problem::validation(errors).into()) }
}

/// Parses a change of fields; also returns the body as a JSON value.
pub fn parse_patch(body: &[u8]) -> Result<(Value, FieldChanges), ApiError> {
    let (value, object) = object(body)?;
    let mut errors = Vec::new();
    for key in object.keys() {
        match key.as_str() {
            "name" | "email" | "company" => {}
            "status" => errors.push(error(key, "changes only through POST /api/v1/sales/leads/{id}/transitions")),
            "source" => errors.push(error(key, "cannot be changed")),
            _ => errors.push(error(key, "unknown field")),
        }
    }
    let name = object.get("name").and_then(|v| text("name", v, MAX_TEXT_CHARS, true, &mut errors));
    let email = object.get("email").and_then(|v| email("email", v, &mut errors));
    let company = match object.get("company") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => text("company", v, MAX_TEXT_CHARS, false, &mut errors).map(Some),
    };
    if object.is_empty() {
        errors.push(error("body", "must change at least one of name, email, company"));
    }
    if errors.is_empty() {
        Ok((value, FieldChanges { name, email, company }))
    } else {
        Err(Problem::validation(errors).into())
    }
}

/// Parses a transition; also returns the body as a JSON value.
pub fn parse_transition(body: &[u8]) -> Result<(Value, LeadStatus, Option<String>), ApiError> {
    let (value, object) = object(body)?;
    let mut errors = unknown_fields(&object, &["to", "reason"], &|name| name.to_owned());
    let to = match object.get("to") {
        None | Some(Value::Null) => {
            errors.push(error("to", "is required"));
            None
        }
        Some(Value::String(name)) => LeadStatus::parse(name).or_else(|| {
            let names: Vec<&str> = LeadStatus::ALL.iter().map(|s| s.as_str()).collect();
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
        Some(v) => text("reason", v, MAX_REASON_CHARS, false, &mut errors),
    };
    match to {
        Some(to) if errors.is_empty() => Ok((value, to, reason)),
        _ => Err(Problem::validation(errors).into()),
    }
}

/// Parses the list's query string: unknown, repeated or malformed parameters
/// are a 400 listing each.
pub fn parse_list_query(raw: &str) -> Result<ListQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| Problem::new(ProblemKind::MalformedRequest, "The query string is malformed"))?;
    let mut query = ListQuery::default();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, value) in pairs {
        let field = format!("query.{name}");
        if !seen.insert(name.clone()) {
            errors.push(error(&field, "is given more than once"));
            continue;
        }
        match name.as_str() {
            "limit" => match value.parse::<i64>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => query.limit = limit,
                _ => errors.push(error(&field, &format!("must be an integer from 1 to {MAX_LIMIT}"))),
            },
            "after" => match list::parse_cursor(&value) {
                Some(after) => query.after = Some(after),
                None => errors.push(error(&field, "must be a cursor returned as next")),
            },
            "status" => match LeadStatus::parse(&value) {
                Some(status) => query.status = Some(status),
                None => {
                    let names: Vec<&str> = LeadStatus::ALL.iter().map(|s| s.as_str()).collect();
                    errors.push(error(&field, &format!("must be one of {}", names.join(", "))));
                }
            },
            _ => errors.push(error(&field, "unknown parameter")),
        }
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        Err(Problem { kind: ProblemKind::MalformedRequest, detail, errors, transitions: None }.into())
    }
}

/// Whether `address` is an email address as the api takes it: at most 254
/// characters; a local part of 1 to 64 visible ASCII characters without
/// `"(),:;<>[\]@`; a domain of at least two dot-separated labels of letters,
/// digits and inner hyphens (1 to 63 each), the last of at least two letters.
pub fn valid_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else { return false };
    let local_ok = (1..=64).contains(&local.len())
        && local.bytes().all(|b| b.is_ascii_graphic() && !br#""(),:;<>[\]@"#.contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    address.len() <= MAX_EMAIL_CHARS && local_ok && domain_ok
}

/// A lead's fields from `object`, each error's field named by `name`.
fn lead(object: &Map<String, Value>, name: &dyn Fn(&str) -> String, errors: &mut Vec<FieldError>) -> Option<NewLead> {
    let before = errors.len();
    errors.extend(unknown_fields(object, &["name", "email", "company", "source"], name));
    let required = |field: &str, errors: &mut Vec<FieldError>| errors.push(error(&name(field), "is required"));
    let lead_name = match object.get("name") {
        None | Some(Value::Null) => {
            required("name", errors);
            None
        }
        Some(v) => text(&name("name"), v, MAX_TEXT_CHARS, true, errors),
    };
    let lead_email = match object.get("email") {
        None | Some(Value::Null) => {
            required("email", errors);
            None
        }
        Some(v) => email(&name("email"), v, errors),
    };
    let company = match object.get("company") {
        None | Some(Value::Null) => None,
        Some(v) => text(&name("company"), v, MAX_TEXT_CHARS, false, errors),
    };
    let source = match object.get("source") {
        None | Some(Value::Null) => {
            required("source", errors);
            None
        }
        Some(Value::String(text)) if LeadSource::parse(text).is_some() => LeadSource::parse(text),
        Some(_) => {
            errors.push(error(&name("source"), "must be one of form, import, manual"));
            None
        }
    };
    match (lead_name, lead_email, source) {
        (Some(name), Some(email), Some(source)) if errors.len() == before => {
            Some(NewLead { name, email, company, source })
        }
        _ => None,
    }
}

/// A string of 1 to `max` characters (not only spaces when `not_blank`).
fn text(field: &str, value: &Value, max: usize, not_blank: bool, errors: &mut Vec<FieldError>) -> Option<String> {
    let Value::String(text) = value else {
        errors.push(error(field, "must be a string"));
        return None;
    };
    let chars = text.chars().count();
    if chars == 0 || chars > max {
        errors.push(error(field, &format!("must be 1 to {max} characters")));
        None
    } else if not_blank && text.trim().is_empty() {
        errors.push(error(field, "must not be only spaces"));
        None
    } else if text.chars().any(char::is_control) {
        errors.push(error(field, "must not hold control characters"));
        None
    } else {
        Some(text.clone())
    }
}

/// An email address ([`valid_email`]).
fn email(field: &str, value: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
    match value {
        Value::String(address) if valid_email(address) => Some(address.clone()),
        Value::String(_) => {
            errors.push(error(field, "must be an email address, e.g. ada@example.com"));
            None
        }
        _ => {
            errors.push(error(field, "must be a string"));
            None
        }
    }
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

fn unknown_fields(object: &Map<String, Value>, known: &[&str], name: &dyn Fn(&str) -> String) -> Vec<FieldError> {
    object.keys().filter(|key| !known.contains(&key.as_str())).map(|key| error(&name(key), "unknown field")).collect()
}

fn error(field: &str, message: &str) -> FieldError {
    FieldError { field: field.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests;
