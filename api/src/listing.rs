//! A page of events, written from PostgreSQL's rows straight into the JSON
//! answer, in the shape `EventPage` documents.
//!
//! A page is the api's largest and most frequent answer (50 events, ~40 KB).
//! Decoding each row into a [`xentri_core::StoredEvent`] and serialising it
//! again allocated every string twice and parsed every payload; here each
//! column is read where the row holds it and written once, with the same
//! serialisers `serde` uses for the documented types (strings, UUIDs,
//! numbers, timestamps), so the bytes are those of `EventPage`. The payload
//! is copied as stored: the column is `json`, which PostgreSQL checked when
//! it was appended, and its text is what the append answered with.
//! `events::list_pages_are_the_documented_types_byte_for_byte` holds a page
//! to the rendering of the same events one by one.

use serde::Serialize;
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{Row, TypeInfo, ValueRef};
use xentri_core::store::{Position, TxId};

/// The columns of `sql::LIST_EVENTS`, in order.
mod column {
    pub const ID: usize = 0;
    pub const SEQ: usize = 1;
    pub const ORG_ID: usize = 2;
    pub const TYPE: usize = 3;
    pub const PAYLOAD: usize = 4;
    pub const ACTOR: usize = 5;
    pub const TRACE_ID: usize = 6;
    pub const CORRELATION_ID: usize = 7;
    pub const CAUSATION_ID: usize = 8;
    pub const OCCURRED_AT: usize = 9;
    pub const TX_ID: usize = 10;
}

/// Renders the first `limit` of `rows` (the page asked for, plus one more
/// when more are available) as `{"data":[…],"next":…,"has_more":…}`.
/// `after` is the cursor the page was asked after: `next` when the page is
/// empty.
pub fn render(rows: &[PgRow], limit: usize, after: Option<Position>) -> Result<Vec<u8>, sqlx::Error> {
    let shown = &rows[..rows.len().min(limit)];
    let mut out = Vec::with_capacity(64 + shown.iter().map(len_hint).sum::<usize>());
    out.extend_from_slice(b"{\"data\":[");
    let mut last = None;
    for (n, row) in shown.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        last = Some(event(&mut out, row)?);
    }
    out.extend_from_slice(b"],\"next\":");
    match last.or(after) {
        Some(position) => value(&mut out, &position.cursor())?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"has_more\":");
    out.extend_from_slice(if rows.len() > limit { b"true}" } else { b"false}" });
    Ok(out)
}

/// Writes one event in `StoredEvent`'s field order; returns its position.
fn event(out: &mut Vec<u8>, row: &PgRow) -> Result<Position, sqlx::Error> {
    let seq: i64 = row.try_get(column::SEQ)?;
    out.extend_from_slice(b"{\"id\":");
    value(out, &row.try_get::<uuid::Uuid, _>(column::ID)?)?;
    out.extend_from_slice(b",\"seq\":");
    value(out, &seq)?;
    out.extend_from_slice(b",\"org_id\":");
    value(out, &row.try_get::<uuid::Uuid, _>(column::ORG_ID)?)?;
    out.extend_from_slice(b",\"type\":");
    value(out, row.try_get::<&str, _>(column::TYPE)?)?;
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(payload(row)?);
    out.extend_from_slice(b",\"actor\":");
    value(out, row.try_get::<&str, _>(column::ACTOR)?)?;
    out.extend_from_slice(b",\"trace_id\":");
    value(out, row.try_get::<&str, _>(column::TRACE_ID)?)?;
    out.extend_from_slice(b",\"correlation_id\":");
    value(out, row.try_get::<&str, _>(column::CORRELATION_ID)?)?;
    out.extend_from_slice(b",\"causation_id\":");
    value(out, &row.try_get::<Option<&str>, _>(column::CAUSATION_ID)?)?;
    out.extend_from_slice(b",\"occurred_at\":");
    value(out, &row.try_get::<chrono::DateTime<chrono::Utc>, _>(column::OCCURRED_AT)?)?;
    out.push(b'}');
    Ok(Position { tx_id: row.try_get::<TxId, _>(column::TX_ID)?, seq })
}

/// The payload's JSON text as the row holds it. A `json` column's value is
/// its text in either format; a `jsonb` one's binary form starts with a
/// version byte (1) before the text.
fn payload(row: &PgRow) -> Result<&[u8], sqlx::Error> {
    let raw = row.try_get_raw(column::PAYLOAD)?;
    let versioned = raw.type_info().name() == "JSONB" && raw.format() == PgValueFormat::Binary;
    let bytes = raw.as_bytes().map_err(|source| decode_error(column::PAYLOAD, source))?;
    let text = if versioned { bytes.strip_prefix(&[1]) } else { Some(bytes) };
    text.filter(|text| !text.is_empty())
        .ok_or_else(|| decode_error(column::PAYLOAD, "the payload is not JSON text".into()))
}

/// Serialises `value` with `serde_json`, as the derived `Serialize` of the
/// documented types does.
fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), sqlx::Error> {
    serde_json::to_writer(out, value).map_err(|source| sqlx::Error::Decode(Box::new(source)))
}

fn decode_error(index: usize, source: sqlx::error::BoxDynError) -> sqlx::Error {
    sqlx::Error::ColumnDecode { index: index.to_string(), source }
}

/// About how many bytes `row` renders to: its payload, plus the other
/// fields and their names (~300 bytes for the usual ids and names).
fn len_hint(row: &PgRow) -> usize {
    const OTHER_FIELDS: usize = 320;
    OTHER_FIELDS + row.try_get_raw(column::PAYLOAD).ok().and_then(|raw| raw.as_bytes().ok()).map_or(0, <[u8]>::len)
}
