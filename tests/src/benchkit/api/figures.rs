//! What one `benchkit api` run measured, scenario by scenario: the figures
//! [`super::report`] renders and [`super::scenarios`] fills.

use crate::benchkit::cpu::CpuShare;

/// Latency percentiles in milliseconds (NaN when nothing was measured).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// p50.
    pub p50: f64,
    /// p95.
    pub p95: f64,
    /// p99.
    pub p99: f64,
}

/// One wrk scenario against our api.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrk {
    /// Answers per second.
    pub rps: f64,
    /// Client-side latency.
    pub latency: Latency,
    /// Answers counted.
    pub requests: u64,
    /// Answers with a status of 400 or more.
    pub non2xx: u64,
    /// Connect, read and write errors and timeouts.
    pub socket: u64,
    /// Bytes per answer, headers included.
    pub bytes_per_answer: u64,
    /// The CPU meanwhile.
    pub cpu: CpuShare,
    /// What the api logged meanwhile ([`crate::benchkit::apilog::summarise`]).
    pub apilog: String,
}

/// One wrk scenario against the original stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Answers per second.
    pub rps: f64,
    /// Client-side latency.
    pub latency: Latency,
    /// Non-2xx answers.
    pub non_2xx: u64,
    /// The CPU meanwhile.
    pub cpu: CpuShare,
}

/// One open-loop run (tests/examples/openloop.rs), its measured part.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenLoop {
    /// Requests sent.
    pub sent: u64,
    /// Answered 2xx.
    pub ok: u64,
    /// Answered otherwise.
    pub non_2xx: u64,
    /// Transport errors.
    pub errors: u64,
    /// Sent more than 2 ms after they were due.
    pub late: u64,
    /// p50, p90, p99, p99.9 and max in ms, from when each request was due
    /// (`None`: the run had none).
    pub percentiles: [Option<f64>; 5],
    /// The CPU meanwhile.
    pub cpu: CpuShare,
    /// What the api logged meanwhile.
    pub apilog: String,
}

/// One of two api processes written to at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Half {
    /// Answers per second.
    pub rps: f64,
    /// Client-side p99, ms.
    pub p99: f64,
    /// Non-2xx answers.
    pub non2xx: u64,
    /// Socket errors.
    pub socket: u64,
}

/// Two api processes written to at once.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoApis {
    /// Each process's wrk.
    pub halves: [Half; 2],
    /// The CPU meanwhile.
    pub cpu: CpuShare,
}

impl TwoApis {
    /// Both together, per second.
    pub fn rps(&self) -> f64 {
        self.halves[0].rps + self.halves[1].rps
    }
}

/// One pgbench run.
#[derive(Debug, Clone, PartialEq)]
pub struct Pgbench {
    /// Clients it ran with.
    pub clients: u32,
    /// Threads.
    pub threads: u32,
    /// Why fewer clients than asked, if so.
    pub note: String,
    /// Transactions per second without connection time.
    pub rps: f64,
    /// pgbench's latency average, ms.
    pub avg_ms: f64,
    /// Failed transactions as printed (`0`, or with a note on aborted clients).
    pub failed: String,
    /// From the per-transaction log.
    pub latency: Latency,
    /// The CPU meanwhile.
    pub cpu: CpuShare,
}

/// A page of reads probed before or after the run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// Events it held (`None`: not a page).
    pub events: Option<usize>,
    /// Its bytes.
    pub bytes: usize,
    /// The sessions holding back the commit horizon, when the page was short.
    pub holders: Option<String>,
}

impl Page {
    /// Its events as text, `?` when unknown.
    pub fn events_text(&self) -> String {
        self.events.map_or_else(|| "?".to_owned(), |n| n.to_string())
    }

    /// Whether it held a full page (50).
    pub fn full(&self) -> bool {
        self.events == Some(50)
    }
}

/// The settings and surroundings a run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// When it started.
    pub started: String,
    /// The commit, `+dirty` when the tree differs.
    pub commit: String,
    /// `uname`, CPUs, model.
    pub machine: String,
    /// Load average at the start.
    pub load: String,
    /// PostgreSQL's version, max_connections and shared_buffers.
    pub pg_version: String,
    /// `max_connections`.
    pub pg_max_connections: String,
    /// `shared_buffers`.
    pub pg_shared_buffers: String,
    /// The api's pool size.
    pub pool: u32,
    /// The api's append writers, per process.
    pub append_writers: u32,
    /// `XENTRI_*` variables set, space-separated.
    pub overrides: String,
    /// wrk's duration as given (`30s`).
    pub duration: String,
    /// The same in seconds.
    pub secs: u64,
    /// wrk connections.
    pub connections: u32,
    /// wrk threads.
    pub threads: u32,
    /// Open-loop requests per second.
    pub openloop_rate: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRun {
    /// Settings and surroundings.
    pub setup: Setup,
    /// Events stored by the writes.
    pub writes_stored: u64,
    /// Events the reads ran over, and their orgs.
    pub reads_events: u64,
    /// Orgs of those events.
    pub reads_orgs: u64,
    /// a) writes.
    pub writes: Wrk,
    /// The original stack's writes.
    pub peer_writes: Peer,
    /// b) reads.
    pub reads: Wrk,
    /// The original stack's reads.
    pub peer_reads: Peer,
    /// A page before and after the reads.
    pub pages: [Page; 2],
    /// Open-loop reads and writes.
    pub openloop: [OpenLoop; 2],
    /// One process's writes before and after the two-process runs.
    pub writes_one: [Wrk; 2],
    /// Two processes, default writers each.
    pub two_apis: TwoApis,
    /// Two processes, half the writers each.
    pub two_apis_split: TwoApis,
    /// pgbench running the reads' statement.
    pub pgbench_list: Pgbench,
    /// pgbench running the write statement at the same concurrency.
    pub pgbench: Pgbench,
    /// The same at the api's pool size.
    pub pgbench_pool: Pgbench,
    /// The calibration.
    pub calibration: Pgbench,
    /// Appends, the calibration and the event row alone, alternating: two rounds.
    pub rounds: [[Pgbench; 3]; 2],
}
