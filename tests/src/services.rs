//! PostgreSQL and Redis servers of a test's own, which it may stop, start,
//! pause and empty without touching the servers the rest of the suite shares:
//! a [`PrivatePostgres`] cluster (initdb into a temporary directory, run as the
//! `postgres` OS user when the test runs as root) and a [`PrivateRedis`]
//! server. Stopping and starting wait for the server to refuse or to answer
//! (`pg_isready`, `PING`), never for a fixed time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use uuid::Uuid;

/// The longest a server may take to start or to stop.
pub const SERVER_START_STOP_WITHIN: Duration = Duration::from_secs(60);

/// Connections the private cluster accepts: the api's and the worker's pools
/// (`database.max_connections`, 32 each), their listeners, the on-call
/// commands and the test's own checks, with room to spare.
pub const PRIVATE_MAX_CONNECTIONS: u32 = 200;

/// A TCP port nothing listens on now (the kernel's pick for port 0).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("an ephemeral port can be bound");
    listener.local_addr().expect("a bound listener has an address").port()
}

/// A fresh directory under the system's temporary directory.
fn scratch_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xentri-{label}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("expected to create {}: {e}", dir.display()));
    dir
}

/// Whether this process runs as root (PostgreSQL refuses to run as root).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            line.split_whitespace().nth(1).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// The directory of the newest installed PostgreSQL's server binaries
/// (`/usr/lib/postgresql/<version>/bin`).
fn postgres_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("expected PostgreSQL's server binaries under {}: {e}", root.display()))
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| panic!("expected pg_ctl under {}/*/bin", root.display()))
}

/// A PostgreSQL cluster of the test's own on a free port, trusting local
/// connections, removed when dropped.
pub struct PrivatePostgres {
    bin: PathBuf,
    /// The cluster's directory (data, socket and log).
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Creates the cluster (initdb) and starts it.
    pub async fn start() -> Self {
        let bin = postgres_bin_dir();
        let dir = scratch_dir("pg");
        let as_postgres = running_as_root();
        if as_postgres {
            let owned = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().await;
            assert!(
                owned.is_ok_and(|s| s.success()),
                "expected `chown postgres {}` to succeed (initdb runs as the postgres user)",
                dir.display()
            );
        }
        let cluster = Self { bin, dir, port: free_port(), as_postgres };
        let data = cluster.data_dir();
        let initdb = cluster
            .command("initdb")
            .args(["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .await
            .expect("initdb runs");
        assert!(initdb.status.success(), "expected initdb to succeed: {}", String::from_utf8_lossy(&initdb.stderr));
        // Speed over crash safety (a fast shutdown still writes everything):
        // the cluster lives as long as one test.
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             max_connections = {PRIVATE_MAX_CONNECTIONS}\nshared_buffers = 32MB\nfsync = off\n\
             full_page_writes = off\nsynchronous_commit = on\nlog_min_messages = warning\n",
            cluster.port,
            cluster.dir.display()
        );
        let conf_path = cluster.dir.join("data").join("postgresql.auto.conf");
        std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("expected to write {}: {e}", conf_path.display()));
        cluster.start_again().await;
        cluster
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `tool` from the server binaries, as the postgres user when running as root.
    fn command(&self, tool: &str) -> Command {
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            command
        } else {
            Command::new(self.bin.join(tool))
        };
        command.stdin(Stdio::null()).kill_on_drop(false);
        command
    }

    /// The URL of database `name` on it, as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Whether it accepts connections now (`pg_isready`).
    pub async fn is_ready(&self) -> bool {
        let status = Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
            .stdin(Stdio::null())
            .status()
            .await;
        status.is_ok_and(|s| s.success())
    }

