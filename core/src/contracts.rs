//! Event contracts: the JSON Schemas (draft 2020-12) under `schemas/` at the
//! workspace root, embedded at compile time and compiled once at start-up.
//!
//! - `schemas/envelope.json`: an event as stored and answered (and, flat, as a
//!   stream entry carries it);
//! - `schemas/new-event.json`: the body of `POST /api/v1/events`;
//! - `schemas/events/{type}.json`: the payload of one event type.
//!
//! A payload of a type with a schema must be valid against it; a type without
//! one is accepted as long as its name follows the naming rule. Adding a
//! contract is adding its file: the build script lists the folder.
//!
//! **Invariant:** every event the platform's own flows emit has a schema here,
//! and its payloads are valid against it (the api's contract test drives the
//! flows and checks every stored event).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::event::EventType;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/schemas.rs"));
}

/// The `$schema` every contract declares.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
/// Where the contracts' `$id`s live: `{BASE_ID}events/{type}.json`.
pub const BASE_ID: &str = "https://xentri.io/schemas/";

/// A schema that cannot be used: a file under `schemas/` that is not JSON, not
/// a valid draft 2020-12 schema, or not named and identified as the rules say.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The file is not JSON.
    #[error("schema {file} is not JSON: {source}")]
    NotJson {
        /// The file, relative to `schemas/`.
        file: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The document is not a valid JSON Schema 2020-12 document.
    #[error("schema {file} does not compile: {message}")]
    Invalid {
        /// The file, relative to `schemas/`.
        file: String,
        /// The compiler's complaint.
        message: String,
    },
    /// The file's name, `$schema`, `$id` or `title` break the rules.
    #[error("schema {file}: {message}")]
    Misnamed {
        /// The file, relative to `schemas/`.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// One value of a payload (or envelope) that breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer to the offending value within the validated document
    /// (`/email`; empty for the document itself).
    pub pointer: String,
    /// What is wrong, without echoing the value.
    pub message: String,
}

/// One compiled schema.
pub struct Schema {
    /// The event type, or `envelope` / `new-event`.
    name: String,
    /// The version of an event type (`N` of `.vN`); none for the envelope.
    version: Option<u32>,
    /// The document as written in its file.
    text: &'static str,
    /// The document, parsed.
    document: Value,
    /// The compiled validator.
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").field("name", &self.name).field("version", &self.version).finish_non_exhaustive()
    }
}

impl Schema {
    fn compile(file: &str, name: String, version: Option<u32>, text: &'static str) -> Result<Self, ContractError> {
        let document: Value =
            serde_json::from_str(text).map_err(|source| ContractError::NotJson { file: file.to_owned(), source })?;
        let misnamed = |message: String| ContractError::Misnamed { file: file.to_owned(), message };
        if document.get("$schema").and_then(Value::as_str) != Some(DRAFT_2020_12) {
            return Err(misnamed(format!("$schema must be {DRAFT_2020_12}")));
        }
        let id = format!("{BASE_ID}{}", file);
        if document.get("$id").and_then(Value::as_str) != Some(id.as_str()) {
            return Err(misnamed(format!("$id must be {id}")));
        }
        let validator = jsonschema::draft202012::options()
            .build(&document)
            .map_err(|e| ContractError::Invalid { file: file.to_owned(), message: e.to_string() })?;
        Ok(Self { name, version, text, document, validator })
    }

    /// The event type, or `envelope` / `new-event`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version of an event type (`N` of `.vN`); none for the envelope.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// The document as written in its file (what `GET /api/v1/schemas/{type}` serves).
    pub fn text(&self) -> &'static str {
        self.text
    }

    /// The document, parsed.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Checks `instance`: every violation, in the validator's order.
    pub fn validate(&self, instance: &Value) -> Result<(), Vec<Violation>> {
        let violations: Vec<Violation> = self
            .validator
            .iter_errors(instance)
            .map(|error| Violation {
                pointer: error.instance_path().as_str().to_owned(),
                message: error.masked_with("the value").to_string(),
            })
            .collect();
        if violations.is_empty() { Ok(()) } else { Err(violations) }
    }
}

/// Every contract, compiled: built once at start-up and shared.
#[derive(Debug)]
pub struct Contracts {
    envelope: Schema,
    new_event: Schema,
    events: BTreeMap<String, Schema>,
}

impl Contracts {
    /// Compiles every embedded schema; fails on the first that cannot be used.
    pub fn load() -> Result<Self, ContractError> {
        let envelope = Schema::compile("envelope.json", "envelope".into(), None, embedded::ENVELOPE)?;
        let new_event = Schema::compile("new-event.json", "new-event".into(), None, embedded::NEW_EVENT)?;
        let mut events = BTreeMap::new();
        for (stem, text) in embedded::EVENT_SCHEMAS {
            let file = format!("events/{stem}.json");
            let event_type = EventType::parse(stem).map_err(|e| ContractError::Misnamed {
                file: file.clone(),
                message: format!("the file must be named after its event type, which {}", e.message),
            })?;
            let schema = Schema::compile(&file, event_type.to_string(), Some(version_of(&event_type)), text)?;
            if schema.document.get("title").and_then(Value::as_str) != Some(stem) {
                return Err(ContractError::Misnamed { file, message: format!("title must be {stem}") });
            }
            events.insert(event_type.to_string(), schema);
        }
        Ok(Self { envelope, new_event, events })
    }

    /// The stored envelope's schema.
    pub fn envelope(&self) -> &Schema {
        &self.envelope
    }

    /// The schema of `POST /api/v1/events`' body.
    pub fn new_event(&self) -> &Schema {
        &self.new_event
    }

    /// The payload schema of `event_type`, if it has one.
    pub fn event(&self, event_type: &str) -> Option<&Schema> {
        self.events.get(event_type)
    }

