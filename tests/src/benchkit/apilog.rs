//! The api's JSON log between two byte offsets (one scenario), summarised:
//! requests by route and status with the in-api latency (`latency_ms` of the
//! per-request line: time inside the api, without the client's queueing),
//! every WARN/ERROR message grouped with one example, and the lines that are
//! not JSON (panics, stray output).
//!
//! `benchkit apilog LOG START END` prints [`summarise`] of the bytes
//! `START..END` of `LOG`.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::BenchkitError;
use super::py::{PyValue, cut, fixed, strip};

/// The nearest-rank `q`th percentile of `sorted`; NaN when it is empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q / 100.0 * sorted.len() as f64).ceil();
    // `rank` is at least 0 and at most len: the index is in range.
    let rank = if rank < 1.0 { 1 } else { (rank as usize).min(sorted.len()) };
    sorted[rank - 1]
}

/// The bytes `start..end` of the file at `path` (fewer at its end).
pub fn read_range(path: &Path, start: u64, end: u64) -> Result<Vec<u8>, BenchkitError> {
    let read = |source| BenchkitError::Read { path: path.display().to_string(), source };
    let mut file = File::open(path).map_err(read)?;
    file.seek(SeekFrom::Start(start)).map_err(read)?;
    let mut chunk = Vec::new();
    file.take(end.saturating_sub(start)).read_to_end(&mut chunk).map_err(read)?;
    Ok(chunk)
}

/// The lines of `bytes`, split at `\n`, `\r\n` and `\r`.
fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&bytes[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&bytes[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        lines.push(&bytes[start..]);
    }
    lines
}

/// One WARN/ERROR group: level, message, error (cut at 200 characters).
#[derive(Debug)]
struct Problem {
    level: String,
    message_key: String,
    message: String,
    error: String,
    count: usize,
    example: String,
}

/// The summary of a chunk of the api's log, one line per item, each ending
/// with a newline.
pub fn summarise(chunk: &[u8]) -> String {
    // (route, repr of the status) -> (status as printed, count), in first-seen order.
    let mut statuses: Vec<(String, String, String, usize)> = Vec::new();
    let mut latencies: HashMap<String, Vec<f64>> = HashMap::new();
    let mut problems: Vec<Problem> = Vec::new();
    let mut not_json: Vec<String> = Vec::new();
    for raw in split_lines(chunk) {
        let decoded = String::from_utf8_lossy(raw);
        let line = strip(&decoded);
        if line.is_empty() {
            continue;
        }
        let record = match serde_json::from_str::<PyValue>(line) {
            Ok(record @ PyValue::Dict(_)) => record,
            _ => {
                not_json.push(line.to_owned());
                continue;
            }
        };
        let empty = PyValue::Dict(Vec::new());
        let span = record.get("span").filter(|s| s.truthy() && matches!(s, PyValue::Dict(_))).unwrap_or(&empty);
        if record.get("message") == Some(&PyValue::Str("request".to_owned())) {
            let field = |key: &str| span.get(key).map_or_else(|| "?".to_owned(), PyValue::py_str);
            let route = format!("{} {}", field("method"), field("route"));
            let status = record.get("status").unwrap_or(&PyValue::Null);
            let key = status.py_repr();
            match statuses.iter_mut().find(|(r, k, _, _)| *r == route && *k == key) {
                Some(entry) => entry.3 += 1,
                None => statuses.push((route.clone(), key, status.py_str(), 1)),
            }
            if let Some(latency) = record.get("latency_ms").and_then(PyValue::as_f64) {
                latencies.entry(route).or_default().push(latency);
            }
        }
        let level = match record.get("level") {
            Some(PyValue::Str(level)) if level == "WARN" || level == "ERROR" => level.clone(),
            _ => continue,
        };
        let message = record.get("message").cloned().unwrap_or(PyValue::Str(String::new()));
        let error = record.get("error").map(|e| cut(&e.py_str(), 200).to_owned()).unwrap_or_default();
        let message_key = message.py_repr();
        match problems.iter_mut().find(|p| p.level == level && p.message_key == message_key && p.error == error) {
            Some(problem) => problem.count += 1,
            None => problems.push(Problem {
                level,
                message_key,
                message: message.py_str(),
                error,
                count: 1,
                example: cut(line, 400).to_owned(),
            }),
        }
    }
    render(&statuses, &mut latencies, &mut problems, &not_json)
}

