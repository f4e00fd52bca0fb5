//! Fields of the drivers' one-line JSON results, as the scripts read them:
//! one value by dotted path (`json-field`), how many items a page's `data`
//! holds (`page-len`), the soak's per-minute lists (`soak-minutes`,
//! `soak-handled`) and its line without them (`soak-raw`).

use super::BenchkitError;
use super::py::{PyValue, percent_d};

/// What `json-field` prints for a missing key or a non-object on the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The same as for `null`.
    AsNull,
    /// An error (exit status 2).
    Fail,
}

/// The value at `path` (keys separated by `.`) of the JSON object `line`,
/// printed as Python's `str()`; `null` prints as `null_text`.
pub fn field(line: &str, path: &str, null_text: &str, missing: Missing) -> Result<String, BenchkitError> {
    let mut value = PyValue::parse(line, "the line")?;
    for key in path.split('.') {
        value = match value.get(key) {
            Some(inner) => inner.clone(),
            None if missing == Missing::Fail => {
                return Err(BenchkitError::Shape(format!("the line has no {path}")));
            }
            None => PyValue::Null,
        };
    }
    Ok(match value {
        PyValue::Null => null_text.to_owned(),
        other => other.py_str(),
    })
}

/// How many items `data` of the JSON document `body` holds.
pub fn page_len(body: &str) -> Result<usize, BenchkitError> {
    match PyValue::parse(body, "the page")?.get("data") {
        Some(PyValue::List(items)) => Ok(items.len()),
        Some(PyValue::Dict(items)) => Ok(items.len()),
        Some(PyValue::Str(text)) => Ok(text.chars().count()),
        _ => Err(BenchkitError::Shape("the page has no data list".to_owned())),
    }
}

fn list<'a>(line: &'a PyValue, key: &str) -> Result<&'a [PyValue], BenchkitError> {
    match line.get(key) {
        Some(PyValue::List(items)) => Ok(items),
        Some(value) if value.truthy() => Err(BenchkitError::Shape(format!("{key} is not a list"))),
        _ => Ok(&[]),
    }
}

fn item<'a>(value: &'a PyValue, key: &str) -> Result<&'a PyValue, BenchkitError> {
    value.get(key).ok_or_else(|| BenchkitError::Shape(format!("an item has no {key}")))
}

fn number(value: &PyValue) -> Result<f64, BenchkitError> {
    value.as_f64().ok_or_else(|| BenchkitError::Shape(format!("{} is not a number", value.py_repr())))
}

/// The soak's latency per minute: `minute: p50/p95/p99 (events)` items
/// joined by `; `, or `none`.
pub fn soak_minutes(line: &str) -> Result<String, BenchkitError> {
    let line = PyValue::parse(line, "the soak line")?;
    let mut items = Vec::new();
    for m in list(&line, "minutes")? {
        items.push(format!(
            "{}: {:.0}/{:.0}/{:.0} ({})",
            percent_d(item(m, "minute")?)?,
            number(item(m, "p50_ms")?)?,
            number(item(m, "p95_ms")?)?,
            number(item(m, "p99_ms")?)?,
            percent_d(item(m, "events")?)?,
        ));
    }
    Ok(if items.is_empty() { "none".to_owned() } else { items.join("; ") })
}

/// The events handled per minute: `minute: n` items joined by `; `, or `none`.
pub fn soak_handled(line: &str) -> Result<String, BenchkitError> {
    let line = PyValue::parse(line, "the soak line")?;
    let mut items = Vec::new();
    for pair in list(&line, "handled_per_minute")? {
        match pair {
            PyValue::List(mn) if mn.len() == 2 => items.push(format!("{}: {}", percent_d(&mn[0])?, percent_d(&mn[1])?)),
            other => return Err(BenchkitError::Shape(format!("{} is not a (minute, count) pair", other.py_repr()))),
        }
    }
    Ok(if items.is_empty() { "none".to_owned() } else { items.join("; ") })
}

/// The soak line without its per-minute lists, keys sorted.
pub fn soak_raw(line: &str) -> Result<String, BenchkitError> {
    match PyValue::parse(line, "the soak line")? {
        PyValue::Dict(items) => {
            Ok(PyValue::Dict(items.into_iter().filter(|(k, _)| k != "minutes" && k != "handled_per_minute").collect())
                .dumps_sorted())
        }
        _ => Err(BenchkitError::Shape("the soak line is not an object".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOAK: &str = r#"{"sent": 100, "overall": {"p99_ms": 12.5, "max_ms": null}, "minutes": [{"minute": 0, "p50_ms": 2.5, "p95_ms": 3.5, "p99_ms": 9.49, "events": 60}, {"minute": 1, "p50_ms": 1, "p95_ms": 2, "p99_ms": 3, "events": 40}], "handled_per_minute": [[0, 60], [1, 40]], "first_error": "é", "ok": true}"#;

    #[test]
    fn fields_by_dotted_path() {
        assert_eq!(field(SOAK, "sent", "", Missing::AsNull).unwrap(), "100");
        assert_eq!(field(SOAK, "overall.p99_ms", "", Missing::AsNull).unwrap(), "12.5");
        assert_eq!(field(SOAK, "overall.max_ms", "?", Missing::AsNull).unwrap(), "?");
        assert_eq!(field(SOAK, "overall.nothing", "", Missing::AsNull).unwrap(), "");
        assert_eq!(field(SOAK, "sent.deeper", "", Missing::AsNull).unwrap(), "");
        assert_eq!(field(SOAK, "ok", "", Missing::AsNull).unwrap(), "True");
        assert!(field(SOAK, "nothing", "", Missing::Fail).is_err());
        assert!(field("not json", "a", "", Missing::AsNull).is_err());
    }

    #[test]
    fn page_lengths() {
        assert_eq!(page_len(r#"{"data": [1, 2, 3], "next": null}"#).unwrap(), 3);
        assert!(page_len(r#"{"data": 3}"#).is_err());
        assert!(page_len("").is_err());
    }

    #[test]
    fn soak_lists_and_raw_line() {
        assert_eq!(soak_minutes(SOAK).unwrap(), "0: 2/4/9 (60); 1: 1/2/3 (40)");
        assert_eq!(soak_handled(SOAK).unwrap(), "0: 60; 1: 40");
        assert_eq!(soak_minutes(r#"{"minutes": null}"#).unwrap(), "none");
        assert_eq!(soak_handled("{}").unwrap(), "none");
        assert_eq!(
            soak_raw(SOAK).unwrap(),
            r#"{"first_error": "\u00e9", "ok": true, "overall": {"max_ms": null, "p99_ms": 12.5}, "sent": 100}"#
        );
    }
}
