//! The `site_builds` group: runs the site.build job
//! (`xentri.website.build_requested.v1` on the jobs stream) that a site's
//! transition to `publishing` enqueued. A build reads the site, checks its
//! pages, renders each to static HTML ([`render`]), stores the documents and
//! takes the build's step of the Website Publish Flow
//! (`xentri_core::site::machine`): to `live` with `xentri.website.published.v1`,
//! or to `failed` with `xentri.website.build_failed.v1` and the reason. All of
//! it is written in the transaction that records the job as processed, so a
//! build's effect happens once however often its job is delivered.
//!
//! Which job builds: only the one the site still names (`sites.build_job_id`)
//! and only while the site is `publishing`, or `failed` (a job that was
//! dead-lettered, and is replayed with `dlq-tool replay`, may still make the
//! site live). A job superseded by an edit or a newer publish request, or
//! whose site is live already, is done without building.
//!
//! Failures: pages the build cannot render fail the site at once (retrying
//! cannot help; the job is done, not dead-lettered). Anything else (the
//! database away) is transient: retried with backoff, then dead-lettered;
//! [`Handler::on_dead_letter`] then fails the site with the reason.

pub mod render;

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;
use xentri_core::dlq::DeadLetter;
use xentri_core::site::machine::{self, Caller, SiteState};
use xentri_core::site::page::{self, PageError};
use xentri_core::site::{self as vocabulary, Site, SiteRow};
use xentri_core::store::{AppendOutcome, NewEventRecord, append_events};
use xentri_core::{Settings, StoredEvent, sql};

use crate::handler::{BoxFuture, Handler, HandlerError, Handling, PgDelivery, PostgresStoreHandler};

/// The group name.
pub const GROUP: &str = "site_builds";
/// The actor of the build's events.
pub const ACTOR: &str = "service:site-builder";
/// Most page errors a failure reason lists.
const REASON_ERRORS: usize = 5;

/// Builds sites.
pub struct SiteBuilds {
    /// The jobs work stream, where build jobs arrive.
    jobs: String,
    /// The events work stream, where the build's events go.
    events: String,
    /// Builds left to fail on purpose (`worker.test_failing_site_builds`).
    failing: AtomicU32,
}

impl SiteBuilds {
    /// Reads the jobs stream.
    pub fn new(settings: &Settings) -> Self {
        Self {
            jobs: settings.streams.jobs.work.clone(),
            events: settings.streams.events.work.clone(),
            failing: AtomicU32::new(settings.worker.test_failing_site_builds),
        }
    }
}

impl Handler for SiteBuilds {
    fn group(&self) -> &str {
        GROUP
    }

    fn streams(&self) -> Vec<String> {
        vec![self.jobs.clone()]
    }

    fn accepts(&self, event_type: &str) -> bool {
        event_type == vocabulary::BUILD_REQUESTED
    }

    fn handling(&self) -> Handling<'_> {
        Handling::Postgres(self)
    }

    /// A build job dead-lettered: its site, if still `publishing` for this
    /// job, fails with the reason, so nobody waits on a build that stopped.
    fn on_dead_letter<'a>(
        &'a self,
        event: Option<&'a StoredEvent>,
        letter: &'a DeadLetter,
        db: &'a sqlx::PgPool,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(job) = event else { return Ok(()) };
            let site_id = site_id(job)?;
            let mut tx = xentri_core::db::begin_as(db, xentri_core::roles::WORKER, Some(job.org_id)).await?;
            let Some((site, _)) = lock(&mut tx, site_id).await? else { return Ok(()) };
            if site.state != SiteState::Publishing || site.build_job_id != Some(job.id) {
                return Ok(());
            }
            let reason = format!(
                "the build failed {} times and its job is in the dead-letter queue ({}): {}",
                letter.attempts, letter.id, letter.error
            );
            self.fail(&mut tx, job, &site, &reason, true).await?;
            tx.commit().await?;
            tracing::warn!(site_id = %site_id, job_id = %job.id, "site build dead-lettered; the site failed");
            Ok(())
        })
    }
}

impl PostgresStoreHandler for SiteBuilds {
    fn handle<'a>(&'a self, delivery: PgDelivery<'a>) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let injected = self.failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1));
            if injected.is_ok() {
                return Err(HandlerError::transient("injected build failure (worker.test_failing_site_builds)"));
            }
            let job = delivery.event;
            let site_id = site_id(job).map_err(|e| HandlerError::permanent(format!("{e:#}")))?;
            self.build(delivery.tx, job, site_id).await.map_err(HandlerError::Transient)
        })
    }
}

