//! The dead letters `benchkit dlq` seeds: the fields of each as the worker
//! writes them to `jobs:dlq` (fresh event and org ids each).

/// The payload every seeded dead letter carries (437 bytes).
pub fn payload() -> String {
    format!(r#"{{"name": "Ada Lovelace", "notes": "{}"}}"#, "x".repeat(400))
}

/// The fields of dead letter `i` (0-based).
pub fn fields(i: u64, id: &str, org_id: &str, payload: &str) -> Vec<String> {
    [
        ("id", id.to_owned()),
        ("seq", (i + 1).to_string()),
        ("org_id", org_id.to_owned()),
        ("type", "xentri.bench.sample.v1".to_owned()),
        ("payload", payload.to_owned()),
        ("actor", "user:bench".to_owned()),
        ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        ("correlation_id", format!("bench-{}", i % 1000)),
        ("occurred_at", "2026-11-26T10:00:00.000000Z".to_owned()),
        ("dlq_stream", "jobs:work".to_owned()),
        ("dlq_id", format!("{}-0", i + 1)),
        ("dlq_group", "jobs".to_owned()),
        ("dlq_consumer", "bench-1-0".to_owned()),
        ("dlq_attempts", "3".to_owned()),
        ("dlq_error", "downstream timed out".to_owned()),
        ("dlq_failed_at", "2026-11-26T10:00:01.000Z".to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_has_the_fields_the_worker_writes() {
        let fields = fields(1, "id-1", "org-1", &payload());
        assert_eq!(fields.len(), 32, "16 field-value pairs");
        let pairs: Vec<(&str, &str)> = fields.chunks(2).map(|p| (p[0].as_str(), p[1].as_str())).collect();
        assert!(pairs.contains(&("seq", "2")));
        assert!(pairs.contains(&("correlation_id", "bench-1")));
        assert!(pairs.contains(&("dlq_stream", "jobs:work")));
        assert!(pairs.contains(&("dlq_id", "2-0")));
        assert_eq!(payload().len(), 437);
    }
}
