//! The recovery drills of issue 14 in their short form (outages of 3 s, a
//! spike to 200 connections within 4 s): the built api and worker on a private
//! PostgreSQL cluster and a private Redis server (the suite's shared servers
//! are never stopped or paused), under write load, through
//! 1. PostgreSQL stopped and started again,
//! 2. Redis paused, then stopped and started again on its AOF,
//! 3. Redis killed and started empty, recovered with `worker republish`,
//! 4. the api SIGKILLed and started again,
//! 5. a spike of connections past `api.max_concurrent_requests`.
//!
//! Each drill (`xentri_e2e::drills`) checks that nothing answered 201 is lost,
//! that no key made two events, that every group handled every event exactly
//! once (`worker audit`), and what its failure must look like from outside.
//! `scripts/bench outage` runs the same drills in their full form.

use xentri_e2e::drills::{self, Params, Report};

fn reported(report: Report) {
    eprintln!("{}", report.summary());
    report.assert_held();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_write_load_answers_503_and_recovers_without_a_restart() {
    reported(drills::postgres_stopped(&Params::short()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_or_stopped_keeps_writes_flowing_into_the_outbox_and_the_worker_catches_up() {
    reported(drills::redis_unavailable(&Params::short()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_is_recovered_by_worker_republish_exactly_once() {
    reported(drills::redis_restarted_empty(&Params::short()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_killed_under_write_load_loses_no_201_and_retried_keys_make_one_event() {
    reported(drills::api_killed(&Params::short()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spike_to_200_connections_sheds_load_with_503_and_health_keeps_answering() {
    reported(drills::spike(&Params::short()).await);
}
