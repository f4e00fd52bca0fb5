//! The server's rules on what it is sent, as the OpenAPI document states them
//! where an attribute cannot: the list's type filter (one of two shapes) and
//! cursor, and the `Idempotency-Key`, `x-org-id`, `x-correlation-id` and
//! `If-Match` headers. [`Rules`] puts
//! them on the parameters they belong to.
//!
//! The tests below hold every pattern the document states, here or in an
//! attribute, to the parser that enforces it: a value matches the pattern
//! exactly when the server takes it.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use xentri_core::event::MAX_TYPE_LEN;

use crate::auth::ORG_HEADER;
use crate::auth::claims::CLERK_ORG_MAX_LEN;
use crate::domain::request::CORRELATION_HEADER;
use crate::idempotency::{self, MAX_KEY_LEN};

/// Puts the schemas below on the parameters they belong to, wherever the
/// document has them; their descriptions stay the attributes'.
pub struct Rules;

impl Modify for Rules {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            let parameters = operations.into_iter().flatten().flat_map(|op| op.parameters.iter_mut().flatten());
            for parameter in parameters {
                if let Some(schema) = schema_of(path, &parameter.parameter_in, &parameter.name) {
                    parameter.schema = Some(schema.into());
                }
            }
        }
    }
}

/// The schema of parameter `name` in `place` of an operation on `path`,
/// where its attribute cannot state it.
fn schema_of(path: &str, place: &ParameterIn, name: &str) -> Option<Schema> {
    match place {
        ParameterIn::Header if name.eq_ignore_ascii_case(idempotency::HEADER) => Some(idempotency_key()),
        ParameterIn::Header if name.eq_ignore_ascii_case(ORG_HEADER) => Some(org_ref()),
        ParameterIn::Header if name.eq_ignore_ascii_case(CORRELATION_HEADER) => Some(correlation_header()),
        ParameterIn::Header if name.eq_ignore_ascii_case(http::header::IF_MATCH.as_str()) => Some(if_match()),
        ParameterIn::Query if path == "/api/v1/events" && name == "type" => Some(type_filter()),
        ParameterIn::Query if path == "/api/v1/events" && name == "after" => Some(cursor()),
        _ => None,
    }
}

/// An event type name (`xentri_core::EventType`), besides at most
/// [`MAX_TYPE_LEN`] characters; as the attributes of the event schemas state it.
const EVENT_TYPE_PATTERN: &str = r"^xentri\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,2}\.v[1-9][0-9]*$";

/// The second shape of a type filter (`xentri_core::TypeFilter`): `xentri.`,
/// up to three whole words each followed by a dot, then `*`.
const TYPE_PREFIX_PATTERN: &str = r"^xentri\.([a-z][a-z0-9_]*\.){0,3}\*$";

/// `type` of the list: one event type, or a prefix ending in `.*`.
fn type_filter() -> Schema {
    let exact = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(EVENT_TYPE_PATTERN))
        .max_length(Some(MAX_TYPE_LEN))
        .examples(["xentri.soul.updated.v1"]);
    let prefix =
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(TYPE_PREFIX_PATTERN)).examples(["xentri.soul.*"]);
    AnyOfBuilder::new().item(exact).item(prefix).into()
}

/// The pattern of a cursor (`Position::parse_cursor`): the writing
/// transaction and the `seq`, each 1 to 20 decimal digits, the first at most
/// `u64::MAX`, the second at most `i64::MAX`.
fn cursor_pattern() -> String {
    format!("^({})-({})$", decimal_at_most(u64::MAX, 20), decimal_at_most(i64::MAX.unsigned_abs(), 20))
}

/// `after` of the list.
fn cursor() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(cursor_pattern()))
        .max_length(Some(41))
        .examples(["7351-1042"])
        .into()
}

/// The `Idempotency-Key` header: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
fn idempotency_key() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[!-~]{{1,{MAX_KEY_LEN}}}$")))
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_LEN))
        .examples(["order-42-create"])
        .into()
}

/// The `x-correlation-id` header: 1 to 128 characters of `A-Z a-z 0-9 . _ : -`.
fn correlation_header() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^[A-Za-z0-9._:-]{1,128}$"))
        .min_length(Some(1))
        .max_length(Some(128))
        .examples(["onboarding-7"])
        .into()
}

/// The `If-Match` header of an update: strong tags of versions (up to 18
/// digits), comma-separated. (`*` is a 428, so not stated as taken.)
fn if_match() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r#"^"[0-9]{1,18}"([ \t]*,[ \t]*"[0-9]{1,18}")*$"#))
        .examples(["\"3\""])
        .into()
}

