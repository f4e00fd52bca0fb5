//! `api`: serves the HTTP API (no arguments), or runs one of its commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xentri_api::startup::{Application, shutdown_signal};
use xentri_core::Settings;

/// jemalloc, with background threads returning freed pages after a decay
/// time: every answer allocates and frees buffers of a few dozen kilobytes (a
/// page of events is ~40 KB), and under steady load the footprint stays flat
/// (measured at 2,000 events/s: ~22 MiB flat, where mimalloc held 31-45 MiB and
/// crept towards its high-water mark, and the system allocator crept ~7 MiB/h).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Create the database if it does not exist and apply pending migrations,
    /// as the tables' owner: `database.migrate_url` (else `database.url`).
    ///
    /// Example: `DATABASE_MIGRATE_URL=postgres://postgres@127.0.0.1/xentri api migrate`
    Migrate,
    /// Print a signed dev token on stdout, for local use only.
    ///
    /// Refuses unless `auth.dev_secret` is configured; the server accepts dev
    /// tokens only while it is.
    ///
    /// Example: `TOKEN=$(api dev-token --org 0193a5e4-7b1c-7d2e-9f00-000000000001 --sub user_dev --ttl 1h)`
    DevToken {
        /// The org the token acts for.
        #[arg(long)]
        org: uuid::Uuid,
        /// The user id (`sub`); events record `user:<sub>`.
        #[arg(long)]
        sub: String,
        /// Lifetime: 90s, 15m, 1h30m, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: std::time::Duration,
    },
    /// Print the internal org id (the one events and row-level security key
    /// on) of a Clerk organisation id or a UUID.
    ///
    /// Example: `api org-id org_2abcDEF123`
    OrgId {
        /// A Clerk organisation id (`org_…`) or a UUID.
        org: String,
    },
}

/// A token's lifetime: a duration in the one grammar every command takes
/// ([`xentri_core::human::parse_duration`]: `90s`, `15m`, `1h30m`, `7d`; a bare
/// number is refused), more than zero.
fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    match xentri_core::human::parse_duration(text)? {
        ttl if ttl.is_zero() => Err(format!("invalid lifetime `{text}`: a token must live more than zero seconds")),
        ttl => Ok(ttl),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::OrgId { org }) = &cli.command {
        return org_id(org);
    }
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    xentri_core::telemetry::init(&settings.telemetry);
    #[cfg(feature = "jemalloc")]
    xentri_core::metrics::report_heap(xentri_core::metrics::jemalloc_heap);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::DevToken { org, sub, ttl } => return dev_token(&settings, org, &sub, ttl),
        Command::OrgId { org } => return org_id(&org),
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

fn org_id(org: &str) -> ExitCode {
    match xentri_api::auth::claims::org_ref(org) {
        Some(id) => {
            println!("{id}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("org-id: `{org}` is neither a Clerk organisation id (org_…) nor a UUID");
            ExitCode::from(2)
        }
    }
}

fn dev_token(settings: &Settings, org: uuid::Uuid, sub: &str, ttl: std::time::Duration) -> ExitCode {
    use secrecy::ExposeSecret;
    let Some(secret) = settings.auth.dev_secret() else {
        eprintln!("dev-token: auth.dev_secret is not configured, so the server would refuse dev tokens");
        return ExitCode::from(2);
    };
    if sub.is_empty() || sub.starts_with("service:") || !sub.chars().all(|c| c.is_ascii_graphic()) {
        eprintln!("dev-token: --sub must be a user id (visible ASCII, not service:…)");
        return ExitCode::from(2);
    }
    match xentri_api::auth::token::dev_token(secret.expose_secret(), org, sub, ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dev-token: {error}");
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_token_lifetime_is_a_duration_in_the_shared_grammar_and_more_than_zero() {
        assert_eq!(super::parse_ttl("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(super::parse_ttl("90s"), Ok(Duration::from_secs(90)));
        // The unit is required, as everywhere else (dlq-tool's --older-than).
        assert!(super::parse_ttl("90").is_err());
        assert!(super::parse_ttl("0s").is_err());
        assert!(super::parse_ttl("1y").is_err());
    }
}
