//! The bench's measuring helpers, run as `tests/examples/benchkit.rs` by
//! `scripts/bench` and its benches: the CPU sampler ([`sampler`],
//! [`proc_sampler`]), the api log summary ([`apilog`]), the outage drills'
//! markdown ([`outage_report`]), fields of the drivers' JSON lines
//! ([`json_line`]) and the dead-letter seed stream ([`dlq_seed`]); and whole
//! benches, each a subcommand: [`api`], [`burst`], [`worker`], [`soak`],
//! [`dlq`], [`domain`], [`outage`].
//!
//! Their output is what the scripts paste into BENCHMARKS.md, whose rows
//! spell values in Python's conventions (`str()`, `repr()`,
//! `json.dumps(sort_keys=True)`): [`py`] holds a JSON value that keeps its
//! keys in document order and renders numbers, text and containers so.

pub mod api;
pub mod apilog;
pub mod burst;
pub mod child;
pub mod cpu;
pub mod cpu_summary;
pub mod dlq;
pub mod dlq_seed;
pub mod domain;
pub mod env;
pub mod figures;
pub mod json_line;
pub mod outage;
pub mod outage_report;
pub mod proc_sampler;
pub mod psql;
pub mod py;
pub mod record;
pub mod redis_sync;
pub mod sampler;
pub mod soak;
pub mod stage;
pub mod teed;
pub mod worker;

/// Why a helper could not do its work; the example prints it and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum BenchkitError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Text that should be JSON is not.
    #[error("{what} is not JSON: {source}")]
    Json {
        /// What was parsed (a file and line, or an argument).
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Input of the wrong shape: a missing key, a value of the wrong type.
    #[error("{0}")]
    Shape(String),
    /// A command-line argument that is not what the subcommand takes.
    #[error("{0}")]
    Usage(String),
    /// A program the bench runs could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The program.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A step of a bench failed: the run stops here.
    #[error("{0}")]
    Failed(String),
}

/// A release binary of the workspace (`target/release/NAME`, or under
/// `$CARGO_TARGET_DIR`), which `scripts/bench` builds before it runs a bench.
pub fn release_binary(name: &str) -> Result<std::path::PathBuf, BenchkitError> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::workspace().join("target"));
    let path = target.join("release").join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(BenchkitError::Failed(format!(
            "{} is missing: build it with `cargo build --release` first",
            path.display()
        )))
    }
}
