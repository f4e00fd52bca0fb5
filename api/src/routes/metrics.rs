//! `GET /api/v1/metrics`: Prometheus text, no auth.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use super::with_state;
use crate::state::AppState;

/// The Prometheus text exposition.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        body = String, content_type = "text/plain; version=0.0.4")))]
pub fn metrics(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "metrics")
        .and(warp::get())
        .and(with_state(state))
        .map(|state: AppState| {
            warp::reply::with_header(state.metrics.render(), "content-type", "text/plain; version=0.0.4; charset=utf-8")
                .into_response()
        })
        .boxed()
}
