//! `worker`: with no command, runs every configured relay, group and job until
//! SIGTERM/SIGINT; `worker audit` and `worker republish` are the on-call
//! commands (see `xentri_worker::audit`).

use std::process::ExitCode;

use xentri_core::Settings;
use xentri_worker::app::{Worker, shutdown_signal};
use xentri_worker::audit::cli;

/// The api's allocator: every entry allocates and frees small buffers on
/// whichever runtime thread polls it, and mimalloc gives freed memory back to
/// the thread heap it came from instead of to one arena per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (its position in `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory is kept before it is given back to the system.
///
/// Every read batch allocates and frees a few megabytes within a second; with
/// mimalloc's default (10 ms) those pages go back to the system and are faulted
/// in again for the next batch, so RSS swings by tens of MiB from one second to
/// the next and follows the batch in flight rather than what the worker holds.
/// Kept for 10 s, they are reused by the next batches: fewer page faults and
/// `madvise` calls, and an RSS that is the working set's recent high-water mark,
/// in which a leak shows as a trend. `MIMALLOC_PURGE_DELAY` in the environment
/// still takes precedence.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

fn keep_freed_memory_for_reuse() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's own options, by a valid index, to a
        // valid value; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    keep_freed_memory_for_reuse();
    let cli = match cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Some(command) = cli.command {
        return cli::run(command).await;
    }
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    xentri_core::telemetry::init(&settings.telemetry);
    let worker = match Worker::build(settings, Vec::new()).await {
        Ok(worker) => worker,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(ops = %worker.ops_address(), "worker running");
    match worker.run_until_stopped(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("worker stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = %error, "worker stopped: a task cannot run");
            ExitCode::FAILURE
        }
    }
}
