//! The scenarios of `benchkit api`, one method each: wrk against our api or
//! the original stack, the open-loop driver, two api processes at once,
//! pgbench, and a probe of one page of reads. Each samples the CPU other work
//! takes meanwhile and returns its [`super::figures`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::Bench;
use super::figures::{Half, Latency, OpenLoop, Page, Peer, Pgbench, TwoApis, Wrk};
use crate::benchkit::child::{Bounded, file_len, log, output, run_bounded};
use crate::benchkit::cpu::{CpuShare, Sampler};
use crate::benchkit::figures::{KeyValues, p50_p95_p99};
use crate::benchkit::stage::stop_api;
use crate::benchkit::{BenchkitError, apilog, json_line, release_binary};

fn latency(line: &KeyValues) -> Result<Latency, BenchkitError> {
    Ok(Latency { p50: line.number("p50_ms")?, p95: line.number("p95_ms")?, p99: line.number("p99_ms")? })
}

fn socket_errors(line: &KeyValues) -> Result<u64, BenchkitError> {
    ["connect_errors", "read_errors", "write_errors", "timeouts"]
        .iter()
        .try_fold(0, |sum, key| Ok(sum + line.count(key)?))
}

fn read_text(path: &Path) -> Result<String, BenchkitError> {
    std::fs::read_to_string(path).map_err(|source| BenchkitError::Read { path: path.display().to_string(), source })
}

fn file(path: &Path) -> Result<std::fs::File, BenchkitError> {
    std::fs::File::create(path).map_err(|source| BenchkitError::Write { path: path.display().to_string(), source })
}

/// The output file, as stdout and stderr both.
fn both_to(path: &Path, command: &mut Command) -> Result<(), BenchkitError> {
    let out = file(path)?;
    let err = out.try_clone().map_err(|source| BenchkitError::Write { path: path.display().to_string(), source })?;
    command.stdout(out).stderr(err);
    Ok(())
}

