//! `GET /health` (liveness) and `GET /health/ready` (PostgreSQL and Redis pinged).

use std::time::Duration;

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
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "PostgreSQL and Redis answer", body = HealthStatus),
        (status = 503, description = "PostgreSQL or Redis is down; `detail` names which",
            body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    ))]
pub fn ready(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("health" / "ready").and(warp::get()).and(with_state(state)).then(check_ready).map(respond).boxed()
}

async fn check_ready(state: AppState) -> Result<Response, ApiError> {
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
    if down.is_empty() {
        Ok(warp::reply::json(&HealthStatus { status: "ok" }).into_response())
    } else {
        let detail = format!("Unavailable: {}", down.join(", "));
        Err(Problem::new(ProblemKind::ServiceUnavailable, detail).into())
    }
}

async fn ping_redis(pool: &deadpool_redis::Pool, timeout: Duration) -> Result<(), anyhow::Error> {
    let ping = async {
        let mut conn = pool.get().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(timeout, ping).await.map_err(|_| anyhow::anyhow!("redis ping timed out"))?
}
