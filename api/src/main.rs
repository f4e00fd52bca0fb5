//! `api`: serves the HTTP API (no arguments), or runs one of its commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xentri_api::startup::{Application, shutdown_signal};
use xentri_core::Settings;

/// The Xentri events API. Reads `config/default.toml`, `config/$XENTRI_ENV.toml`,
/// then XENTRI_SECTION__KEY, DATABASE_URL and REDIS_URL from the environment.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create the database if it does not exist and apply pending migrations.
    ///
    /// Example: `DATABASE_URL=postgres://postgres@127.0.0.1/xentri api migrate`
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    xentri_core::telemetry::init(&settings.telemetry);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => xentri_core::migrate::create_and_migrate(&settings.database).await.map_err(Into::into),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(address = %app.address(), "api listening");
    app.run_until_stopped(shutdown_signal()).await;
    tracing::info!("api stopped");
    Ok(())
}
