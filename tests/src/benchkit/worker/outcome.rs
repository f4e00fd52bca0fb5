//! What one scenario of `benchkit worker` gave: the driver's JSON line or why
//! there is none, what it logged, what a killed driver left in Redis, and
//! the CPU it and the rest of the machine used meanwhile.

use crate::benchkit::cpu::CpuShare;
use crate::benchkit::py::PyValue;

/// One scenario's result.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The driver's JSON line, as it printed it.
    pub json: Option<String>,
    /// The line parsed.
    pub parsed: Option<PyValue>,
    /// Why there is no result (`stopped after 70 s ...`, with the log's path).
    pub error: Option<String>,
    /// What a killed driver left in Redis (its streams' state), `; `-joined.
    pub leftover: Option<String>,
    /// `N lines on stderr, first: ...` when the driver logged anything.
    pub stderr: Option<String>,
    /// Other Redis clients connected when it started.
    pub redis_clients: i64,
    /// The driver's own CPU seconds (user + system), to 0.01 s.
    pub driver_cpu: f64,
    /// The driver's wall seconds, to 0.01 s.
    pub driver_wall: f64,
    /// What the sampler measured beside it.
    pub cpu: CpuShare,
}

impl Outcome {
    /// A result from the driver's JSON line; `None` when it is not JSON.
    pub fn from_line(line: &str) -> Option<Outcome> {
        let parsed = PyValue::parse(line, "the driver's line").ok()?;
        Some(Outcome { json: Some(line.to_owned()), parsed: Some(parsed), ..Outcome::default() })
    }

    /// A field of the line as the scripts read it (Python's `str()`); `None`
    /// when the line, the field or its value is missing (`null`) or empty.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.parsed.as_ref()?.get(key)? {
            PyValue::Null => None,
            value => Some(value.py_str()).filter(|t| !t.is_empty()),
        }
    }

    /// A numeric field of the line.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.parsed.as_ref()?.get(key)?.as_f64()
    }

    /// Whether the scenario gave a line with all of `keys`.
    pub fn has(&self, keys: &[&str]) -> bool {
        self.json.is_some() && keys.iter().all(|k| self.text(k).is_some())
    }
}