    /// Starts the stopped cluster and waits until it accepts connections.
    pub async fn start_again(&self) {
        let log = self.dir.join("postgres.log").display().to_string();
        let started = self
            .command("pg_ctl")
            .args(["-D", &self.data_dir(), "-l", &log, "-W", "start"])
            .output()
            .await
            .expect("pg_ctl runs");
        assert!(started.status.success(), "expected `pg_ctl start` to succeed: {}", self.log_tail());
        let deadline = Instant::now() + SERVER_START_STOP_WITHIN;
        while !self.is_ready().await {
            assert!(Instant::now() < deadline, "expected PostgreSQL to accept connections: {}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it as an operator does (`pg_ctl stop -m fast`: sessions are
    /// ended, the server shuts down cleanly) and waits until it refuses
    /// connections.
    pub async fn stop(&self) {
        let stopped = self
            .command("pg_ctl")
            .args(["-D", &self.data_dir(), "-m", "fast", "-w", "-t", "60", "stop"])
            .output()
            .await
            .expect("pg_ctl runs");
        assert!(stopped.status.success(), "expected `pg_ctl stop -m fast` to succeed: {}", self.log_tail());
        let deadline = Instant::now() + SERVER_START_STOP_WITHIN;
        while self.is_ready().await {
            assert!(Instant::now() < deadline, "expected PostgreSQL to refuse connections once stopped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The end of the server's log, for messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let mut command = if self.as_postgres {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_ctl);
            command
        } else {
            std::process::Command::new(pg_ctl)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a Redis server keeps its data across a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// `--save '' --appendonly no`, as on these machines: a restart is empty.
    None,
    /// `--appendonly yes --appendfsync everysec`, the production setting: a
    /// clean stop and start keeps every stream, group and pending list.
    Aof,
}

/// A `redis-server` of the test's own on a free port, killed when dropped.
pub struct PrivateRedis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    persistence: Persistence,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts it and waits until it answers `PING`.
    pub async fn start(persistence: Persistence) -> Self {
        let mut redis = Self { port: free_port(), persistence, dir: scratch_dir("redis"), child: None };
        redis.start_again().await;
        redis
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the stopped server on the same port and directory (with AOF it
    /// loads what it had) and waits until it answers `PING`.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "expected the private Redis to be stopped before it is started");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--logfile", "redis.log"]);
        match self.persistence {
            Persistence::None => command.args(["--appendonly", "no"]),
            Persistence::Aof => command.args(["--appendonly", "yes", "--appendfsync", "everysec"]),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("expected redis-server to start: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + SERVER_START_STOP_WITHIN;
        while !self.answers().await {
            assert!(Instant::now() < deadline, "expected the private Redis to answer PING: {}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether it answers `PING` within half a second (a paused server does
    /// not answer `PING` until the pause ends).
    pub async fn answers(&self) -> bool {
        let ping = async {
            let client = redis::Client::open(self.url()).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING").query_async::<String>(&mut conn).await.ok()
        };
        matches!(tokio::time::timeout(Duration::from_millis(500), ping).await, Ok(Some(pong)) if pong == "PONG")
    }

    /// A connection for the test's own checks.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("a private Redis URL is a Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("the private Redis accepts a connection")
    }

    /// `CLIENT PAUSE <for> ALL`: every client's commands wait until the
    /// pause ends (the server stays up and keeps its data).
    pub async fn pause(&self, pause: Duration) {
        let mut conn = self.connection().await;
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(pause.as_millis() as u64)
            .arg("ALL")
            .query_async(&mut conn)
            .await
            .expect("CLIENT PAUSE is accepted");
    }

    /// Stops it: `SIGTERM` (a clean shutdown, which with AOF writes what it
    /// has) or `SIGKILL`; waits for the exit and until the port refuses.
    pub async fn stop(&mut self, signal: &str) {
        let mut child = self.child.take().expect("expected the private Redis to be running before it is stopped");
        let pid = child.id().expect("the private Redis has a pid").to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().await.expect("`kill` runs");
        assert!(sent.success(), "expected `kill {signal}` to reach the private Redis");
        tokio::time::timeout(SERVER_START_STOP_WITHIN, child.wait())
            .await
            .expect("expected the private Redis to exit")
            .expect("the exit status is read");
        let deadline = Instant::now() + SERVER_START_STOP_WITHIN;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
            assert!(Instant::now() < deadline, "expected the private Redis's port to refuse once stopped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The end of the server's log, for messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
