//! The environment a bench reads its settings from (`BENCH_*`), taken once
//! at the start, with the rules every bench applies to it: a setting that is
//! set must be well-formed, or the bench stops before it starts anything.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::BenchkitError;

/// Environment variables, as the bench started with them.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// This process's environment (variables that are not UTF-8 are left out).
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// Exactly these variables.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env { vars: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() }
    }

    /// The value of `name`, if set (an empty value counts as unset).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The value of `name`, or `default`.
    pub fn text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// A whole number (0 allowed), or `default` when unset.
    pub fn whole<T: FromStr>(&self, name: &str, default: T) -> Result<T, BenchkitError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) if text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse().map_err(|_| BenchkitError::Usage(format!("{name} is too large: {text}")))
            }
            Some(text) => Err(BenchkitError::Usage(format!("{name} must be a whole number, not {text:?}"))),
        }
    }

    /// A whole number of at least 1, or `default` when unset.
    pub fn positive<T: FromStr + PartialOrd + From<u8>>(&self, name: &str, default: T) -> Result<T, BenchkitError> {
        let value = self.whole(name, default)?;
        if value < T::from(1) {
            return Err(BenchkitError::Usage(format!("{name} must be a whole number ≥ 1")));
        }
        Ok(value)
    }

    /// The `XENTRI_*` variables set, sorted, space-separated: settings the
    /// api and worker take on top of config/default.toml. `XENTRI_ENV` is not
    /// one: the benches start them without it (an overlay would change what
    /// is measured).
    pub fn overrides(&self) -> String {
        self.vars
            .keys()
            .filter(|k| *k != "XENTRI_ENV")
            .filter(|k| {
                k.strip_prefix("XENTRI_")
                    .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
            })
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_before_anything_starts() {
        let env = Env::from_pairs(&[("A", "12"), ("B", "0"), ("C", "1e3"), ("D", ""), ("E", "-1")]);
        assert_eq!(env.positive("A", 5u32).ok(), Some(12));
        assert!(env.positive("B", 5u32).is_err(), "0 is not ≥ 1");
        assert_eq!(env.whole("B", 5u64).ok(), Some(0));
        assert!(matches!(env.whole("C", 5u64), Err(BenchkitError::Usage(_))));
        assert_eq!(env.positive("D", 7u32).ok(), Some(7), "empty counts as unset");
        assert!(env.whole("E", 5u64).is_err());
        assert_eq!(env.positive("MISSING", 3u16).ok(), Some(3));
        assert!(env.positive("A", 5u8).is_ok());
        assert!(Env::from_pairs(&[("A", "300")]).whole("A", 5u8).is_err(), "too large for the type");
    }

    #[test]
    fn overrides_name_xentri_variables_only() {
        let env = Env::from_pairs(&[
            ("XENTRI_API__PORT", "1"),
            ("XENTRI_ENV", "test"),
            ("XENTRI_lower", "x"),
            ("PATH", "/bin"),
            ("XENTRI_DATABASE__URL", "x"),
        ]);
        assert_eq!(env.overrides(), "XENTRI_API__PORT XENTRI_DATABASE__URL");
    }
}
