//! The CPU other work takes while a scenario runs: `benchkit sample` (this
//! program, [`super::proc_sampler`]) as a process of its own beside the
//! scenario, and the line it writes, read back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::BenchkitError;
use super::child::signal;
use super::figures::KeyValues;

/// What the sampler measured over one scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuShare {
    /// Other processes' share of all CPUs, in % (`None`: no line).
    pub foreign: Option<u64>,
    /// The foreign processes that took most, `name: 1.2s, ...`.
    pub foreign_top: String,
    /// The benchmark's own processes' CPU seconds, `label:1.2s,...`.
    pub own: String,
    /// Seconds sampled.
    pub wall: f64,
    /// The machine's idle share, in % (`None`: no line).
    pub idle: Option<u64>,
}

impl CpuShare {
    /// From the sampler's `FOREIGN ...` line.
    pub fn parse(text: &str) -> CpuShare {
        let Some(line) = KeyValues::find(text, "FOREIGN") else { return CpuShare::default() };
        CpuShare {
            foreign: line.count("share").ok(),
            foreign_top: line.get("top").unwrap_or("").replace(',', ", "),
            own: line.get("own").unwrap_or("").to_owned(),
            wall: line.number("wall_s").unwrap_or(0.0),
            idle: line.count("idle").ok(),
        }
    }

    /// `share` as text, `?` when unknown.
    pub fn foreign_text(&self) -> String {
        self.foreign.map_or_else(|| "?".to_owned(), |s| s.to_string())
    }

    /// `idle` as text, `?` when unknown.
    pub fn idle_text(&self) -> String {
        self.idle.map_or_else(|| "?".to_owned(), |s| s.to_string())
    }

    /// The own processes' CPU seconds as `a:1s, b:2s` (`-` for none).
    pub fn own_text(&self) -> String {
        if self.own.is_empty() { "-".to_owned() } else { self.own.replace(',', ", ") }
    }
}

/// A running sampler.
#[derive(Debug)]
pub struct Sampler {
    child: Option<Child>,
    out: PathBuf,
}

impl Sampler {
    /// Starts sampling into `out`; `own_pids` (the servers under test) are
    /// the benchmark's own, and so are the processes `env` names
    /// (`BENCH_SAMPLER_DB`, `BENCH_SAMPLER_OWN`, see [`super::proc_sampler`]).
    pub fn start(out: &Path, own_pids: &[u32], env: &[(&str, &str)]) -> Result<Sampler, BenchkitError> {
        let exe = std::env::current_exe()
            .map_err(|source| BenchkitError::Spawn { what: "benchkit sample".to_owned(), source })?;
        let _ = std::fs::remove_file(out);
        let mut command = Command::new(exe);
        command.arg("sample").arg(out).args(own_pids.iter().filter(|p| **p != 0).map(u32::to_string));
        command.envs(env.iter().copied()).stdin(Stdio::null());
        let child =
            command.spawn().map_err(|source| BenchkitError::Spawn { what: "benchkit sample".to_owned(), source })?;
        Ok(Sampler { child: Some(child), out: out.to_owned() })
    }

    /// Stops it and reads what it measured.
    pub fn stop(mut self) -> CpuShare {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "-TERM");
            let _ = child.wait();
        }
        CpuShare::parse(&std::fs::read_to_string(&self.out).unwrap_or_default())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampler_line_reads_back() {
        let share = CpuShare::parse(
            "FOREIGN cpu_s=3.2 share=5 top=cargo:2.0s,rustc:1.2s wall_s=30.1 own=api:20.5s,postgres:30.0s idle=12\n",
        );
        assert_eq!(share.foreign, Some(5));
        assert_eq!(share.foreign_top, "cargo:2.0s, rustc:1.2s");
        assert_eq!(share.own_text(), "api:20.5s, postgres:30.0s");
        assert_eq!(share.wall, 30.1);
        assert_eq!(share.idle_text(), "12");
        assert_eq!(CpuShare::parse("").foreign_text(), "?");
    }
}
