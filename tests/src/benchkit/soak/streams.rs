//! The events stream's consumer groups at the end of a soak (where
//! unhandled events would be), as the section prints them.

/// `group: pending P, lag L` items joined by `; `, from the groups of
/// `XINFO GROUPS` ([`crate::benchkit::redis_sync::Redis::xinfo_groups`]).
pub fn groups_text(groups: &[Vec<(String, String)>]) -> String {
    let mut items = Vec::new();
    for fields in groups {
        let Some((_, name)) = fields.iter().find(|(k, _)| k == "name") else { continue };
        let figures: Vec<String> =
            fields.iter().filter(|(k, _)| k == "pending" || k == "lag").map(|(k, v)| format!("{k} {v}")).collect();
        if figures.is_empty() {
            items.push(format!("{name}:"));
        } else {
            items.push(format!("{name}: {}", figures.join(", ")));
        }
    }
    items.join("; ")
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;
    use crate::benchkit::redis_sync::pairs;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn groups_read_as_redis_cli_printed_them() {
        let group = |name: &str, pending: i64, lag: Value| {
            pairs(&Value::Array(vec![
                bulk("name"),
                bulk(name),
                bulk("consumers"),
                Value::Int(1),
                bulk("pending"),
                Value::Int(pending),
                bulk("last-delivered-id"),
                bulk("1-0"),
                bulk("lag"),
                lag,
            ]))
        };
        let groups = [group("cache_invalidation", 0, Value::Int(0)), group("event_counts", 3, Value::Nil)];
        assert_eq!(groups_text(&groups), "cache_invalidation: pending 0, lag 0; event_counts: pending 3, lag ");
        assert_eq!(groups_text(&[]), "");
    }
}
