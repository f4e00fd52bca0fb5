//! One scenario of `benchkit worker`: the release driver `stream_bench` run
//! to its end within a bound, with the CPU sampler beside it and its own CPU
//! from this process's reaped-children times; when it was killed, the state
//! of the streams it left in Redis, then their keys deleted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::outcome::Outcome;
use crate::benchkit::BenchkitError;
use crate::benchkit::child::{Bounded, log, run_bounded, tail};
use crate::benchkit::cpu::Sampler;
use crate::benchkit::figures::fixed;
use crate::benchkit::proc_sampler::ticks_per_second;
use crate::benchkit::py::cut;
use crate::benchkit::redis_sync::Redis;

/// The driver's streams in Redis: its keys are under `t-<uuid>:`.
const DRIVER_STREAMS: &str = "t-*:events:work";

/// What every scenario shares: where it writes, the driver and its
/// environment, the sampler's environment.
#[derive(Debug)]
pub struct Bench {
    /// `target/bench/worker`.
    pub dir: PathBuf,
    /// `target/release/examples/stream_bench`.
    pub driver: PathBuf,
    /// The driver's environment on top of this process's (XENTRI_ENV removed).
    pub driver_env: Vec<(&'static str, String)>,
    /// The sampler's environment (`BENCH_SAMPLER_DB`, `BENCH_SAMPLER_OWN`).
    pub sampler_env: Vec<(&'static str, String)>,
    /// The Redis server the driver uses.
    pub redis: Redis,
}

/// CPU seconds (user + system) of this process's waited-for children:
/// `cutime` + `cstime` of `/proc/self/stat` (fields 16 and 17).
fn children_cpu() -> Result<f64, BenchkitError> {
    let path = "/proc/self/stat";
    let stat = std::fs::read_to_string(path).map_err(|source| BenchkitError::Read { path: path.to_owned(), source })?;
    let after_comm = stat.rfind(')').and_then(|at| stat.get(at + 1..)).unwrap_or_default();
    // After the comm: field 3 (state) first, so field n is at n - 3.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<i64>().ok());
    let (Some(cutime), Some(cstime)) = (field(16), field(17)) else {
        return Err(BenchkitError::Shape(format!("{path} has no cutime and cstime")));
    };
    Ok((cutime + cstime) as f64 / ticks_per_second() as f64)
}

/// `v` as printed with two decimals, read back (the figures are rounded
/// once to 0.01 before they are used).
fn hundredths(v: f64) -> f64 {
    fixed(v, 2).parse().unwrap_or(0.0)
}

fn create(path: &Path) -> Result<std::fs::File, BenchkitError> {
    std::fs::File::create(path).map_err(|source| BenchkitError::Write { path: path.display().to_string(), source })
}

/// `N lines on stderr, first: ...` for a non-empty log.
fn stderr_summary(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let lines = text.bytes().filter(|b| *b == b'\n').count();
    let first = text.lines().next().unwrap_or_default();
    Some(format!("{lines} lines on stderr, first: {}", cut(first, 300)))
}

/// The exit code a shell would report: the code, or 128 + the signal.
fn shell_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

impl Bench {
    /// Runs `stream_bench ARGS` as scenario `name`, stopped after `limit`
    /// seconds; `group` is the consumer group only this scenario's driver
    /// creates (empty: none), to recognise its streams if it is killed.
    pub fn run_stream(
        &mut self,
        name: &str,
        group: &str,
        limit: u64,
        args: &[String],
    ) -> Result<Outcome, BenchkitError> {
        let out = self.dir.join(format!("{name}.json"));
        let err = self.dir.join(format!("{name}.log"));
        let before = self.redis.keys_matching(DRIVER_STREAMS).unwrap_or_default();
        let clients = self
            .redis
            .info("clients")
            .ok()
            .and_then(|info| crate::benchkit::redis_sync::info_field(&info, "connected_clients"))
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(1);
        log(format!("{name}: stream_bench {} (stopped after {limit} s)", args.join(" ")));
        let sampler_env: Vec<(&str, &str)> = self.sampler_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sampler = Sampler::start(&self.dir.join(format!("{name}.foreign")), &[], &sampler_env)?;
        let mut command = Command::new(&self.driver);
        command
            .args(args)
            .env_remove("XENTRI_ENV")
            .envs(self.driver_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(create(&out)?))
            .stderr(Stdio::from(create(&err)?));
        let cpu_before = children_cpu()?;
        let started = Instant::now();
        let ended = run_bounded("stream_bench", &mut command, Duration::from_secs(limit), "-TERM")?;
        let wall = started.elapsed().as_secs_f64();
        let cpu_after = children_cpu()?;
        let cpu = sampler.stop();
        log(format!(
            "{name}: other processes used {} % of the machine's CPU meanwhile (CPU time: {})",
            cpu.foreign_text(),
            if cpu.foreign_top.is_empty() { "?" } else { cpu.foreign_top.as_str() }
        ));

        let printed = std::fs::read_to_string(&out).unwrap_or_default();
        let line = printed.lines().rfind(|l| l.starts_with('{'));
        let logged = std::fs::read_to_string(&err).unwrap_or_default();
        let stderr = stderr_summary(&logged);
        if let Some(summary) = &stderr {
            log(format!("{name}: {summary}"));
        }
        let status = match ended {
            Bounded::TimedOut => 124,
            Bounded::Finished(status) => shell_status(status),
        };
        let mut outcome = match line {
            Some(line) if status == 0 => Outcome::from_line(line)
                .unwrap_or_else(|| Outcome { error: Some("its line is not JSON".to_owned()), ..Outcome::default() }),
            _ => Outcome {
                error: Some(match status {
                    124 | 137 => format!("stopped after {limit} s (hung or far too slow)"),
                    0 => "no JSON line".to_owned(),
                    other => format!("exited with status {other}"),
                }),
                ..Outcome::default()
            },
        };
        outcome.redis_clients = clients - 1;
        outcome.driver_wall = hundredths(wall);
        outcome.driver_cpu = hundredths(cpu_after - cpu_before);
        outcome.cpu = cpu;
        outcome.stderr = stderr;
        if let Some(error) = &mut outcome.error {
            error.push_str(&format!(", see {}", err.display()));
            log(format!("WARNING: {name}: {error}"));
            eprintln!("{}", tail(&err, 20));
            if status != 0 {
                outcome.leftover = self.leftover_keys(name, group, &before);
            }
        } else if let Some(line) = &outcome.json {
            println!("{line}");
        }
        Ok(outcome)
    }

    /// After a driver was killed: the state of the streams that appeared
    /// meanwhile (not in `before`) and carry `group`, `; `-joined, with their
    /// keys deleted; other new streams (tests share the server) are named in
    /// the log and left alone.
    fn leftover_keys(&mut self, name: &str, group: &str, before: &[String]) -> Option<String> {
        let after = self.redis.keys_matching(DRIVER_STREAMS).unwrap_or_default();
        let mut states: Vec<String> = Vec::new();
        for key in after.iter().filter(|k| !before.contains(k)) {
            let prefix = key.strip_suffix("events:work").unwrap_or(key);
            let groups = self.redis.xinfo_groups(key).unwrap_or_default();
            let ours = !group.is_empty() && groups.iter().any(|g| g.iter().any(|(k, v)| k == "name" && v == group));
            if !ours {
                log(format!("WARNING: {key} appeared during the run, maybe the killed driver's: left as it is"));
                continue;
            }
            let stream = self.redis.xinfo_stream(key).unwrap_or_default();
            let length = self.redis.xlen(key).ok();
            let state = stream_state(length, &stream, &groups);
            log(format!("{name}: the killed driver's stream: {state}"));
            log(format!("deleting the keys the killed driver left under {prefix}"));
            if let Err(error) = self.redis.unlink_under(prefix) {
                log(format!("WARNING: {error}"));
            }
            states.push(state);
        }
        (!states.is_empty()).then(|| states.join("; "))
    }
}

/// A killed driver's stream as the notes give it: its length, XINFO STREAM's
/// counters, its groups' progress, and whether entries left it unread.
pub fn stream_state(length: Option<u64>, stream: &[(String, String)], groups: &[Vec<(String, String)>]) -> String {
    let pick = |pairs: &[(String, String)], names: &[&str]| -> Vec<String> {
        pairs.iter().filter(|(k, _)| names.contains(&k.as_str())).map(|(k, v)| format!("{k} {v}")).collect()
    };
    let stream_fields =
        pick(stream, &["entries-added", "last-generated-id", "max-deleted-entry-id", "recorded-first-entry-id"]);
    let group_fields: Vec<String> =
        groups.iter().flat_map(|g| pick(g, &["name", "pending", "last-delivered-id", "entries-read", "lag"])).collect();
    let length_text = length.map_or_else(String::new, |n| n.to_string());
    let mut state =
        format!("stream length {length_text}, {}; group {}", stream_fields.join(", "), group_fields.join(", "));
    let first = |pairs: &[(String, String)], name: &str| {
        pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let group_first =
        |name: &str| groups.iter().find_map(|g| g.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
    let added = first(stream, "entries-added").parse::<u64>().ok();
    let read = group_first("entries-read").and_then(|r| r.parse::<u64>().ok());
    let last_generated = first(stream, "last-generated-id");
    // Everything delivered and acknowledged, yet fewer entries read than
    // added, from a stream now shorter: entries left it unread.
    if let (Some(added), Some(read), Some(length)) = (added, read, length)
        && group_first("pending").as_deref() == Some("0")
        && group_first("last-delivered-id").as_deref() == Some(last_generated.as_str())
        && read < added
        && length < added
    {
        state.push_str(&format!(
            " — the group was delivered the last entry and acknowledged all it got, but read {read} of {added}: {} \
             entries left the stream unread (removed before the group reached them; the driver waits for \
             entries-read = {added})",
            added - read
        ));
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_stream_that_lost_entries_says_so() {
        let stream = pairs(&[
            ("length", "10"),
            ("last-generated-id", "5-0"),
            ("max-deleted-entry-id", "0-0"),
            ("entries-added", "100"),
            ("recorded-first-entry-id", "1-0"),
        ]);
        let groups = vec![pairs(&[
            ("name", "raw"),
            ("consumers", "1"),
            ("pending", "0"),
            ("last-delivered-id", "5-0"),
            ("entries-read", "90"),
            ("lag", ""),
        ])];
        assert_eq!(
            stream_state(Some(10), &stream, &groups),
            "stream length 10, last-generated-id 5-0, max-deleted-entry-id 0-0, entries-added 100, \
             recorded-first-entry-id 1-0; group name raw, pending 0, last-delivered-id 5-0, entries-read 90, lag  \
             — the group was delivered the last entry and acknowledged all it got, but read 90 of 100: 10 entries \
             left the stream unread (removed before the group reached them; the driver waits for entries-read = 100)"
        );
        let busy =
            vec![pairs(&[("name", "raw"), ("pending", "3"), ("last-delivered-id", "5-0"), ("entries-read", "90")])];
        assert!(!stream_state(Some(10), &stream, &busy).contains("unread"));
    }

    #[test]
    fn the_driver_log_is_summarised() {
        assert_eq!(stderr_summary(""), None);
        assert_eq!(stderr_summary("a\nb\n").as_deref(), Some("2 lines on stderr, first: a"));
        assert_eq!(hundredths(2.449), 2.45);
    }
}
