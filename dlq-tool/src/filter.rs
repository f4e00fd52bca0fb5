//! The entry filters shared by `list`, `replay --all` and `purge`: all given
//! filters must match. Every filter is checked before anything is read or
//! changed, so a bad one is exit 2 with nothing changed.

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use regex::Regex;
use xentri_core::TypeFilter;
use xentri_core::stream::field;
use xentri_core::stream_id::StreamId;

use crate::entry::DeadEntry;
use crate::error::Error;
use crate::time::parse_since;

/// The filter options, as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only entries of this event type: exact, or a prefix ending in `*` (`xentri.soul.*`)
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type_filter)]
    pub event_type: Option<TypeFilter>,
    /// Only entries of this org (`org_id`)
    #[arg(long, value_name = "ORG_ID")]
    pub org: Option<String>,
    /// Only entries that failed at or after WHEN: RFC 3339, or a duration such as `2h` (failed within the last 2h)
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Only entries with this `correlation_id`
    #[arg(long, value_name = "ID")]
    pub correlation_id: Option<String>,
    /// Only entries whose `dlq_error` matches this regular expression
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub error_match: Option<Regex>,
    /// Only entries whose id is listed in FILE (one id per line; blank lines and `#` comments ignored)
    #[arg(long, value_name = "FILE")]
    pub ids_from: Option<PathBuf>,
}

impl FilterArgs {
    /// True when at least one filter was given.
    pub fn any(&self) -> bool {
        self.event_type.is_some()
            || self.org.is_some()
            || self.since.is_some()
            || self.correlation_id.is_some()
            || self.error_match.is_some()
            || self.ids_from.is_some()
    }
}

fn parse_type_filter(text: &str) -> Result<TypeFilter, String> {
    TypeFilter::parse(text).map_err(|e| e.message)
}

fn parse_regex(text: &str) -> Result<Regex, String> {
    Regex::new(text).map_err(|e| format!("invalid regular expression: {e}"))
}

/// The filters, ready to test entries.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    event_type: Option<TypeFilter>,
    org: Option<String>,
    since: Option<DateTime<Utc>>,
    correlation_id: Option<String>,
    error_match: Option<Regex>,
    ids: Option<HashSet<String>>,
}

impl Filter {
    /// Checks and loads the filters (reads `--ids-from`).
    pub fn compile(args: &FilterArgs) -> Result<Self, Error> {
        let ids = match &args.ids_from {
            Some(path) => Some(read_ids(path)?),
            None => None,
        };
        Ok(Self {
            event_type: args.event_type.clone(),
            org: args.org.clone(),
            since: args.since,
            correlation_id: args.correlation_id.clone(),
            error_match: args.error_match.clone(),
            ids,
        })
    }

    /// True when no filter was given.
    pub fn is_empty(&self) -> bool {
        self.event_type.is_none()
            && self.org.is_none()
            && self.since.is_none()
            && self.correlation_id.is_none()
            && self.error_match.is_none()
            && self.ids.is_none()
    }

    /// True when `entry` passes every given filter.
    pub fn matches(&self, entry: &DeadEntry) -> bool {
        let equals = |want: &Option<String>, name: &str| want.as_deref().is_none_or(|w| entry.get(name) == Some(w));
        let type_matches =
            self.event_type.as_ref().is_none_or(|want| want.matches(entry.get(field::TYPE).unwrap_or("")));
        type_matches
            && equals(&self.org, field::ORG_ID)
            && equals(&self.correlation_id, field::CORRELATION_ID)
            && self.since.is_none_or(|since| entry.failed_at >= since)
            && self.error_match.as_ref().is_none_or(|re| re.is_match(entry.error().unwrap_or("")))
            && self.ids.as_ref().is_none_or(|ids| ids.contains(entry.id()))
    }
}

/// Reads one entry id per line; a line that is not an id is refused.
fn read_ids(path: &PathBuf) -> Result<HashSet<String>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::BadInput(format!("cannot read --ids-from {}: {e}", path.display())))?;
    let mut ids = HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if StreamId::parse(line).is_err() {
            return Err(Error::BadInput(format!(
                "--ids-from {} line {}: `{line}` is not a stream entry id (<ms>-<seq>)",
                path.display(),
                number + 1
            )));
        }
        ids.insert(line.to_owned());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use xentri_core::stream::StreamEntry;

    use super::*;

    fn entry(id: &str, fields: &[(&str, &str)]) -> DeadEntry {
        DeadEntry::new(StreamEntry {
            id: id.into(),
            fields: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        })
    }

    #[test]
    fn all_filters_must_match() {
        let e = entry(
            "1732600000000-0",
            &[
                ("type", "xentri.soul.updated.v1"),
                ("org_id", "o1"),
                ("correlation_id", "c1"),
                ("dlq_error", "timeout after 5s"),
                ("dlq_failed_at", "2026-11-26T10:00:00Z"),
            ],
        );
        let filter = |args: FilterArgs| Filter::compile(&args).expect("valid").matches(&e);
        assert!(filter(FilterArgs::default()));
        assert!(filter(FilterArgs { event_type: parse_type_filter("xentri.soul.*").ok(), ..Default::default() }));
        assert!(!filter(FilterArgs { event_type: parse_type_filter("xentri.site.*").ok(), ..Default::default() }));
        assert!(parse_type_filter("xentri.soul").is_err());
        assert!(filter(FilterArgs { org: Some("o1".into()), correlation_id: Some("c1".into()), ..Default::default() }));
        assert!(!filter(FilterArgs { org: Some("o2".into()), ..Default::default() }));
        assert!(filter(FilterArgs { error_match: parse_regex("^time.*\\d+s$").ok(), ..Default::default() }));
        assert!(!filter(FilterArgs { error_match: parse_regex("refused").ok(), ..Default::default() }));
        assert!(filter(FilterArgs { since: parse_since("2026-11-26T09:00:00Z").ok(), ..Default::default() }));
        assert!(!filter(FilterArgs { since: parse_since("2026-11-26T11:00:00Z").ok(), ..Default::default() }));
    }

    #[test]
    fn bad_regex_is_refused() {
        assert!(parse_regex("(").is_err());
    }
}