    /// Every payload schema, by event type.
    pub fn events(&self) -> impl Iterator<Item = &Schema> {
        self.events.values()
    }

    /// Checks `payload` against its type's schema; a type without one passes.
    pub fn check_payload(&self, event_type: &str, payload: &Value) -> Result<(), Vec<Violation>> {
        self.event(event_type).map_or(Ok(()), |schema| schema.validate(payload))
    }
}

/// `N` of a type's `.vN` (the naming rule guarantees the digits).
fn version_of(event_type: &EventType) -> u32 {
    event_type.as_str().rsplit_once(".v").and_then(|(_, n)| n.parse().ok()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn contracts() -> Contracts {
        Contracts::load().expect("every embedded schema compiles")
    }

    #[test]
    fn every_embedded_schema_compiles_and_is_named_after_its_type() {
        let contracts = contracts();
        let names: Vec<&str> = contracts.events().map(Schema::name).collect();
        assert!(names.contains(&"xentri.lead.created.v1"), "{names:?}");
        for schema in contracts.events() {
            assert_eq!(schema.version(), Some(1), "{}", schema.name());
            assert_eq!(schema.document()["title"], schema.name());
        }
        assert_eq!(contracts.envelope().name(), "envelope");
    }

    #[test]
    fn a_payload_is_checked_against_its_type_and_every_violation_is_pointed_at() {
        let contracts = contracts();
        let lead = json!({
            "lead_id": "0193a0a0-0000-7000-8000-000000000001", "name": "Ada", "email": "ada@example.com",
            "company": null, "source": "form", "status": "new", "version": 1,
        });
        assert_eq!(contracts.check_payload("xentri.lead.created.v1", &lead), Ok(()));
        let mut bad = lead.clone();
        bad["email"] = json!(42);
        bad["source"] = json!("fax");
        let violations = contracts.check_payload("xentri.lead.created.v1", &bad).expect_err("two violations");
        let pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/email") && pointers.contains(&"/source"), "{violations:?}");
        assert!(violations.iter().all(|v| !v.message.contains("fax")), "values are not echoed: {violations:?}");
    }

    #[test]
    fn unknown_types_pass_and_payloads_are_open_to_added_fields_but_not_to_missing_ones() {
        let contracts = contracts();
        assert_eq!(contracts.check_payload("xentri.bench.sample.v1", &json!({"anything": [1, 2]})), Ok(()));
        let soul = "0193a0a0-0000-7000-8000-000000000001";
        let added = json!({"soul_id": soul, "state": "initiated", "version": 1, "added_later": true});
        assert_eq!(contracts.check_payload("xentri.soul.initiated.v1", &added), Ok(()), "an added field is compatible");
        let missing = json!({"soul_id": soul, "state": "initiated"});
        let violations =
            contracts.check_payload("xentri.soul.initiated.v1", &missing).expect_err("version is required");
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].pointer, "", "a missing field is the object's own violation");
    }

    #[test]
    fn the_envelope_is_closed_and_describes_a_stored_event() {
        let contracts = contracts();
        let event = json!({
            "id": "0193a0a0-0000-7000-8000-000000000001", "seq": 7, "org_id": "0193a0a0-0000-7000-8000-000000000002",
            "type": "xentri.bench.sample.v1", "payload": {}, "actor": "user:user_1",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "correlation_id": "order-42", "causation_id": null,
            "occurred_at": "2026-11-26T10:00:00.123456Z",
        });
        assert_eq!(contracts.envelope().validate(&event), Ok(()));
        let mut extra = event.clone();
        extra["unknown"] = json!(1);
        assert!(contracts.envelope().validate(&extra).is_err());
        let mut misnamed = event;
        misnamed["type"] = json!("soul.updated");
        let violations = contracts.envelope().validate(&misnamed).expect_err("the naming rule");
        assert_eq!(violations[0].pointer, "/type");
    }

    #[test]
    fn a_lead_update_is_either_a_change_of_fields_or_a_transition() {
        let contracts = contracts();
        let id = "0193a0a0-0000-7000-8000-000000000001";
        let fields =
            json!({"lead_id": id, "version": 2, "status": "new", "change": "fields", "fields": {"name": "Ada L"}});
        let transition = json!({"lead_id": id, "version": 3, "status": "contacted", "change": "transition",
            "from": "new", "to": "contacted", "reason": null});
        assert_eq!(contracts.check_payload("xentri.lead.updated.v1", &fields), Ok(()));
        assert_eq!(contracts.check_payload("xentri.lead.updated.v1", &transition), Ok(()));
        let no_fields = json!({"lead_id": id, "version": 2, "status": "new", "change": "fields"});
        assert!(
            contracts.check_payload("xentri.lead.updated.v1", &no_fields).is_err(),
            "a change of fields has fields"
        );
        let no_from = json!({"lead_id": id, "version": 3, "status": "contacted", "change": "transition", "to": "contacted",
            "reason": null});
        assert!(contracts.check_payload("xentri.lead.updated.v1", &no_from).is_err(), "a transition has from");
        let empty = json!({"lead_id": id, "version": 2, "status": "new", "change": "fields", "fields": {}});
        assert!(contracts.check_payload("xentri.lead.updated.v1", &empty).is_err(), "a change changes something");
    }

    /// The contracts consumers in other languages build against: a change to
    /// any of them shows up here, to be reviewed and accepted on purpose.
    #[test]
    fn the_schema_set_is_stable() {
        let contracts = contracts();
        let mut set = serde_json::Map::new();
        for schema in [contracts.envelope(), contracts.new_event()].into_iter().chain(contracts.events()) {
            set.insert(schema.name().to_owned(), schema.document().clone());
        }
        insta::assert_json_snapshot!("schema_set", set);
    }
}
