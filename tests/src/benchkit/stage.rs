//! The stage the api benches share (`benchkit api`, `benchkit burst`): a
//! fresh database migrated by the release api, dev tokens for the bench orgs,
//! and release api processes over it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::child::{Service, free_port, log, output};
use super::psql::Psql;
use super::{BenchkitError, release_binary};

/// How many orgs the api benches spread their events over.
pub const ORGS: u32 = 100;

/// How long an api has to be ready, and to drain when stopped (it drains
/// in-flight requests for up to `api.shutdown_grace_ms`, 10 s).
const READY_WITHIN: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The bench org `n`: `00000000-0000-7000-8000-<n as 12 digits>`
/// (scripts/bench.d/append.sql and seed.sql build the same ids in SQL).
pub fn org_uuid(n: u32) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

/// A bench database and the logins the api uses on it.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The database, reached as the owner.
    pub psql: Psql,
}

impl Stage {
    /// The database `db` (not touched yet).
    pub fn new(db: &str) -> Stage {
        Stage { psql: Psql::new(db) }
    }

    /// The api's login: the service login the migrations create (row-level
    /// security binds it; the api refuses a superuser login).
    pub fn service_url(&self) -> String {
        self.psql.url_as("xentri_service")
    }

    /// Drops and recreates the database, then migrates it with the release
    /// api (as the owner), logging to `migrate_log`.
    pub fn recreate(&self, migrate_log: &Path) -> Result<(), BenchkitError> {
        log(format!("recreating database {}", self.psql.db()));
        self.psql.recreate()?;
        let api = release_binary("api")?;
        let file = std::fs::File::create(migrate_log)
            .map_err(|source| BenchkitError::Write { path: migrate_log.display().to_string(), source })?;
        let status = Command::new(api)
            .arg("migrate")
            .env_remove("XENTRI_ENV")
            .env("DATABASE_URL", self.service_url())
            .env("DATABASE_MIGRATE_URL", self.psql.owner_url())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .status()
            .map_err(|source| BenchkitError::Spawn { what: "api migrate".to_owned(), source })?;
        if status.success() {
            Ok(())
        } else {
            Err(BenchkitError::Failed(format!(
                "migrations failed ({status}):\n{}",
                std::fs::read_to_string(migrate_log).unwrap_or_default()
            )))
        }
    }

    /// Writes one dev token per bench org to `path`, one per line (the wrk
    /// scripts rotate through them).
    pub fn mint_tokens(&self, path: &Path) -> Result<(), BenchkitError> {
        log(format!("minting {ORGS} dev tokens"));
        let api = release_binary("api")?;
        let mut tokens = String::new();
        for n in 1..=ORGS {
            let org = org_uuid(n);
            let sub = format!("bench_user_{n}");
            let token = output(
                "api dev-token",
                Command::new(&api).env_remove("XENTRI_ENV").args([
                    "dev-token",
                    "--org",
                    &org,
                    "--sub",
                    &sub,
                    "--ttl",
                    "2h",
                ]),
            )?;
            tokens.push_str(token.trim());
            tokens.push('\n');
        }
        std::fs::write(path, tokens).map_err(|source| BenchkitError::Write { path: path.display().to_string(), source })
    }

    /// Starts a release api on the first free port from `from_port` (within
    /// 100), logging to `log_file`, with `env` on top of the stage's logins;
    /// returns it once `/health/ready` answers, with its port. Default log
    /// level (info, one JSON line per request): the production setting.
    pub fn launch_api(
        &self,
        from_port: u16,
        log_file: &Path,
        env: &[(&str, String)],
    ) -> Result<(Service, u16), BenchkitError> {
        let port = free_port(from_port, 100)?;
        log(format!("starting an api on 127.0.0.1:{port} (log: {})", log_file.display()));
        let mut command = Command::new(release_binary("api")?);
        // The api reads config/default.toml only (it holds the dev secret the
        // tokens need); a config/$XENTRI_ENV.toml overlay would change what is
        // measured.
        command
            .env_remove("XENTRI_ENV")
            .env("DATABASE_URL", self.service_url())
            .env("DATABASE_MIGRATE_URL", self.psql.owner_url())
            .env("XENTRI_API__PORT", port.to_string())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null());
        let mut api = Service::spawn("the api", &mut command, log_file, false)?;
        api.wait_ready(port, "/health/ready", false, READY_WITHIN)?;
        Ok((api, port))
    }
}

/// Stops an api: SIGTERM, then SIGKILL after 15 s.
pub fn stop_api(api: &mut Service) {
    api.stop(STOP_GRACE);
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_orgs_are_fixed_uuids() {
        assert_eq!(super::org_uuid(7), "00000000-0000-7000-8000-000000000007");
        assert_eq!(super::org_uuid(100), "00000000-0000-7000-8000-000000000100");
    }
}