impl Bench {
    fn out(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts the sampler for scenario `name`, our running apis its own.
    fn sampler(&self, name: &str, own: &[u32], env: &[(&str, &str)]) -> Result<Sampler, BenchkitError> {
        Sampler::start(&self.out(&format!("{name}.foreign")), own, env)
    }

    fn finish_sampler(name: &str, sampler: Sampler) -> CpuShare {
        let cpu = sampler.stop();
        log(format!(
            "{name}: other processes used {} % of the machine's CPU meanwhile (CPU time: {})",
            cpu.foreign_text(),
            if cpu.foreign.is_some() { cpu.foreign_top.as_str() } else { "?" }
        ));
        cpu
    }

    /// wrk on 127.0.0.1:`port` with `script`, `connections` and `threads`.
    fn wrk_command(
        &self,
        script: &Path,
        port: u16,
        path: &str,
        connections: u32,
        threads: u32,
        run_id: &str,
    ) -> Command {
        let mut wrk = Command::new("wrk");
        // --timeout 10s: a slow answer is measured as a latency, not dropped
        // as a socket timeout (wrk's default is 2 s).
        wrk.args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &self.settings.duration])
            .args(["--timeout", "10s", "--latency", "-s"])
            .arg(script)
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .env("BENCH_TOKENS", &self.tokens)
            .env("BENCH_RUN_ID", run_id);
        wrk
    }

    fn wrk_limit(&self) -> Duration {
        Duration::from_secs(self.settings.secs + 60)
    }

    /// Reads wrk's output file: prints it, fails on a bad exit, returns its line.
    fn wrk_result(bounded: Bounded, out: &Path) -> Result<KeyValues, BenchkitError> {
        let text = read_text(out)?;
        print!("{text}");
        match bounded {
            Bounded::Finished(status) if status.success() => {}
            Bounded::Finished(status) => {
                return Err(BenchkitError::Failed(format!("wrk failed ({status}), see {}", out.display())));
            }
            Bounded::TimedOut => return Err(BenchkitError::Failed(format!("wrk timed out, see {}", out.display()))),
        }
        KeyValues::find(&text, "BENCH_RESULT")
            .ok_or_else(|| BenchkitError::Failed(format!("no BENCH_RESULT line in {}", out.display())))
    }

    /// What the api logged since byte `start`, once the requests wrk cut
    /// off at the end have finished and logged.
    fn api_logged(&self, start: u64) -> Result<String, BenchkitError> {
        std::thread::sleep(Duration::from_secs(1));
        let summary = apilog::run(&self.api_log, start, file_len(&self.api_log))?;
        for line in summary.lines() {
            eprintln!("  api log: {line}");
        }
        Ok(summary)
    }

    /// One wrk scenario on our api.
    pub(super) fn run_wrk(&self, name: &str, script: &str, path: &str) -> Result<Wrk, BenchkitError> {
        let (connections, threads) = (self.settings.connections, self.settings.threads);
        log(format!("{name}: wrk -t {threads} -c {connections} -d {} {path}", self.settings.duration));
        let (pid, port) = self.api()?;
        let log_start = file_len(&self.api_log);
        let out = self.out(&format!("{name}.wrk.txt"));
        let mut wrk = self.wrk_command(&self.helpers.join(script), port, path, connections, threads, &self.run_id);
        both_to(&out, &mut wrk)?;
        let sampler = self.sampler(name, &[pid], &[])?;
        let bounded = run_bounded("wrk", &mut wrk, self.wrk_limit(), "-INT");
        let cpu = Self::finish_sampler(name, sampler);
        let line = Self::wrk_result(bounded?, &out)?;
        Ok(Wrk {
            rps: line.number("rps")?,
            latency: latency(&line)?,
            requests: line.count("requests")?,
            non2xx: line.count("non2xx")?,
            socket: socket_errors(&line)?,
            bytes_per_answer: line.count("bytes_per_answer")?,
            cpu,
            apilog: self.api_logged(log_start)?,
        })
    }

    /// One wrk scenario on the original stack, with the same wrk settings.
    pub(super) fn run_peer_wrk(&self, name: &str, port: u16, script: &str, path: &str) -> Result<Peer, BenchkitError> {
        let s = &self.settings;
        log(format!("{name}: wrk -t {} -c {} -d {} {path} (the original stack)", s.threads, s.connections, s.duration));
        let tokens = output("the original stack's tokens", Command::new(self.peer_dir.join("run.sh")).arg("tokens"))?;
        let out = self.out(&format!("{name}.wrk.txt"));
        let mut wrk = Command::new("wrk");
        wrk.args(["-t", &s.threads.to_string(), "-c", &s.connections.to_string(), "-d", &s.duration])
            .args(["--timeout", "10s", "-s"])
            .arg(self.peer_dir.join("wrk").join(script))
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .env("TOKENS_FILE", tokens.trim())
            .env("WRK_LUA_DIR", self.peer_dir.join("wrk"));
        both_to(&out, &mut wrk)?;
        // Its node process and its database's sessions are the scenario's own.
        let sampler = self.sampler(name, &[], &[("BENCH_SAMPLER_DB", "seed_stack"), ("BENCH_SAMPLER_OWN", "node")])?;
        let bounded = run_bounded("wrk", &mut wrk, self.wrk_limit(), "-INT");
        let cpu = Self::finish_sampler(name, sampler);
        let text = read_text(&out)?;
        print!("{text}");
        match bounded? {
            Bounded::Finished(status) if status.success() => {}
            _ => return Err(BenchkitError::Failed(format!("wrk failed, see {}", out.display()))),
        }
        let line = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("RESULT "))
            .ok_or_else(|| BenchkitError::Failed(format!("no RESULT line in {}", out.display())))?;
        let number = |key: &str| -> Result<f64, BenchkitError> {
            json_line::field(line, key, "None", json_line::Missing::Fail)?
                .parse()
                .map_err(|_| BenchkitError::Shape(format!("{key} of the original stack's RESULT line is not a number")))
        };
        Ok(Peer {
            rps: number("rps")?,
            latency: Latency { p50: number("p50_ms")?, p95: number("p95_ms")?, p99: number("p99_ms")? },
            non_2xx: number("non_2xx")? as u64,
            cpu,
        })
    }

    /// The open-loop driver against our api: `kind` (write or read) at the
    /// set rate for the set seconds after a 2 s warm-up.
    pub(super) fn run_openloop(&self, name: &str, kind: &str) -> Result<OpenLoop, BenchkitError> {
        let s = &self.settings;
        log(format!("{name}: open loop, {} {kind}s/s for {} s after a 2 s warm-up", s.openloop_rate, s.secs));
        let (pid, port) = self.api()?;
        let log_start = file_len(&self.api_log);
        // Moderate load on its own: the write-back the closed-loop scenarios
        // before it left behind (a checkpoint flushing hundreds of MB) is done
        // first rather than measured here.
        self.stage.psql.exec("CHECKPOINT")?;
        let (out, err) = (self.out(&format!("{name}.json")), self.out(&format!("{name}.err")));
        let mut driver = Command::new(release_binary("examples/openloop")?);
        driver
            .args(["--url", &format!("http://127.0.0.1:{port}"), "--kind", kind, "--tokens"])
            .arg(&self.tokens)
            .args(["--rate", &s.openloop_rate.to_string(), "--seconds", &s.secs.to_string(), "--warmup-seconds", "2"])
            .stdout(file(&out)?)
            .stderr(file(&err)?);
        let sampler = self.sampler(name, &[pid], &[])?;
        let bounded = run_bounded("openloop", &mut driver, Duration::from_secs(s.secs + 120), "-INT");
        let cpu = Self::finish_sampler(name, sampler);
        if !matches!(bounded?, Bounded::Finished(status) if status.success()) {
            return Err(BenchkitError::Failed(format!(
                "openloop failed, see {}:\n{}",
                err.display(),
                crate::benchkit::child::tail(&err, 20)
            )));
        }
        let text = read_text(&out)?;
        let line = text.lines().last().unwrap_or("");
        println!("{line}");
        let value = |key: &str| json_line::field(line, &format!("measured.{key}"), "?", json_line::Missing::Fail);
        let count = |key: &str| -> Result<u64, BenchkitError> {
            let text = value(key)?;
            text.parse().map_err(|_| BenchkitError::Shape(format!("measured.{key} is {text:?}, not a whole number")))
        };
        let ms = |key: &str| -> Result<Option<f64>, BenchkitError> { Ok(value(key)?.parse().ok()) };
        Ok(OpenLoop {
            sent: count("sent")?,
            ok: count("ok")?,
            non_2xx: count("non_2xx")?,
            errors: count("errors")?,
            late: count("late")?,
            percentiles: [ms("p50_ms")?, ms("p90_ms")?, ms("p99_ms")?, ms("p999_ms")?, ms("max_ms")?],
            cpu,
            apilog: self.api_logged(log_start)?,
        })
    }

    /// Writes at once on two more api processes over the same database
    /// (`writers` append writers each), half the connections each, one wrk
    /// per api; the first api stays up, idle.
    pub(super) fn run_two_apis(&self, name: &str, writers: u32) -> Result<TwoApis, BenchkitError> {
        let s = &self.settings;
        let (half, threads) = (s.connections / 2, (s.threads / 2).max(1));
        let (_, port) = self.api()?;
        let env = [("XENTRI_API__APPEND_WRITERS", writers.to_string())];
        let (mut first, port1) = self.stage.launch_api(port + 1, &self.out(&format!("{name}_1.log")), &env)?;
        let (mut second, port2) = self.stage.launch_api(port1 + 1, &self.out(&format!("{name}_2.log")), &env)?;
        log(format!(
            "{name}: wrk -t {threads} -c {half} -d {} on each of 127.0.0.1:{port1} and 127.0.0.1:{port2} at once (append_writers {writers} each)",
            s.duration
        ));
        let script = self.helpers.join("write.lua");
        let outs = [self.out(&format!("{name}_1.wrk.txt")), self.out(&format!("{name}_2.wrk.txt"))];
        let mut commands = Vec::new();
        for (n, p) in [(1, port1), (2, port2)] {
            let mut wrk =
                self.wrk_command(&script, p, "/api/v1/events", half, threads, &format!("{}-{name}{n}", self.run_id));
            both_to(&outs[n - 1], &mut wrk)?;
            commands.push(wrk);
        }
        // The idle first api is left out of the CPU figures' own processes.
        let sampler = self.sampler(name, &[first.pid(), second.pid()], &[])?;
        let limit = self.wrk_limit();
        let bounded: Vec<Result<Bounded, BenchkitError>> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                commands.iter_mut().map(|wrk| scope.spawn(move || run_bounded("wrk", wrk, limit, "-INT"))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(BenchkitError::Failed("a wrk thread panicked".to_owned()))))
                .collect()
        });
        let cpu = Self::finish_sampler(name, sampler);
        let mut halves = Vec::new();
        for (bounded, out) in bounded.into_iter().zip(&outs) {
            let line = Self::wrk_result(bounded?, out)?;
            halves.push(Half {
                rps: line.number("rps")?,
                p99: line.number("p99_ms")?,
                non2xx: line.count("non2xx")?,
                socket: socket_errors(&line)?,
            });
        }
        stop_api(&mut second);
        stop_api(&mut first);
        let [a, b] = halves[..] else { return Err(BenchkitError::Failed("two wrk results expected".to_owned())) };
        Ok(TwoApis { halves: [a, b], cpu })
    }

    /// `script` under pgbench with up to `clients` clients (fewer when
    /// max_connections leaves no room).
    pub(super) fn run_pgbench(&self, name: &str, clients: u32, script: &str) -> Result<Pgbench, BenchkitError> {
        let psql = &self.stage.psql;
        let max_conn = psql.count("SHOW max_connections")?;
        let others = psql.count(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )?;
        // Leave headroom (10 connections, plus whatever else is connected)
        // rather than touch the server's configuration.
        let fit = max_conn.saturating_sub(10 + others);
        let (clients, note) = if fit < u64::from(clients) {
            if fit < 1 {
                return Err(BenchkitError::Failed(format!(
                    "no room for pgbench clients (max_connections {max_conn}, {others} connected)"
                )));
            }
            let note = format!(
                "reduced from {clients}: max_connections is {max_conn}, {others} other connections, 10 kept free"
            );
            (fit as u32, note)
        } else {
            (clients, String::new())
        };
        let threads = self.settings.threads.min(clients);
        let script = self.helpers.join(script);
        let secs = self.settings.secs;
        let suffix = if note.is_empty() { String::new() } else { format!(" ({note})") };
        log(format!("{name}: pgbench -c {clients} -j {threads} -T {secs} -M prepared -f {}{suffix}", script.display()));
        let prefix = format!("{name}.log");
        self.remove_pgbench_logs(&prefix);
        let out = self.out(&format!("{name}.txt"));
        let mut pgbench = Command::new("pgbench");
        // -n: no vacuum of pgbench's own tables (there are none). -l: one
        // line per transaction (third field: latency in µs) for the percentiles.
        pgbench
            .args(["-h", "127.0.0.1", "-U", "postgres", "-n", "-M", "prepared"])
            .args(["-c", &clients.to_string(), "-j", &threads.to_string(), "-T", &secs.to_string(), "-f"])
            .arg(&script)
            .arg("-l")
            .arg(format!("--log-prefix={}", self.out(&prefix).display()))
            .arg(psql.db());
        both_to(&out, &mut pgbench)?;
        let sampler = self.sampler(name, &[], &[])?;
        let bounded = run_bounded("pgbench", &mut pgbench, Duration::from_secs(secs + 120), "-INT");
        let cpu = Self::finish_sampler(name, sampler);
        let text = read_text(&out)?;
        print!("{text}");
        // 2 means some clients aborted: report what ran, flagged.
        let aborted = match bounded? {
            Bounded::Finished(status) if status.success() => false,
            Bounded::Finished(status) if status.code() == Some(2) => true,
            _ => return Err(BenchkitError::Failed(format!("pgbench failed, see {}", out.display()))),
        };
        let after = |prefix: &str, end: &str| {
            text.lines().find_map(|l| l.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(end)).map(str::to_owned))
        };
        let rps = after("tps = ", " (without initial connection time)")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| BenchkitError::Failed(format!("no tps in {}", out.display())))?;
        let avg_ms = after("latency average = ", " ms").and_then(|t| t.parse().ok()).unwrap_or(f64::NAN);
        let failed = text
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or("")
            .to_owned();
        let failed = if aborted {
            format!("{} (clients aborted, see {})", if failed.is_empty() { "?" } else { &failed }, out.display())
        } else {
            failed
        };
        let [p50, p95, p99] = p50_p95_p99(self.pgbench_latencies(&prefix)?);
        Ok(Pgbench { clients, threads, note, rps, avg_ms, failed, latency: Latency { p50, p95, p99 }, cpu })
    }

    fn pgbench_logs(&self, prefix: &str) -> Vec<PathBuf> {
        let start = format!("{prefix}.");
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&start))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn remove_pgbench_logs(&self, prefix: &str) {
        for path in self.pgbench_logs(prefix) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Latencies in ms from pgbench's per-transaction logs; failed
    /// transactions log "failed" instead and are left out.
    fn pgbench_latencies(&self, prefix: &str) -> Result<Vec<f64>, BenchkitError> {
        let mut values = Vec::new();
        for path in self.pgbench_logs(prefix) {
            let text = read_text(&path)?;
            values.extend(
                text.lines()
                    .filter_map(|l| l.split_whitespace().nth(2))
                    .filter(|f| f.bytes().all(|b| b.is_ascii_digit()))
                    .filter_map(|f| f.parse::<f64>().ok())
                    .map(|us| us / 1000.0),
            );
        }
        Ok(values)
    }

    /// How many events one page holds right now (org 1), with the sessions
    /// holding back the commit horizon when it is short. The list route only
    /// returns rows older than the oldest transaction still running anywhere
    /// in the cluster, so a long transaction, in any database, empties every
    /// page: the reads figures would then measure empty answers.
    pub(super) fn probe_page(&self) -> Result<Page, BenchkitError> {
        let (_, port) = self.api()?;
        let token = read_text(&self.tokens)?.lines().next().unwrap_or("").to_owned();
        let body = Command::new("curl")
            .args(["-sf", "--max-time", "10", "-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("http://127.0.0.1:{port}/api/v1/events?limit=50"))
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let events = json_line::page_len(&body).ok();
        let mut page = Page { events, bytes: body.len(), holders: None };
        if !page.full() {
            let holders = self.stage.psql.value(
                "SELECT coalesce(string_agg(holder, '; '), 'none seen') FROM (
                    SELECT format('%s session(s) of database %s, %s, transaction open up to %s s', count(*),
                        datname, state, round(extract(epoch FROM now() - min(xact_start)))) AS holder
                    FROM pg_stat_activity
                    WHERE backend_xid IS NOT NULL AND xact_start < now() - interval '1 second'
                    GROUP BY datname, state) AS holders",
            )?;
            log(format!(
                "WARNING: a page of reads holds {} events, not 50; transactions holding back the horizon: {holders}",
                page.events_text()
            ));
            page.holders = Some(holders);
        }
        Ok(page)
    }
}
