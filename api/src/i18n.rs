//! Problem titles in the caller's language (English, German, French,
//! Spanish), chosen in this order where the data exists:
//!
//! 1. the user's own preference (`PUT /api/v1/me/preferences`);
//! 2. `Accept-Language`;
//! 3. the org's default (`PUT /api/v1/org/settings`);
//! 4. English.
//!
//! The stored choices are read only when a problem is rendered for an
//! authenticated caller ([`for_problem`]): a successful request costs no
//! database round trip for them.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use xentri_core::sql;

use crate::auth::Principal;
use crate::db::Db;

/// How long a problem waits for the stored choices before its title falls
/// back to `Accept-Language` or English: an error answer is never held up by a
/// slow database (which may be why it is an error).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(250);

/// A language problem titles are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English, the fallback.
    #[default]
    En,
    /// German.
    De,
    /// French.
    Fr,
    /// Spanish.
    Es,
}

impl Lang {
    /// Every supported language.
    pub const ALL: [Lang; 4] = [Lang::En, Lang::De, Lang::Fr, Lang::Es];

    /// The supported language of code `code` (`en`, `de`, `fr`, `es`), exactly.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|lang| lang.code() == code)
    }

    /// The best supported language of the request's `Accept-Language`, or
    /// English.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::accepted(headers).unwrap_or_default()
    }

    /// The best supported language of the request's `Accept-Language`, if it
    /// names one.
    pub fn accepted(headers: &HeaderMap) -> Option<Self> {
        headers.get(http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(Self::best_of)
    }

    /// Picks the highest-weighted supported language (RFC 9110 §12.5.4), or
    /// English.
    pub fn negotiate(header: &str) -> Self {
        Self::best_of(header).unwrap_or_default()
    }

    /// The highest-weighted supported language of an `Accept-Language` value.
    fn best_of(header: &str) -> Option<Self> {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            let Some(lang) = Self::parse(&primary) else { continue };
            if weight > 0.0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map(|(_, lang)| lang)
    }

    /// The `Content-Language` value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
        }
    }
}

/// The language of an answer with `status`, if it is or becomes a problem:
/// for an authenticated `caller` with `languages` to read their choices from,
/// [`for_problem`] (a database read, only now that there is a problem to
/// render); else `accepted` (the request's `Accept-Language`), or English. A
/// 503 never waits on the database.
pub async fn for_answer(
    languages: Option<&Db>,
    status: StatusCode,
    caller: Option<&Principal>,
    accepted: Option<Lang>,
) -> Lang {
    let renders_problem = status.is_client_error() || status.is_server_error();
    match (languages, caller) {
        (Some(db), Some(caller)) if renders_problem && status != StatusCode::SERVICE_UNAVAILABLE => {
            for_problem(db, caller.org_id, &caller.subject, accepted).await
        }
        _ => accepted.unwrap_or_default(),
    }
}

/// The language of a problem answered to `subject` of `org_id`, whose request
/// asked for `accepted` (its `Accept-Language`, if that names a supported
/// language): the resolution order of this module. The stored choices are
/// read in one round trip, bounded by [`LOOKUP_TIMEOUT`]; when they cannot be
/// read, `Accept-Language` or English decides.
pub async fn for_problem(db: &Db, org_id: Uuid, subject: &str, accepted: Option<Lang>) -> Lang {
    let (user, org) = match tokio::time::timeout(LOOKUP_TIMEOUT, stored_choices(db, org_id, subject)).await {
        Ok(Ok(choices)) => choices,
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "language choices unreadable; Accept-Language or English decides");
            (None, None)
        }
        Err(_elapsed) => {
            tracing::warn!("language choices not read in time; Accept-Language or English decides");
            (None, None)
        }
    };
    resolve(user, accepted, org)
}

/// The resolution order itself: the user's choice, then `Accept-Language`,
/// then the org's default, then English.
pub fn resolve(user: Option<Lang>, accepted: Option<Lang>, org: Option<Lang>) -> Lang {
    user.or(accepted).or(org).unwrap_or_default()
}

