//! PostgreSQL as the bench reaches it: `psql` as the superuser over
//! 127.0.0.1, on one database. The bench's SQL files (`scripts/bench.d/*.sql`)
//! are psql scripts, so they run through it too.

use std::path::Path;
use std::process::Command;

use super::BenchkitError;
use super::child::output;

/// One database of the local server, reached as `postgres`.
#[derive(Debug, Clone)]
pub struct Psql {
    db: String,
}

impl Psql {
    /// The database `db`.
    pub fn new(db: &str) -> Psql {
        Psql { db: db.to_owned() }
    }

    /// Its name.
    pub fn db(&self) -> &str {
        &self.db
    }

    /// `postgres://postgres@127.0.0.1:5432/DB`: the owner's URL.
    pub fn owner_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.db)
    }

    /// `postgres://LOGIN@127.0.0.1:5432/DB`.
    pub fn url_as(&self, login: &str) -> String {
        format!("postgres://{login}@127.0.0.1:5432/{}", self.db)
    }

    fn command(&self) -> Command {
        let mut command = Command::new("psql");
        command.args(["-h", "127.0.0.1", "-U", "postgres", "-d", &self.db, "-X", "-v", "ON_ERROR_STOP=1", "-q"]);
        command
    }

    /// One value of one query, as psql prints it unaligned.
    pub fn value(&self, sql: &str) -> Result<String, BenchkitError> {
        let out = output(&format!("psql {sql:?}"), self.command().args(["-At", "-c", sql]))?;
        Ok(out.trim_end_matches('\n').to_owned())
    }

    /// One value of one query as a whole number.
    pub fn count(&self, sql: &str) -> Result<u64, BenchkitError> {
        let text = self.value(sql)?;
        text.parse().map_err(|_| BenchkitError::Shape(format!("{sql:?} answered {text:?}, not a whole number")))
    }

    /// Runs SQL statements, printing nothing.
    pub fn exec(&self, sql: &str) -> Result<(), BenchkitError> {
        output(&format!("psql {sql:?}"), self.command().args(["-c", sql])).map(drop)
    }

    /// Runs a psql script with `-v name=value` variables.
    pub fn script(&self, file: &Path, vars: &[(&str, &str)]) -> Result<(), BenchkitError> {
        let mut command = self.command();
        for (name, value) in vars {
            command.args(["-v", &format!("{name}={value}")]);
        }
        output(&format!("psql -f {}", file.display()), command.arg("-f").arg(file)).map(drop)
    }

    /// Drops the database (closing its sessions) and creates it empty.
    pub fn recreate(&self) -> Result<(), BenchkitError> {
        let admin = Psql::new("postgres");
        admin.exec(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db))?;
        admin.exec(&format!("CREATE DATABASE \"{}\"", self.db))
    }
}
