//! What a request to the Soul routes says, parsed and checked: a transition
//! ([`TransitionBody`]) and a replacement of the content ([`ContentBody`]).
//! These types are also what the OpenAPI document is generated from. Every
//! field error is reported at once.

use serde_json::Value;
use utoipa::ToSchema;

use crate::problem::{ApiError, FieldError, Problem, ProblemKind};
use crate::soul::machine::SoulState;
use crate::soul::store::Sections;

/// Most sections a Soul holds.
pub const MAX_SECTIONS: usize = 100;
/// Longest `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// A transition of the Soul Generation Flow.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// The state to go to. `conversing` from `conversing` records an answer
    /// (`sections` required); `review_pending` from `drafting` delivers the
    /// draft (service tokens only, `sections` required); other transitions
    /// carry no sections.
    pub to: SoulState,
    /// Why, recorded on the transition's event: at most 500 characters.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// An answer's or a draft's named sections: names of `a-z`, `0-9` and `_`
    /// starting with a letter, at most 64 characters; at most 100 sections;
    /// values any JSON but null. An answer adds or replaces its sections, a
    /// draft is the whole content.
    #[schema(value_type = Option<Object>, example = json!({"mission": "We help small teams ship."}))]
    pub sections: Option<Sections>,
}

/// The Soul's new content.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentBody {
    /// The whole content, named sections as in a transition's `sections`
    /// (possibly none).
    #[schema(value_type = Object, example = json!({"mission": "We help small teams ship.", "voice": "warm"}))]
    pub content: Sections,
}

/// A creation's body: empty, or a JSON object without fields.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {}

/// Parses a transition; also returns the body as a JSON value, for the
/// request's hash.
pub fn parse_transition(body: &[u8]) -> Result<(Value, TransitionBody), ApiError> {
    let (value, object) = object(body)?;
    let mut errors = unknown_fields(&object, &["to", "reason", "sections"]);
    let to = match object.get("to") {
        None | Some(Value::Null) => {
            errors.push(error("to", "is required"));
            None
        }
        Some(Value::String(name)) => SoulState::parse(name).or_else(|| {
            let states: Vec<&str> = SoulState::ALL.iter().map(|s| s.as_str()).collect();
            errors.push(error("to", &format!("must be one of {}", states.join(", "))));
            None
        }),
        Some(_) => {
            errors.push(error("to", "must be a string"));
            None
        }
    };
    let reason = match object.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.chars().count() <= MAX_REASON_CHARS => Some(text.clone()),
        Some(Value::String(_)) => {
            errors.push(error("reason", &format!("must be at most {MAX_REASON_CHARS} characters")));
            None
        }
        Some(_) => {
            errors.push(error("reason", "must be a string"));
            None
        }
    };
    let sections = match object.get("sections") {
        None | Some(Value::Null) => None,
        Some(value) => sections("sections", value, &mut errors),
    };
    match to {
        Some(to) if errors.is_empty() => Ok((value, TransitionBody { to, reason, sections })),
        _ => Err(Problem::validation(errors).into()),
    }
}

/// Parses a replacement of the content; also returns the body as a JSON value.
pub fn parse_content(body: &[u8]) -> Result<(Value, ContentBody), ApiError> {
    let (value, object) = object(body)?;
    let mut errors = unknown_fields(&object, &["content"]);
    let content = match object.get("content") {
        None | Some(Value::Null) => {
            errors.push(error("content", "is required"));
            None
        }
        Some(value) => sections("content", value, &mut errors),
    };
    match content {
        Some(content) if errors.is_empty() => Ok((value, ContentBody { content })),
        _ => Err(Problem::validation(errors).into()),
    }
}

/// The body of a creation: empty, or a JSON object without fields.
pub fn parse_create(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    let (value, object) = object(body)?;
    let errors = unknown_fields(&object, &[]);
    if errors.is_empty() { Ok(value) } else { Err(Problem::validation(errors).into()) }
}

/// A section's name: `a-z`, `0-9` and `_`, starting with a letter, 1 to 64
/// characters.
pub fn valid_section_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn object(body: &[u8]) -> Result<(Value, serde_json::Map<String, Value>), ApiError> {
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

fn unknown_fields(object: &serde_json::Map<String, Value>, known: &[&str]) -> Vec<FieldError> {
    object.keys().filter(|key| !known.contains(&key.as_str())).map(|key| error(key, "unknown field")).collect()
}

fn sections(field: &str, value: &Value, errors: &mut Vec<FieldError>) -> Option<Sections> {
    let Value::Object(map) = value else {
        errors.push(error(field, "must be a JSON object of named sections"));
        return None;
    };
    let before = errors.len();
    if map.len() > MAX_SECTIONS {
        errors.push(error(field, &format!("must have at most {MAX_SECTIONS} sections")));
    }
    for (name, section) in map {
        if !valid_section_name(name) {
            errors.push(error(
                &format!("{field}.{name}"),
                "a section's name is 1-64 characters of a-z, 0-9 and _, starting with a letter",
            ));
        } else if section.is_null() {
            errors.push(error(&format!("{field}.{name}"), "must not be null"));
        }
    }
    (errors.len() == before).then(|| map.clone())
}

fn error(field: &str, message: &str) -> FieldError {
    FieldError { field: field.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(result: Result<(Value, TransitionBody), ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Problem(problem)) => problem.errors.into_iter().map(|e| e.field).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn transitions() {
        let (_, body) = parse_transition(br#"{"to":"drafting","reason":"ready"}"#).expect("valid");
        assert_eq!(body.to, SoulState::Drafting);
        assert_eq!(body.reason.as_deref(), Some("ready"));
        let (_, body) = parse_transition(br#"{"to":"conversing","sections":{"mission":"x"}}"#).expect("valid");
        assert_eq!(body.sections.map(|s| s.len()), Some(1));
        assert_eq!(
            fields(parse_transition(br#"{"to":"done","sections":{"Bad":1,"ok":null},"x":1}"#)),
            ["x", "to", "sections.Bad", "sections.ok"]
        );
        assert_eq!(fields(parse_transition(br#"{}"#)), ["to"]);
        assert!(parse_transition(b"[").is_err());
    }

    #[test]
    fn contents_and_creations() {
        assert!(parse_content(br#"{"content":{}}"#).is_ok());
        assert!(parse_content(br#"{"content":[]}"#).is_err());
        assert!(parse_content(br#"{}"#).is_err());
        assert!(parse_create(b"").is_ok());
        assert!(parse_create(b"{}").is_ok());
        assert!(parse_create(br#"{"state":"approved"}"#).is_err());
    }

    #[test]
    fn section_names() {
        for good in ["a", "mission", "brand_voice_2", &"a".repeat(64)] {
            assert!(valid_section_name(good), "{good}");
        }
        for bad in ["", "1a", "_a", "Mission", "a-b", "a b", &"a".repeat(65)] {
            assert!(!valid_section_name(bad), "{bad}");
        }
    }
}
