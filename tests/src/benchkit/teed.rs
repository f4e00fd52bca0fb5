//! A driver run within a bound whose stderr is both shown and kept: `tee`
//! for `benchkit domain` and `benchkit outage`, whose drivers narrate their
//! drills on stderr while their results go to a file.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchkitError;
use super::child::{Bounded, wait_bounded};
use super::soak::status_text;

/// Copies `from` to this process's stderr and to `log` until it ends.
fn tee(mut from: impl Read, mut log: std::fs::File) {
    let mut buffer = [0_u8; 8192];
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0 {
            break;
        }
        let _ = std::io::stderr().write_all(&buffer[..n]);
        let _ = log.write_all(&buffer[..n]);
    }
}

/// Runs `command` (stdout where it says) with its stderr copied to ours and
/// to `log`, at most `limit`: then SIGTERM and SIGKILL 10 s later, as
/// `timeout --kill-after=10` does. Its exit status as the shell gives it
/// (124 when the bound stopped it).
pub fn run_teed(what: &str, command: &mut Command, limit: Duration, log: &Path) -> Result<String, BenchkitError> {
    let file = std::fs::File::create(log)
        .map_err(|source| BenchkitError::Write { path: log.display().to_string(), source })?;
    let mut child = command
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BenchkitError::Spawn { what: what.to_owned(), source })?;
    let copier = child.stderr.take().map(|stderr| std::thread::spawn(move || tee(stderr, file)));
    let rc = match wait_bounded(what, &mut child, limit, "-TERM")? {
        Bounded::Finished(status) => status_text(status),
        Bounded::TimedOut => "124".to_owned(),
    };
    // A process the driver started may still hold the pipe: wait a little
    // for the copy to end, not for that process.
    if let Some(copier) = copier {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !copier.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if copier.is_finished() {
            let _ = copier.join();
        }
    }
    Ok(rc)
}
