//! Numbers as the bench prints them and the verdicts beside them: fixed
//! decimals, "met"/"missed", shares, nearest-rank percentiles, and the
//! `key=value` result lines the wrk scripts print (`scripts/bench.d/common.lua`).

use super::BenchkitError;

/// `v` with `digits` decimals (`%.*f`), the way every figure is printed.
pub fn fixed(v: f64, digits: usize) -> String {
    super::py::fixed(v, digits)
}

/// The word a target's cell ends with.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// `100 × part / whole`, 0 when `whole` is not positive.
pub fn percent_of(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { 100.0 * part / whole } else { 0.0 }
}

/// `a / b`, 0 when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The nearest-rank `q`th percentile of `sorted` (ascending); `None` when
/// it is empty.
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = ((q / 100.0 * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).copied()
}

/// p50, p95 and p99 of `values` by nearest rank (NaN for none).
pub fn p50_p95_p99(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    [50.0, 95.0, 99.0].map(|q| nearest_rank(&values, q).unwrap_or(f64::NAN))
}

/// One `PREFIX key=value key=value ...` line.
#[derive(Debug, Clone)]
pub struct KeyValues {
    line: String,
}

impl KeyValues {
    /// The last line of `output` that starts with `prefix` (and a space).
    pub fn find(output: &str, prefix: &str) -> Option<KeyValues> {
        output
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(prefix).and_then(|rest| rest.strip_prefix(' ')))
            .map(|rest| KeyValues { line: rest.to_owned() })
    }

    /// From the text after the prefix.
    pub fn new(line: &str) -> KeyValues {
        KeyValues { line: line.to_owned() }
    }

    /// The value of `key`, if the line has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.line.split(' ').find_map(|pair| pair.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }

    /// The value of `key` as a number.
    pub fn number(&self, key: &str) -> Result<f64, BenchkitError> {
        let text = self.get(key).ok_or_else(|| BenchkitError::Shape(format!("no {key}= in {:?}", self.line)))?;
        text.parse().map_err(|_| BenchkitError::Shape(format!("{key}={text} is not a number")))
    }

    /// The value of `key` as a whole number.
    pub fn count(&self, key: &str) -> Result<u64, BenchkitError> {
        let text = self.get(key).ok_or_else(|| BenchkitError::Shape(format!("no {key}= in {:?}", self.line)))?;
        text.parse().map_err(|_| BenchkitError::Shape(format!("{key}={text} is not a whole number")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(p50_p95_p99(values), [100.0, 190.0, 198.0]);
        assert_eq!(p50_p95_p99(vec![3.0]), [3.0, 3.0, 3.0]);
        assert!(p50_p95_p99(Vec::new())[0].is_nan());
    }

    #[test]
    fn result_lines_give_their_fields() {
        let out = "Running 30s test\nBENCH_RESULT rps=1234.5 p50_ms=1.20 non2xx=0\ntrailer";
        let line = KeyValues::find(out, "BENCH_RESULT").expect("a result line");
        assert_eq!(line.number("rps").ok(), Some(1234.5));
        assert_eq!(line.count("non2xx").ok(), Some(0));
        assert!(line.get("p5").is_none(), "a key is matched whole, not by prefix");
        assert!(line.number("p99_ms").is_err());
        assert!(KeyValues::find(out, "RESULT").is_none());
    }

    #[test]
    fn shares_and_verdicts() {
        assert_eq!(fixed(percent_of(1.0, 3.0), 1), "33.3");
        assert_eq!(percent_of(5.0, 0.0), 0.0);
        assert_eq!(verdict(true), "met");
        assert_eq!(fixed(2.675, 2), "2.67", "the binary value is rounded, as printf does");
    }
}
