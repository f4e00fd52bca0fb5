//! Payloads valid against their type's contract (`schemas/events/`), for
//! tests, drills and benchmarks that post a real type's event (the cache
//! invalidation takes `xentri.soul.updated.v1` and `xentri.lead.created.v1`)
//! without driving its flow. Contracts are open, so a caller may add fields
//! of its own (a drill's `key`, a load's `n`).

use serde_json::{Map, Value, json};

/// A valid payload of `event_type` for the types tests post by hand; an empty
/// object for any other type (whose contract, if it has one, may refuse it).
pub fn valid_payload(event_type: &str) -> Map<String, Value> {
    let id = "0193a0a0-0000-7000-8000-000000000001";
    let payload = match event_type {
        "xentri.soul.updated.v1" => json!({
            "soul_id": id, "state": "approved", "version": 2,
            "content": {"mission": "We help small teams ship.", "voice": "warm, direct"},
        }),
        "xentri.lead.created.v1" => json!({
            "lead_id": id, "name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical Engines",
            "source": "manual", "status": "new", "version": 1,
        }),
        "xentri.lead.updated.v1" => json!({
            "lead_id": id, "version": 2, "status": "contacted", "change": "transition",
            "from": "new", "to": "contacted", "reason": null,
        }),
        "xentri.website.published.v1" => json!({
            "site_id": sample_site_id(0), "version": 4, "published_version": 4, "pages": ["home"],
            "build_job_id": id, "from": "publishing",
        }),
        _ => json!({}),
    };
    match payload {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Site `n` of the sample sites (`0193a0a0-0000-7000-8000-{100 + n, 12 digits}`, a
/// UUID as the contracts ask): loads spread `xentri.website.published.v1`
/// over a few sites' cache keys with it.
pub fn sample_site_id(n: usize) -> String {
    format!("0193a0a0-0000-7000-8000-{:012}", 100 + n)
}

/// [`valid_payload`] of `event_type` with `extra`'s fields added (an object;
/// anything else adds nothing).
pub fn valid_payload_with(event_type: &str, extra: Value) -> Value {
    let mut payload = valid_payload(event_type);
    if let Value::Object(extra) = extra {
        payload.extend(extra);
    }
    Value::Object(payload)
}

#[cfg(test)]
mod tests {
    use xentri_core::contracts::Contracts;

    use super::*;

    #[test]
    fn every_sample_payload_is_valid_against_its_contract_with_fields_added() {
        let contracts = Contracts::load().expect("the embedded contracts compile");
        let types = [
            "xentri.soul.updated.v1",
            "xentri.lead.created.v1",
            "xentri.lead.updated.v1",
            "xentri.website.published.v1",
        ];
        for event_type in types {
            assert!(contracts.event(event_type).is_some(), "{event_type} has a contract");
            let payload = valid_payload_with(event_type, json!({"key": "k-1", "site_id": sample_site_id(3), "n": 1}));
            assert_eq!(contracts.check_payload(event_type, &payload), Ok(()), "{event_type}");
        }
    }
}
