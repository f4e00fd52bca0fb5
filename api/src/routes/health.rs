//! `GET /health` (liveness) and `GET /health/ready` (PostgreSQL and Redis
//! pinged, the answer reused for `api.readiness_cache_ms`).

use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use super::with_state;
use crate::problem::{ApiError, Problem, ProblemKind, respond};
use crate::state::AppState;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    /// Always `ok` on a 200.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process serves.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The process is alive", body = HealthStatus)))]
pub fn health() -> BoxedFilter<(Response,)> {
    warp::path!("health")
        .and(warp::get())
        .map(|| warp::reply::json(&HealthStatus { status: "ok" }).into_response())
        .boxed()
}

/// Readiness: PostgreSQL and Redis answer.
// The answer is reused for `api.readiness_cache_ms`, so a probe storm pings
// them at most once per period and a probe never waits for a database
// connection of its own.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "PostgreSQL and Redis answer", body = HealthStatus),
        (status = 503, description = "PostgreSQL or Redis is down; `detail` names which",
            body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    ))]
pub fn ready(state: AppState) -> BoxedFilter<(Response,)> {
    let cache = Arc::new(ReadinessCache::new(state.settings.api.readiness_cache()));
    warp::path!("health" / "ready")
        .and(warp::get())
        .and(with_state(state))
        .and(warp::any().map(move || cache.clone()))
        .then(answer_ready)
        .map(respond)
        .boxed()
}

/// What a readiness check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// PostgreSQL and Redis answered.
    Ready,
    /// These did not (`postgres`, `redis`).
    Unavailable(Vec<&'static str>),
}

/// The last readiness answer, reused for a period; at most one check runs at
/// a time.
pub struct ReadinessCache {
    /// How long an answer is reused.
    ttl: Duration,
    /// The last answer and when its check ended.
    last: std::sync::Mutex<Option<(Instant, Readiness)>>,
    /// Held by the one check under way.
    checking: tokio::sync::Mutex<()>,
}

impl ReadinessCache {
    /// Reuses each answer for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, last: std::sync::Mutex::new(None), checking: tokio::sync::Mutex::new(()) }
    }

    /// The answer of a check that ended less than the period ago; else runs
    /// `check` and keeps its answer. While a check is under way the previous
    /// answer is given, however old, rather than a second check or a queue;
    /// only the very first callers wait for the first check.
    pub async fn answer<F, Fut>(&self, check: F) -> Readiness
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Readiness>,
    {
        if let Some(fresh) = self.last(Some(self.ttl)) {
            return fresh;
        }
        let _checking = match self.checking.try_lock() {
            Ok(guard) => guard,
            Err(_) => match self.last(None) {
                Some(previous) => return previous,
                None => self.checking.lock().await,
            },
        };
        // Whoever held the lock may have just checked.
        if let Some(fresh) = self.last(Some(self.ttl)) {
            return fresh;
        }
        let readiness = check().await;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), readiness.clone()));
        readiness
    }

    /// The last answer, if there is one younger than `younger_than`.
    fn last(&self, younger_than: Option<Duration>) -> Option<Readiness> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|(at, _)| younger_than.is_none_or(|ttl| at.elapsed() < ttl))
            .map(|(_, readiness)| readiness.clone())
    }
}

async fn answer_ready(state: AppState, cache: Arc<ReadinessCache>) -> Result<Response, ApiError> {
    match cache.answer(|| check_ready(&state)).await {
        Readiness::Ready => Ok(warp::reply::json(&HealthStatus { status: "ok" }).into_response()),
        Readiness::Unavailable(down) => {
            let detail = format!("Unavailable: {}", down.join(", "));
            Err(Problem::new(ProblemKind::ServiceUnavailable, detail).into())
        }
    }
}

/// Pings PostgreSQL (one pooled connection, within the pool's acquire
/// timeout) and Redis.
async fn check_ready(state: &AppState) -> Readiness {
    let redis_timeout = state.settings.redis.timeout();
    let (postgres, redis) = tokio::join!(state.db.ping(), ping_redis(&state.redis, redis_timeout));
    let mut down = Vec::new();
    if let Err(error) = postgres {
        tracing::warn!(error = %error, "readiness: postgres unavailable");
        down.push("postgres");
    }
    if let Err(error) = redis {
        tracing::warn!(error = %error, "readiness: redis unavailable");
        down.push("redis");
    }
    if down.is_empty() { Readiness::Ready } else { Readiness::Unavailable(down) }
}

async fn ping_redis(pool: &deadpool_redis::Pool, timeout: Duration) -> Result<(), anyhow::Error> {
    let ping = async {
        let mut conn = pool.get().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(timeout, ping).await.map_err(|_| anyhow::anyhow!("redis ping timed out"))?
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_probe_storm_runs_one_check_per_period() {
        let cache = ReadinessCache::new(Duration::from_secs(60));
        let checks = AtomicUsize::new(0);
        let check = || async {
            checks.fetch_add(1, Ordering::SeqCst);
            // Still checking while the rest of the storm arrives.
            tokio::task::yield_now().await;
            Readiness::Ready
        };
        let answers = futures_util::future::join_all((0..1000).map(|_| cache.answer(check))).await;
        assert!(answers.iter().all(|a| *a == Readiness::Ready));
        assert_eq!(checks.load(Ordering::SeqCst), 1, "1,000 concurrent probes, one check");
    }

    #[tokio::test]
    async fn an_answer_older_than_the_period_is_checked_again() {
        let period = Duration::from_millis(50);
        let cache = ReadinessCache::new(period);
        let checks = AtomicUsize::new(0);
        let check = || async {
            checks.fetch_add(1, Ordering::SeqCst);
            Readiness::Unavailable(vec!["redis"])
        };
        assert_eq!(cache.answer(check).await, Readiness::Unavailable(vec!["redis"]));
        assert_eq!(cache.answer(check).await, Readiness::Unavailable(vec!["redis"]));
        assert_eq!(checks.load(Ordering::SeqCst), 1, "a failure is reused for the period too");
        // The period passing is the condition itself.
        tokio::time::sleep(period).await;
        cache.answer(check).await;
        assert_eq!(checks.load(Ordering::SeqCst), 2);
    }
}