/// The `x-org-id` header: a UUID, or a Clerk organisation id (`org_` and
/// letters and digits, at most [`CLERK_ORG_MAX_LEN`] characters in all).
fn org_ref() -> Schema {
    let uuid =
        ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
    let clerk = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^org_[A-Za-z0-9]{{1,{}}}$", CLERK_ORG_MAX_LEN - "org_".len())))
        .max_length(Some(CLERK_ORG_MAX_LEN))
        .examples(["org_2abcDEF123"]);
    AnyOfBuilder::new().item(uuid).item(clerk).into()
}

/// A regular expression (no anchors) for the decimal numbers of 1 to `width`
/// digits, leading zeros allowed, whose value is at most `max`.
fn decimal_at_most(max: u64, width: usize) -> String {
    let max = max.to_string();
    let digits = max.len();
    // As many digits as `max` (behind the leading zeros the width leaves):
    // equal to `max` up to some digit, lower at it, anything after it.
    let mut as_long = Vec::new();
    for (at, digit) in max.bytes().enumerate() {
        if digit == b'0' {
            continue;
        }
        let lower = if digit == b'1' { "0".to_owned() } else { format!("[0-{}]", char::from(digit - 1)) };
        let rest = match digits - at - 1 {
            0 => String::new(),
            1 => "[0-9]".to_owned(),
            n => format!("[0-9]{{{n}}}"),
        };
        as_long.push(format!("{}{lower}{rest}", &max[..at]));
    }
    as_long.push(max.clone());
    let zeros = match width.saturating_sub(digits) {
        0 => String::new(),
        1 => "0?".to_owned(),
        n => format!("0{{0,{n}}}"),
    };
    // Fewer digits than `max`: any.
    format!("[0-9]{{1,{}}}|{zeros}({})", digits - 1, as_long.join("|"))
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use proptest::string::string_regex;
    use regex::Regex;
    use serde_json::Value;
    use utoipa::OpenApi;
    use xentri_core::store::Position;
    use xentri_core::{Actor, EventType, TypeFilter};

    use super::*;
    use crate::auth::claims::org_ref;
    use crate::idempotency::IdempotencyKey;
    use crate::routes::events::request::{DEFAULT_LIMIT, parse_list_query, parse_new_event};

    static DOCUMENT: LazyLock<Value> =
        LazyLock::new(|| serde_json::to_value(super::super::ApiDoc::openapi()).expect("the document serialises"));

    /// The schema at `pointer` (below `components/schemas`).
    fn component(pointer: &str) -> &'static Value {
        DOCUMENT.pointer(&format!("/components/schemas{pointer}")).unwrap_or_else(|| panic!("no schema {pointer}"))
    }

    /// The schema of parameter `name` of `method` on `path`.
    fn parameter(method: &str, path: &str, name: &str) -> &'static Value {
        let parameters = DOCUMENT["paths"][path][method]["parameters"].as_array().expect("parameters");
        let found = parameters.iter().find(|p| p["name"] == name);
        &found.unwrap_or_else(|| panic!("no parameter {name} on {method} {path}"))["schema"]
    }

    /// Whether `value` meets a string schema: pattern, length bounds,
    /// `format: uuid`, or any one of its `anyOf`.
    fn meets(schema: &Value, value: &str) -> bool {
        if let Some(any) = schema["anyOf"].as_array() {
            return any.iter().any(|one| meets(one, value));
        }
        let chars = value.chars().count() as u64;
        let pattern =
            schema["pattern"].as_str().is_none_or(|p| Regex::new(p).expect("a valid pattern").is_match(value));
        let min = schema["minLength"].as_u64().is_none_or(|min| chars >= min);
        let max = schema["maxLength"].as_u64().is_none_or(|max| chars <= max);
        let format = match schema["format"].as_str() {
            None => true,
            Some("uuid") => {
                let uuid = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
                Regex::new(uuid).expect("the uuid pattern").is_match(value)
            }
            Some(other) => panic!("format {other} is not checked here"),
        };
        pattern && min && max && format
    }

    fn strings(regex: &str) -> BoxedStrategy<String> {
        string_regex(regex).expect("a generator regex").boxed()
    }

    /// Event type names, valid or nearly.
    fn near_types() -> BoxedStrategy<String> {
        let long = (240usize..260).prop_map(|n| format!("xentri.a.{}.v1", "b".repeat(n)));
        prop_oneof![
            strings(r"xentri\.[a-z][a-z0-9_]{0,3}(\.[a-z][a-z0-9_]{0,3}){1,2}\.v[1-9][0-9]{0,2}"),
            strings(r"xentri(\.[a-z][a-z0-9_]{0,2}){0,5}\.[vV]?[0-9]{0,2}"),
            strings(r"(xentri|xentr|Xentri)?(\.[a-zA-Z0-9_-]{0,3}){0,5}(\.[vV][0-9]{0,2})?\.?\*?"),
            long,
        ]
        .boxed()
    }

    /// Correlation ids, valid or nearly.
    fn near_ids() -> BoxedStrategy<String> {
        prop_oneof![strings(r"[A-Za-z0-9._:/ é-]{0,8}"), strings(r"[a-z0-9._:-]{126,130}")].boxed()
    }

    /// Cursors, valid or nearly, many at the bounds of their numbers.
    fn near_cursors() -> BoxedStrategy<String> {
        let bound = prop_oneof![Just(i128::from(u64::MAX)), Just(i128::from(i64::MAX))];
        let near_bound = (bound, -2i128..3).prop_map(|(bound, by)| (bound + by).to_string());
        let number = prop_oneof![strings("[0-9]{0,21}"), near_bound, any::<u64>().prop_map(|n| n.to_string())];
        let part = (strings("0{0,2}"), number).prop_map(|(zeros, number)| zeros + &number);
        prop_oneof![(part.clone(), part).prop_map(|(a, b)| format!("{a}-{b}")), strings("[0-9a+ -]{0,8}")].boxed()
    }

    proptest! {
        #[test]
        fn event_types_are_stated_exactly(name in near_types()) {
            let taken = EventType::parse(&name).is_ok();
            prop_assert_eq!(meets(component("/NewEvent/properties/type"), &name), taken);
            prop_assert_eq!(meets(component("/StoredEvent/properties/type"), &name), taken);
        }

        #[test]
        fn type_filters_are_stated_exactly(
            filter in prop_oneof![
                near_types(),
                strings(r"xentri\.([a-z][a-z0-9_]{0,2}\.){0,5}\*?"),
                strings(r"xentri\.([a-zA-Z0-9_-]{0,2}\.){0,4}\*"),
            ]
        ) {
            let schema = parameter("get", "/api/v1/events", "type");
            prop_assert_eq!(meets(schema, &filter), TypeFilter::parse(&filter).is_ok());
        }

        #[test]
        fn correlation_and_causation_ids_are_stated_exactly(id in near_ids()) {
            let taken = xentri_core::event::validate_id("correlation_id", &id).is_ok();
            prop_assert_eq!(meets(component("/NewEvent/properties/correlation_id"), &id), taken);
            prop_assert_eq!(meets(component("/NewEvent/properties/causation_id"), &id), taken);
            prop_assert_eq!(meets(parameter("get", "/api/v1/events", "correlation_id"), &id), taken);
        }

        #[test]
        fn cursors_are_stated_exactly(cursor in near_cursors()) {
            let schema = parameter("get", "/api/v1/events", "after");
            prop_assert_eq!(meets(schema, &cursor), Position::parse_cursor(&cursor).is_ok());
        }

        #[test]
        fn actors_are_stated_exactly(actor in strings(r"(user|service|admin)?:?[ -~]{0,4}|user:[!-~]{254,256}")) {
            let schema = component("/StoredEvent/properties/actor");
            prop_assert_eq!(meets(schema, &actor), Actor::parse(&actor).is_ok());
        }

        /// Values as HTTP delivers them: without whitespace around them.
        #[test]
        fn idempotency_keys_are_stated_exactly(
            key in prop_oneof![strings(r"[ -~]{0,6}"), strings(r"[!-~]{250,258}"), strings(r"[!-~][ -~\t]{0,5}[!-~]")]
                .prop_map(|key| key.trim_matches([' ', '\t']).to_owned())
        ) {
            let mut headers = http::HeaderMap::new();
            headers.insert(crate::idempotency::HEADER, key.parse().expect("a header value"));
            let schema = parameter("post", "/api/v1/events", "Idempotency-Key");
            prop_assert_eq!(meets(schema, &key), IdempotencyKey::from_headers(&headers).is_ok());
        }

        /// Values as HTTP delivers them: without whitespace around them.
        #[test]
        fn correlation_headers_are_stated_exactly(
            id in prop_oneof![strings(r"[ -~]{0,6}"), strings(r"[A-Za-z0-9._:-]{126,130}")]
                .prop_map(|id| id.trim_matches([' ', '\t']).to_owned())
        ) {
            let mut headers = http::HeaderMap::new();
            headers.insert(CORRELATION_HEADER, id.parse().expect("a header value"));
            let schema = parameter("post", "/api/v1/soul", "x-correlation-id");
            prop_assert_eq!(meets(schema, &id), crate::domain::request::correlation_id(&headers).is_ok());
        }

        #[test]
        fn if_match_headers_are_stated_exactly(
            value in prop_oneof![
                strings(r#"("[0-9]{0,3}"|"?[0-9]{1,2}"?|\*|W/"[0-9]"|[ ,\t]){0,4}"#),
                strings(r#""[0-9]{17,19}""#),
            ].prop_map(|value| value.trim_matches([' ', '\t']).to_owned())
        ) {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::IF_MATCH, value.parse().expect("a header value"));
            let schema = parameter("put", "/api/v1/soul", "If-Match");
            let taken = crate::domain::precondition::if_match(&headers).is_ok();
            prop_assert_eq!(meets(schema, &value), taken);
        }

        /// Every value the document allows is taken; of `org_…` ones, exactly
        /// those. (The server takes other spellings of a UUID besides.)
        #[test]
        fn org_ids_are_stated(
            org in prop_oneof![
                strings(r"(org_|org|Org_)?[A-Za-z0-9_-]{0,4}"),
                strings(r"org_[A-Za-z0-9]{58,62}"),
                any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
                any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string().to_uppercase()),
            ]
        ) {
            let (method, path) = ("get", "/api/v1/events/{id}");
            let schema = parameter(method, path, crate::auth::ORG_HEADER);
            let taken = org_ref(&org).is_some();
            if org.starts_with("org_") {
                prop_assert_eq!(meets(schema, &org), taken);
            } else {
                prop_assert!(!meets(schema, &org) || taken);
            }
        }
    }

    #[test]
    fn headers_are_stated_on_every_operation_that_takes_them() {
        for (method, path) in [("post", "/api/v1/events"), ("get", "/api/v1/events"), ("get", "/api/v1/events/{id}")] {
            assert!(parameter(method, path, crate::auth::ORG_HEADER)["anyOf"].is_array(), "{method} {path}");
        }
        assert_eq!(parameter("post", "/api/v1/events", "Idempotency-Key")["maxLength"], 255);
    }

    #[test]
    fn the_limit_is_stated_exactly() {
        let schema = parameter("get", "/api/v1/events", "limit");
        let (min, max) = (schema["minimum"].as_i64().expect("minimum"), schema["maximum"].as_i64().expect("maximum"));
        for limit in min - 2..=max + 2 {
            let taken = parse_list_query(&format!("limit={limit}")).is_ok();
            assert_eq!(taken, (min..=max).contains(&limit), "limit={limit}");
        }
        assert_eq!(schema["default"], DEFAULT_LIMIT);
        assert_eq!(parse_list_query("").map(|q| q.limit).ok(), Some(DEFAULT_LIMIT));
    }

    #[test]
    fn a_new_event_has_exactly_the_documented_fields() {
        let schema = component("/NewEvent");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], serde_json::json!(["type", "payload"]));
        let contracts = xentri_core::contracts::Contracts::load().expect("the embedded contracts compile");
        let parse = |body: &Value| parse_new_event(body.to_string().as_bytes(), &contracts);
        let mut body = serde_json::json!({"type": "xentri.bench.sample.v1", "payload": {}});
        assert!(parse(&body).is_ok(), "the required fields suffice");
        for (name, _) in schema["properties"].as_object().expect("properties") {
            body[name] = match name.as_str() {
                "type" => "xentri.bench.sample.v1".into(),
                "payload" => serde_json::json!({"a": 1}),
                _ => "order-42".into(),
            };
        }
        assert!(parse(&body).is_ok(), "every documented field is taken");
        assert!(contracts.new_event().validate(&body).is_ok(), "so does schemas/new-event.json");
        for nullable in ["correlation_id", "causation_id"] {
            body[nullable] = Value::Null;
        }
        assert!(parse(&body).is_ok(), "null ids are taken as absent");
        assert!(contracts.new_event().validate(&body).is_ok(), "in schemas/new-event.json too");
        body["extra"] = 1.into();
        assert!(parse(&body).is_err(), "an undocumented field is refused");
        assert!(contracts.new_event().validate(&body).is_err(), "by schemas/new-event.json too");
        let contract = contracts.new_event().document();
        assert_eq!(contract["required"], schema["required"], "the contract and the document require the same");
        let names = |schema: &Value| schema["properties"].as_object().map(|p| p.keys().cloned().collect::<Vec<_>>());
        assert_eq!(names(contract), names(schema), "the contract and the document name the same fields");
    }

    #[test]
    fn a_cursor_pattern_spells_both_bounds() {
        let pattern = Regex::new(&cursor_pattern()).expect("the cursor pattern");
        let max = format!("{}-{}", u64::MAX, i64::MAX);
        assert!(pattern.is_match(&max) && Position::parse_cursor(&max).is_ok());
        for over in [format!("18446744073709551616-{}", i64::MAX), format!("{}-9223372036854775808", u64::MAX)] {
            assert!(!pattern.is_match(&over) && Position::parse_cursor(&over).is_err(), "{over}");
        }
    }
}
