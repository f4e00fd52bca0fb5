//! The processes a bench starts: servers that run while scenarios measure
//! them ([`Service`]), and drivers that must finish within a bound
//! ([`run_bounded`]). Everything listens on and talks to 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::BenchkitError;

/// Prints a step of the run, bold, to stderr.
pub fn log(message: impl AsRef<str>) {
    eprintln!("\x1b[1m==> {}\x1b[0m", message.as_ref());
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn port_in_use(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(500)).is_ok()
}

/// The first port from `first` on that nothing listens on, within `span`.
pub fn free_port(first: u16, span: u16) -> Result<u16, BenchkitError> {
    (first..first.saturating_add(span))
        .find(|p| !port_in_use(*p))
        .ok_or_else(|| BenchkitError::Failed(format!("no free port in {first}-{}", first.saturating_add(span) - 1)))
}

/// The status of `GET path` on 127.0.0.1:`port`, with `headers` (`Name:
/// value` lines); `None` when there is no answer within `timeout`.
pub fn http_get(port: u16, path: &str, headers: &[String], timeout: Duration) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let status = answer.get(9..12).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse().ok())?;
    let body_at = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(answer.len(), |at| at + 4);
    Some((status, answer.split_off(body_at)))
}

/// Sends `signal` (`-TERM`, `-INT`, `-KILL`, `-STOP`, ...) to `pid`; whether it
/// arrived.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill").args([signal, &pid.to_string()]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The last `n` lines of a log file, for an error message.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How a stopped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself after SIGTERM, with this status.
    Exited(ExitStatus),
    /// It had to be SIGKILLed.
    Killed,
}

/// A server process the bench started: stopped with SIGTERM (then SIGKILL)
/// by [`Service::stop`], and killed when dropped on an error path.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    /// Starts `command` with stdin closed and stderr to `log` (created anew
    /// or appended to, as `append` says); stdout goes where the command says.
    pub fn spawn(name: &str, command: &mut Command, log: &Path, append: bool) -> Result<Service, BenchkitError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(log)
            .map_err(|source| BenchkitError::Write { path: log.display().to_string(), source })?;
        let child = command
            .stdin(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|source| BenchkitError::Spawn { what: name.to_owned(), source })?;
        Ok(Service { name: name.to_owned(), child: Some(child), log: log.to_owned() })
    }

    /// Its process id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Its name, as the log lines give it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits until `GET path` on `port` is answered (2xx, or any status when
    /// `any_status`), at most `within`; fails, with the log's last lines,
    /// when the process exits first or the time runs out.
    pub fn wait_ready(
        &mut self,
        port: u16,
        path: &str,
        any_status: bool,
        within: Duration,
    ) -> Result<(), BenchkitError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((status, _)) = http_get(port, path, &[], Duration::from_secs(2))
                && (any_status || (200..300).contains(&status))
            {
                return Ok(());
            }
            if !self.running() {
                return Err(BenchkitError::Failed(format!(
                    "{} exited during start-up; its log ends:\n{}",
                    self.name,
                    tail(&self.log, 20)
                )));
            }
            if Instant::now() >= deadline {
                return Err(BenchkitError::Failed(format!(
                    "{} was not ready within {} s; its log ends:\n{}",
                    self.name,
                    within.as_secs(),
                    tail(&self.log, 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// SIGTERM, then SIGKILL when it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Ended {
        let Some(mut child) = self.child.take() else { return Ended::Killed };
        if let Ok(Some(status)) = child.try_wait() {
            return Ended::Exited(status);
        }
        signal(child.id(), "-TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Ended::Exited(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Ended::Killed
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a bounded run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounded {
    /// It finished by itself.
    Finished(ExitStatus),
    /// It was still running at the bound and was stopped (`stop_signal`, then
    /// SIGKILL 10 s later).
    TimedOut,
}

/// Runs `command` to its end, at most `limit`: then sends it `stop_signal`
/// (`-INT` lets wrk and pgbench print what they measured) and SIGKILL 10 s
/// later. Stdout and stderr go where the command says.
pub fn run_bounded(
    what: &str,
    command: &mut Command,
    limit: Duration,
    stop_signal: &str,
) -> Result<Bounded, BenchkitError> {
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| BenchkitError::Spawn { what: what.to_owned(), source })?;
    wait_bounded(what, &mut child, limit, stop_signal)
}

/// Waits for `child` to end, at most `limit`: then sends it `stop_signal`
/// and SIGKILL 10 s later.
pub fn wait_bounded(
    what: &str,
    child: &mut Child,
    limit: Duration,
    stop_signal: &str,
) -> Result<Bounded, BenchkitError> {
    let started = Instant::now();
    let mut signalled: Option<Instant> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(if signalled.is_some() { Bounded::TimedOut } else { Bounded::Finished(status) });
            }
            Ok(None) => {}
            Err(source) => return Err(BenchkitError::Spawn { what: what.to_owned(), source }),
        }
        match signalled {
            None if started.elapsed() >= limit => {
                signal(child.id(), stop_signal);
                signalled = Some(Instant::now());
            }
            Some(at) if at.elapsed() >= Duration::from_secs(10) => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Bounded::TimedOut);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command` to its end and returns its stdout; fails with its stderr
/// when it exits non-zero.
pub fn output(what: &str, command: &mut Command) -> Result<String, BenchkitError> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BenchkitError::Spawn { what: what.to_owned(), source })?;
    if !out.status.success() {
        return Err(BenchkitError::Failed(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|_| BenchkitError::Shape(format!("{what} printed bytes that are not UTF-8")))
}

/// A file's size now (0 when it does not exist): where a log's new lines start.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
