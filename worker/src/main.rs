//! `worker`: runs every configured relay, group and job until SIGTERM/SIGINT.

use std::process::ExitCode;

use xentri_core::Settings;
use xentri_worker::app::{Worker, shutdown_signal};

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!("usage: worker  (no arguments; configured by config/ and XENTRI_… variables)");
        return ExitCode::from(2);
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
    worker.run_until_stopped(shutdown_signal()).await;
    tracing::info!("worker stopped");
    ExitCode::SUCCESS
}