impl SiteBuilds {
    /// Runs build job `job` of site `site_id` in `tx`.
    async fn build(&self, tx: &mut PgConnection, job: &StoredEvent, site_id: Uuid) -> anyhow::Result<()> {
        let Some((site, stored_pages)) = lock(tx, site_id).await? else {
            tracing::warn!(site_id = %site_id, job_id = %job.id, "site build: no such site; nothing to build");
            return Ok(());
        };
        let current = site.build_job_id == Some(job.id);
        if !current || !matches!(site.state, SiteState::Publishing | SiteState::Failed) {
            tracing::info!(
                site_id = %site_id, job_id = %job.id, state = site.state.as_str(), current,
                "site build: the site no longer waits for this job; nothing to build"
            );
            return Ok(());
        }
        let pages = match page::parse_pages(&stored_pages, "/pages") {
            Ok(pages) if pages.is_empty() => Err("the site has no pages to publish".to_owned()),
            Ok(pages) => Ok(pages),
            Err(errors) => Err(invalid_content(&errors)),
        };
        let pages = match pages {
            Ok(pages) => pages,
            Err(reason) if site.state == SiteState::Publishing => {
                return self.fail(tx, job, &site, &reason, false).await;
            }
            Err(reason) => {
                tracing::info!(site_id = %site_id, job_id = %job.id, reason = %reason, "site build: the failed site stays failed");
                return Ok(());
            }
        };
        let transition = machine::transition(site.state, SiteState::Live, Caller::Build)?;
        let published_version = site.version + 1;
        let slugs: Vec<&str> = pages.iter().map(|page| page.slug.as_str()).collect();
        let documents: Vec<String> = pages.iter().map(|page| render::page(&site.name, page)).collect();
        sqlx::query(sql::SITE_HTML_DELETE).bind(site_id).execute(&mut *tx).await?;
        sqlx::query(sql::SITE_HTML_INSERT)
            .bind(site_id)
            .bind(site.org_id)
            .bind(published_version)
            .bind(&slugs)
            .bind(&documents)
            .execute(&mut *tx)
            .await?;
        let built = outcome(tx, &site, transition.to, None).await?;
        let payload = json!({
            "site_id": site_id, "version": built.version, "published_version": built.published_version,
            "pages": slugs, "build_job_id": job.id, "from": transition.from,
        });
        self.emit(tx, job, vocabulary::PUBLISHED, &payload).await?;
        tracing::info!(site_id = %site_id, job_id = %job.id, pages = slugs.len(), "site built and live");
        Ok(())
    }

    /// Moves `site` to `failed` with `reason` and appends
    /// `xentri.website.build_failed.v1`, in `tx`.
    async fn fail(
        &self,
        tx: &mut PgConnection,
        job: &StoredEvent,
        site: &Site,
        reason: &str,
        dead_lettered: bool,
    ) -> anyhow::Result<()> {
        let transition = machine::transition(site.state, SiteState::Failed, Caller::Build)?;
        let failed = outcome(tx, site, transition.to, Some(reason)).await?;
        let payload = json!({
            "site_id": site.id, "version": failed.version, "reason": reason, "build_job_id": job.id,
            "dead_lettered": dead_lettered,
        });
        self.emit(tx, job, vocabulary::BUILD_FAILED, &payload).await?;
        tracing::info!(site_id = %site.id, job_id = %job.id, reason, "site build failed");
        Ok(())
    }

    /// Appends an event of the build to the events stream, in `tx`: the
    /// job's org, trace and correlation id, caused by the job.
    async fn emit(
        &self,
        tx: &mut PgConnection,
        job: &StoredEvent,
        event_type: &str,
        payload: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let payload = payload.to_string();
        let causation_id = job.id.to_string();
        let record = NewEventRecord {
            org_id: job.org_id,
            idempotency_key: None,
            request_hash: None,
            id: Uuid::now_v7(),
            event_type,
            payload: &payload,
            actor: ACTOR,
            trace_id: &job.trace_id,
            correlation_id: &job.correlation_id,
            causation_id: Some(&causation_id),
            occurred_at: Utc::now(),
        };
        let outcome = append_events(tx, xentri_core::roles::WORKER, &self.events, 0.0, &[record]).await?;
        anyhow::ensure!(matches!(outcome.as_slice(), [AppendOutcome::Appended(_)]), "not appended: {outcome:?}");
        // Delivered at commit: the relay publishes the build's event at once.
        // Builds are rare, so holding the notification lock at their commits
        // costs nothing the appends of requests would notice.
        sqlx::query(sql::NOTIFY_OUTBOX).execute(&mut *tx).await?;
        Ok(())
    }
}

/// `payload.site_id` of a build job.
fn site_id(job: &StoredEvent) -> anyhow::Result<Uuid> {
    let payload = job.payload_object()?;
    payload
        .get("site_id")
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("the build job's payload.site_id is missing or not a UUID"))
}

/// Site `id` of the transaction's org, locked, with its stored pages as they are.
async fn lock(tx: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<(Site, serde_json::Value)>> {
    let row: Option<SiteRow> = sqlx::query_as(sql::SITE_BY_ID_FOR_UPDATE).bind(id).fetch_optional(tx).await?;
    Ok(row.map(SiteRow::into_site).transpose()?)
}

/// Writes the build's outcome: `site` (locked) to `state`, with `reason` when
/// it failed; live, its new version is the one published.
async fn outcome(tx: &mut PgConnection, site: &Site, state: SiteState, reason: Option<&str>) -> anyhow::Result<Site> {
    let row: Option<SiteRow> = sqlx::query_as(sql::SITE_BUILD_OUTCOME)
        .bind(site.id)
        .bind(site.version)
        .bind(state.as_str())
        .bind(reason)
        .bind(state == SiteState::Live)
        .fetch_optional(tx)
        .await?;
    let row = row.ok_or_else(|| anyhow::anyhow!("a locked site changed version"))?;
    Ok(row.into_site()?.0)
}

/// The failure reason for pages the build cannot render: the first errors,
/// each at its JSON pointer.
fn invalid_content(errors: &[PageError]) -> String {
    let listed: Vec<String> = errors.iter().take(REASON_ERRORS).map(ToString::to_string).collect();
    let more = errors.len().saturating_sub(REASON_ERRORS);
    let more = if more > 0 { format!(" (and {more} more)") } else { String::new() };
    format!("the pages cannot be rendered: {}{more}", listed.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reason_names_each_bad_value() {
        let errors: Vec<PageError> = (0..7)
            .map(|i| PageError {
                pointer: format!("/pages/0/blocks/{i}/src"),
                message: "must be an http(s):// URL".into(),
            })
            .collect();
        let reason = invalid_content(&errors);
        assert!(reason.starts_with("the pages cannot be rendered: /pages/0/blocks/0/src: must be"), "{reason}");
        assert!(reason.ends_with("(and 2 more)"), "{reason}");
    }
}
