//! Optimistic concurrency on a resource's `version`: the version is the
//! `ETag` (`"7"`); an update names the version it was made from in
//! `If-Match` (missing → 428, another version → 412), and a read with
//! `If-None-Match` naming the current version is a 304.

use http::HeaderMap;

use crate::problem::{ApiError, Problem, ProblemKind};

/// The `ETag` of `version`: a strong tag, the number in quotes.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The versions an update's `If-Match` names: 428 when the header is missing
/// or `*` (an update must name the version it was made from), 400 when it is
/// not a list of strong tags of versions.
pub fn if_match(headers: &HeaderMap) -> Result<Vec<i64>, ApiError> {
    let Some(value) = headers.get(http::header::IF_MATCH) else {
        return Err(Problem::new(
            ProblemKind::PreconditionRequired,
            "Header If-Match is required on this request: the ETag of the version the change was made from",
        )
        .into());
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Err(Problem::new(
            ProblemKind::PreconditionRequired,
            "If-Match: * does not name a version; send the ETag of the version the change was made from",
        )
        .into());
    }
    parse_tags(text).ok_or_else(|| {
        Problem::new(ProblemKind::MalformedRequest, "Header If-Match must list ETags of versions, e.g. \"3\"").into()
    })
}

/// Refuses the update (412) unless `current` is one of the versions `If-Match` named.
pub fn check(named: &[i64], current: i64, resource: &str) -> Result<(), ApiError> {
    if named.contains(&current) {
        Ok(())
    } else {
        Err(Problem::new(
            ProblemKind::PreconditionFailed,
            format!("The {resource} has changed: it is at version {current}, ETag {}", etag(current)),
        )
        .into())
    }
}

/// Whether `If-None-Match` names `version` (or is `*`): the client's copy is
/// current. Weak tags compare as strong ones here (RFC 9110: weak comparison).
pub fn not_modified(headers: &HeaderMap, version: i64) -> bool {
    headers.get_all(http::header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|text| {
        text.trim() == "*"
            || text.split(',').any(|tag| {
                let tag = tag.trim();
                tag.strip_prefix("W/").unwrap_or(tag) == etag(version)
            })
    })
}

/// `"1", "2"` → `[1, 2]`; `None` for anything else (weak tags included: an
/// update compares strongly).
fn parse_tags(text: &str) -> Option<Vec<i64>> {
    text.split(',')
        .map(|tag| {
            let digits = tag.trim().strip_prefix('"')?.strip_suffix('"')?;
            if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: http::header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().expect("header"));
        headers
    }

    fn kind(result: Result<Vec<i64>, ApiError>) -> Option<ProblemKind> {
        match result {
            Err(ApiError::Problem(problem)) => Some(problem.kind),
            _ => None,
        }
    }

    #[test]
    fn if_match_is_required_and_names_versions() {
        assert_eq!(kind(if_match(&HeaderMap::new())), Some(ProblemKind::PreconditionRequired));
        assert_eq!(kind(if_match(&headers(http::header::IF_MATCH, "*"))), Some(ProblemKind::PreconditionRequired));
        for bad in ["3", "W/\"3\"", "\"x\"", "\"\"", "\"3\",", "\"-1\""] {
            assert_eq!(
                kind(if_match(&headers(http::header::IF_MATCH, bad))),
                Some(ProblemKind::MalformedRequest),
                "{bad}"
            );
        }
        assert_eq!(if_match(&headers(http::header::IF_MATCH, "\"3\"")).ok(), Some(vec![3]));
        assert_eq!(if_match(&headers(http::header::IF_MATCH, "\"3\", \"4\"")).ok(), Some(vec![3, 4]));
        assert!(check(&[3], 3, "Soul").is_ok());
        assert!(
            matches!(check(&[3], 4, "Soul"), Err(ApiError::Problem(p)) if p.kind == ProblemKind::PreconditionFailed)
        );
    }

    #[test]
    fn if_none_match() {
        assert!(!not_modified(&HeaderMap::new(), 3));
        assert!(not_modified(&headers(http::header::IF_NONE_MATCH, "\"3\""), 3));
        assert!(not_modified(&headers(http::header::IF_NONE_MATCH, "\"2\", W/\"3\""), 3));
        assert!(not_modified(&headers(http::header::IF_NONE_MATCH, "*"), 3));
        assert!(!not_modified(&headers(http::header::IF_NONE_MATCH, "\"2\""), 3));
        assert_eq!(etag(7), "\"7\"");
    }
}
