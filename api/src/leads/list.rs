//! The list of an org's leads: newest first by `(created_at, id)`, paged with
//! an opaque cursor, filtered by status. The first page without a filter at
//! the default size is what [`super::cache`] holds.

use chrono::DateTime;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::cache;
use super::machine::LeadStatus;
use super::store::{self, After, Lead};
use crate::problem::ApiError;
use crate::state::AppState;

/// Leads per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i64 = 50;
/// Most leads per page.
pub const MAX_LIMIT: i64 = 200;
/// A cursor's length: 16 hex digits of `created_at` in microseconds, 32 of the id.
pub const CURSOR_LEN: usize = 48;

/// What to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery {
    /// Only leads of this status.
    pub status: Option<LeadStatus>,
    /// After this lead (a previous page's `next`).
    pub after: Option<After>,
    /// Page size.
    pub limit: i64,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self { status: None, after: None, limit: DEFAULT_LIMIT }
    }
}

impl ListQuery {
    /// Whether this is the page the cache holds: the first, unfiltered, at the
    /// default size.
    pub fn is_cached_page(&self) -> bool {
        *self == Self::default()
    }
}

/// A page of leads.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadPage {
    /// Leads, newest first.
    pub data: Vec<Lead>,
    /// Opaque cursor to pass as `after` for the next page; null on the last page.
    #[schema(example = "00062a1b2c3d4e5f0193a1b2c3d47e8f9a0b1c2d3e4f5a6b")]
    pub next: Option<String>,
    /// Whether more leads follow this page.
    pub has_more: bool,
}

/// The cursor of the page after `lead`.
pub fn cursor(lead: &Lead) -> String {
    // Two's complement keeps a time before 1970 16 digits long; parsing undoes it.
    format!("{:016x}{}", lead.created_at.timestamp_micros() as u64, lead.id.simple())
}

/// The position a cursor names; `None` unless it is one [`cursor`] wrote.
pub fn parse_cursor(text: &str) -> Option<After> {
    if text.len() != CURSOR_LEN || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let (micros, id) = text.split_at(16);
    let micros = u64::from_str_radix(micros, 16).ok()? as i64;
    let created_at = DateTime::from_timestamp_micros(micros)?;
    let id = Uuid::try_parse(id).ok()?;
    Some(After { created_at, id })
}

/// One page of `org_id`'s leads as the answer's JSON body; the cached first
/// page from Redis when it holds it, else from PostgreSQL (filling the cache).
pub async fn page(state: &AppState, org_id: Uuid, query: ListQuery) -> Result<String, ApiError> {
    let cached = if query.is_cached_page() { cache::read(state, org_id).await } else { cache::Cached::Unavailable };
    let generation = match cached {
        cache::Cached::Hit(body) => return Ok(body),
        cache::Cached::Miss(generation) => Some(generation),
        cache::Cached::Unavailable => None,
    };
    let mut tx = state.db.begin(org_id).await?;
    let mut data = store::page(&mut tx, org_id, query.status, query.after, query.limit + 1).await?;
    tx.finish_read();
    let has_more = data.len() as i64 > query.limit;
    data.truncate(usize::try_from(query.limit).unwrap_or(0));
    let next = if has_more { data.last().map(cursor) } else { None };
    let body = serde_json::to_string(&LeadPage { data, next, has_more }).map_err(|e| ApiError::Internal(e.into()))?;
    if let Some(generation) = generation {
        cache::store(state, org_id, generation, &body).await;
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leads::store::LeadSource;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let at = DateTime::from_timestamp_micros(1_764_500_000_123_456).expect("time");
        let lead = Lead {
            id: Uuid::now_v7(),
            org_id: Uuid::nil(),
            name: "n".into(),
            email: "a@b.co".into(),
            company: None,
            source: LeadSource::Manual,
            status: LeadStatus::New,
            version: 1,
            created_at: at,
            updated_at: at,
        };
        let text = cursor(&lead);
        assert_eq!(text.len(), CURSOR_LEN);
        assert_eq!(parse_cursor(&text), Some(After { created_at: at, id: lead.id }));
        for bad in ["", "x", &text[1..], &text.to_uppercase(), &format!("{text}0"), &text.replace('0', "g")] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