fn render(
    statuses: &[(String, String, String, usize)],
    latencies: &mut HashMap<String, Vec<f64>>,
    problems: &mut [Problem],
    not_json: &[String],
) -> String {
    let mut out = String::new();
    let routes: BTreeSet<&String> = statuses.iter().map(|(route, ..)| route).collect();
    for route in routes {
        // Ordered as the text `((route, status), n)`; within one route that
        // is the status's repr followed by `), n)`.
        let mut items: Vec<(String, &str, usize)> = statuses
            .iter()
            .filter(|(r, ..)| r == route)
            .map(|(_, key, shown, n)| (format!("{key}), {n})"), shown.as_str(), *n))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let counts: Vec<String> = items.iter().map(|(_, shown, n)| format!("{shown} x {n}")).collect();
        let values = latencies.entry(route.clone()).or_default();
        values.sort_by(f64::total_cmp);
        let max = values.last().copied().unwrap_or(f64::NAN);
        out.push_str(&format!(
            "{route}: {}; in-api latency p50 {} ms, p95 {} ms, p99 {} ms, max {} ms\n",
            counts.join(", "),
            fixed(percentile(values, 50.0), 2),
            fixed(percentile(values, 95.0), 2),
            fixed(percentile(values, 99.0), 2),
            fixed(max, 2),
        ));
    }
    if statuses.is_empty() {
        out.push_str("no request lines\n");
    }
    // Most frequent first; ties stay in first-seen order (a stable sort).
    problems.sort_by_key(|p| std::cmp::Reverse(p.count));
    for p in problems.iter() {
        let error = if p.error.is_empty() { String::new() } else { format!(" ({})", p.error) };
        out.push_str(&format!("{} x {}: {}{error}\n", p.level, p.count, p.message));
        out.push_str(&format!("  e.g. {}\n", p.example));
    }
    if problems.is_empty() {
        out.push_str("no WARN/ERROR lines\n");
    }
    if let Some(first) = not_json.first() {
        out.push_str(&format!("{} non-JSON lines, first: {}\n", not_json.len(), cut(first, 300)));
    }
    out
}

/// [`summarise`] of the bytes `start..end` of the log at `path`.
pub fn run(path: &Path, start: u64, end: u64) -> Result<String, BenchkitError> {
    Ok(summarise(&read_range(path, start, end)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        r#"{"level":"INFO","message":"request","status":201,"latency_ms":1.5,"span":{"method":"POST","route":"/api/v1/events"}}"#,
        "\n",
        r#"{"level":"INFO","message":"request","status":201,"latency_ms":3,"span":{"method":"POST","route":"/api/v1/events"}}"#,
        "\r\n",
        r#"{"level":"WARN","message":"request","status":503,"latency_ms":0.25,"span":{"method":"POST","route":"/api/v1/events"}}"#,
        "\n",
        r#"{"level":"INFO","message":"request","status":200,"span":{"method":"GET","route":"/health"}}"#,
        "\n\n",
        r#"{"level":"ERROR","message":"append failed","error":"pool timed out"}"#,
        "\n",
        r#"{"level":"ERROR","message":"append failed","error":"pool timed out","n":2}"#,
        "\n",
        "thread 'main' panicked at api/src/main.rs\n",
        "[1, 2]\n",
    );

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 5.0);
        assert_eq!(percentile(&values, 95.0), 10.0);
        assert_eq!(percentile(&values[..1], 99.0), 1.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn lines_split_as_bytes_splitlines() {
        assert_eq!(split_lines(b"a\nb\r\nc\rd"), vec![&b"a"[..], b"b", b"c", b"d"]);
        assert_eq!(split_lines(b"a\n"), vec![&b"a"[..]]);
    }

    #[test]
    fn summary_of_a_fixture_log() {
        let expected = concat!(
            "GET /health: 200 x 1; in-api latency p50 nan ms, p95 nan ms, p99 nan ms, max nan ms\n",
            "POST /api/v1/events: 201 x 2, 503 x 1; in-api latency p50 1.50 ms, p95 3.00 ms, p99 3.00 ms, max 3.00 ms\n",
            "ERROR x 2: append failed (pool timed out)\n",
            "  e.g. {\"level\":\"ERROR\",\"message\":\"append failed\",\"error\":\"pool timed out\"}\n",
            "WARN x 1: request\n",
            "  e.g. {\"level\":\"WARN\",\"message\":\"request\",\"status\":503,\"latency_ms\":0.25,\"span\":{\"method\":\"POST\",\"route\":\"/api/v1/events\"}}\n",
            "2 non-JSON lines, first: thread 'main' panicked at api/src/main.rs\n",
        );
        assert_eq!(summarise(FIXTURE.as_bytes()), expected);
    }

    #[test]
    fn an_empty_chunk_says_so() {
        assert_eq!(summarise(b""), "no request lines\nno WARN/ERROR lines\n");
    }
}