/// The user's and the org's stored choices.
async fn stored_choices(db: &Db, org_id: Uuid, subject: &str) -> Result<(Option<Lang>, Option<Lang>), sqlx::Error> {
    let mut tx = db.begin(org_id).await?;
    let (user, org): (Option<String>, Option<String>) =
        sqlx::query_as(sql::PROBLEM_LANGUAGES).bind(org_id).bind(subject).fetch_one(&mut *tx).await?;
    tx.finish_read();
    Ok((user.as_deref().and_then(Lang::parse), org.as_deref().and_then(Lang::parse)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(Lang::negotiate("de-DE,de;q=0.9,en;q=0.8"), Lang::De);
        assert_eq!(Lang::negotiate("ja, fr;q=0.5, es;q=0.7"), Lang::Es);
        assert_eq!(Lang::negotiate("ja"), Lang::En);
        assert_eq!(Lang::negotiate("fr;q=0, de;q=0.1"), Lang::De);
        assert_eq!(Lang::negotiate(""), Lang::En);
        assert_eq!(Lang::negotiate("FR-ca"), Lang::Fr);
        assert_eq!(Lang::best_of("ja, zh"), None, "no supported language named");
    }

    #[test]
    fn the_user_then_accept_language_then_the_org_then_english() {
        use Lang::*;
        assert_eq!(resolve(Some(Fr), Some(De), Some(Es)), Fr, "the user's choice first");
        assert_eq!(resolve(None, Some(De), Some(Es)), De, "then Accept-Language");
        assert_eq!(resolve(None, None, Some(Es)), Es, "then the org's default");
        assert_eq!(resolve(None, None, None), En, "then English");
    }

    #[tokio::test]
    async fn stored_choices_are_read_only_for_a_problem_and_never_hold_it_up() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Instant;

        // A "database" that accepts connections and never answers: a read
        // would hang, and every attempt shows as an accepted connection.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = silent.local_addr().expect("address");
        let attempts = Arc::new(AtomicUsize::new(0));
        let attempted = Arc::new(tokio::sync::Notify::new());
        let (counted, notify) = (attempts.clone(), attempted.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                notify.notify_one();
                held.push(socket);
            }
        });
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy(&format!("postgres://nobody@{address}/nothing"))
            .expect("a lazy pool");
        let db = Db::new(pool, xentri_core::roles::API);
        let caller = Principal {
            org_id: Uuid::new_v4(),
            actor: xentri_core::Actor::user("user_1").expect("an actor"),
            subject: "user_1".to_owned(),
            org_role: None,
            permissions: Vec::new(),
            trace_id: None,
        };
        for status in [200, 204, 304, 503] {
            let status = StatusCode::from_u16(status).expect("a status");
            assert_eq!(for_answer(Some(&db), status, Some(&caller), Some(Lang::De)).await, Lang::De, "{status}");
        }
        assert_eq!(attempts.load(Ordering::SeqCst), 0, "no database read without a problem to render, nor for a 503");

        let started = Instant::now();
        let lang = for_answer(Some(&db), StatusCode::NOT_FOUND, Some(&caller), Some(Lang::Fr)).await;
        assert_eq!(lang, Lang::Fr, "unreadable choices leave it to Accept-Language");
        assert!(started.elapsed() < Duration::from_secs(5), "bounded by the lookup timeout: {:?}", started.elapsed());
        tokio::time::timeout(Duration::from_secs(5), attempted.notified())
            .await
            .expect("a problem reads the stored choices");
        let anonymous = for_answer(Some(&db), StatusCode::UNAUTHORIZED, None, None).await;
        assert_eq!(anonymous, Lang::En, "no caller, no Accept-Language: English");
    }

    #[test]
    fn codes_round_trip() {
        for lang in Lang::ALL {
            assert_eq!(Lang::parse(lang.code()), Some(lang));
            assert_eq!(serde_json::to_value(lang).ok(), Some(serde_json::Value::from(lang.code())));
        }
        assert_eq!(Lang::parse("it"), None);
        assert_eq!(Lang::parse("DE"), None, "codes are exact");
    }
}
