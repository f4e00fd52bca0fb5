//! `dlq-tool`: parse the command line, load settings, run the command, exit
//! with its code (see `dlq_tool::error`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dlq_tool::cli::Cli;
use dlq_tool::error::{EXIT_BAD_INPUT, EXIT_PARTLY_DONE};
use xentri_core::Settings;

fn main() -> ExitCode {
    // clap exits 2 itself on a bad command line, like every other refusal.
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio") {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(EXIT_PARTLY_DONE);
        }
    };
    match runtime.block_on(dlq_tool::run(cli, settings)) {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
