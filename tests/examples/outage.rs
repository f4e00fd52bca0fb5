//! The outage drills in their full form, run by `scripts/bench outage`
//! (release): the same drills as `tests/outage.rs` (`xentri_e2e::drills`)
//! with outages of 10 s and a spike of 10 → 200 connections within 10 s.
//! Prints each drill's figures and checks on stderr and one JSON line per
//! drill on stdout; exits 1 when a check did not hold.
//!
//! ```text
//! outage [postgres] [redis] [empty] [api] [spike]    (none: all five)
//! ```
//!
//! Environment: `E2E_PROFILE=release` to run the release binaries;
//! `OUTAGE_FORM=short` for the tests' form (to repeat one drill);
//! `OUTAGE_SECONDS` (10), `OUTAGE_WRITERS` (10), `OUTAGE_SPIKE_TO` (200),
//! `OUTAGE_SPIKE_RAMP_SECONDS` (10), `OUTAGE_MAX_CONCURRENT_REQUESTS` (64).

// A bench driver: a run that cannot go on panics with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;
use std::time::Duration;

use xentri_e2e::drills::{self, Params, Report};

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            eprintln!("{name} takes a whole number, not {value:?}");
            std::process::exit(2);
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut params =
        if std::env::var("OUTAGE_FORM").as_deref() == Ok("short") { Params::short() } else { Params::full() };
    if let Some(n) = env_number("OUTAGE_SECONDS") {
        params.outage = Duration::from_secs(n);
    }
    if let Some(n) = env_number("OUTAGE_WRITERS") {
        params.writers = n as usize;
    }
    if let Some(n) = env_number("OUTAGE_SPIKE_TO") {
        params.spike_to = n as usize;
    }
    if let Some(n) = env_number("OUTAGE_SPIKE_RAMP_SECONDS") {
        params.spike_ramp = Duration::from_secs(n);
    }
    if let Some(n) = env_number("OUTAGE_MAX_CONCURRENT_REQUESTS") {
        params.max_concurrent_requests = n as usize;
    }
    let all = ["postgres", "redis", "empty", "api", "spike"];
    let mut chosen: Vec<String> = std::env::args().skip(1).collect();
    if chosen.is_empty() {
        chosen = all.iter().map(|d| d.to_string()).collect();
    }
    if let Some(unknown) = chosen.iter().find(|d| !all.contains(&d.as_str())) {
        eprintln!("unknown drill {unknown:?}; the drills: {}", all.join(", "));
        return ExitCode::from(2);
    }
    let mut failed = Vec::new();
    for drill in &chosen {
        eprintln!("outage: drill {drill} ({params:?})");
        let report: Report = match drill.as_str() {
            "postgres" => drills::postgres_stopped(&params).await,
            "redis" => drills::redis_unavailable(&params).await,
            "empty" => drills::redis_restarted_empty(&params).await,
            "api" => drills::api_killed(&params).await,
            _ => drills::spike(&params).await,
        };
        eprintln!("{}", report.summary());
        if !report.failed().is_empty() {
            eprintln!("{}", report.logs);
            failed.push(drill.clone());
        }
        println!("{}", report.json());
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("outage: checks failed in {}", failed.join(", "));
        ExitCode::FAILURE
    }
}
