//! The api section rendered from the figures of a real run, against the text
//! the bench wrote for them (`fixtures/api_section.md`), and the lines that
//! only show when something was off.

use super::figures::{ApiRun, Half, Latency, OpenLoop, Page, Peer, Pgbench, Setup, TwoApis, Wrk};
use super::report;
use crate::benchkit::cpu::CpuShare;

fn cpu(foreign: u64, top: &str) -> CpuShare {
    CpuShare { foreign: Some(foreign), foreign_top: top.to_owned(), ..CpuShare::default() }
}

fn quiet() -> CpuShare {
    cpu(1, "beam.smp:0.1s")
}

fn lat(p50: f64, p95: f64, p99: f64) -> Latency {
    Latency { p50, p95, p99 }
}

fn wrk(rps: f64, latency: Latency, apilog: &str) -> Wrk {
    Wrk {
        rps,
        latency,
        requests: 0,
        non2xx: 0,
        socket: 0,
        bytes_per_answer: 0,
        cpu: quiet(),
        apilog: apilog.to_owned(),
    }
}

fn pgbench(clients: u32, rps: f64, latency: Latency) -> Pgbench {
    Pgbench {
        clients,
        threads: 2,
        note: String::new(),
        rps,
        avg_ms: 0.0,
        failed: "0".to_owned(),
        latency,
        cpu: quiet(),
    }
}

fn openloop(late: u64, percentiles: [f64; 5], cpu: CpuShare) -> OpenLoop {
    OpenLoop {
        sent: 30000,
        ok: 30000,
        non_2xx: 0,
        errors: 0,
        late,
        percentiles: percentiles.map(Some),
        cpu,
        apilog: String::new(),
    }
}

fn two(halves: [(f64, f64); 2], own: &str, idle: u64) -> TwoApis {
    TwoApis {
        halves: halves.map(|(rps, p99)| Half { rps, p99, non2xx: 0, socket: 0 }),
        cpu: CpuShare { own: own.to_owned(), idle: Some(idle), ..quiet() },
    }
}

/// The figures of the 18:25 run of 2026-11-30 (1322e8e).
pub(super) fn run() -> ApiRun {
    let mut reads = wrk(
        2482.6,
        lat(38.49, 58.04, 87.54),
        "GET /api/v1/events: 200 x 74646; in-api latency p50 30.87 ms, p95 46.97 ms, p99 64.46 ms, max 261.34 ms\n\
         no WARN/ERROR lines\n",
    );
    reads.bytes_per_answer = 40463;
    reads.cpu = cpu(0, "-");
    let mut writes_one = wrk(4453.0, lat(0.0, 0.0, 49.74), "");
    writes_one.cpu = CpuShare {
        own: "postgres(xentri_bench):32.5s,api:16.4s,wrk:3.3s,postgres(shared):0.3s".to_owned(),
        idle: Some(12),
        ..quiet()
    };
    let mut pgbench_append = pgbench(90, 3071.712345, lat(22.9, 45.05, 72.88));
    pgbench_append.note = "reduced from 100: max_connections is 100, 0 other connections, 10 kept free".to_owned();
    pgbench_append.avg_ms = 29.301;
    let page = Page { events: Some(50), bytes: 40500, holders: None };
    ApiRun {
        setup: Setup {
            started: "2026-11-30 18:25:06 UTC".to_owned(),
            commit: "1322e8e".to_owned(),
            machine: "Linux 6.18.44-fc-v657 x86_64, 2 CPUs, Intel(R) Xeon(R) Processor".to_owned(),
            load: "1.84 2.01 3.08".to_owned(),
            pg_version: "15.20".to_owned(),
            pg_max_connections: "100".to_owned(),
            pg_shared_buffers: "128MB".to_owned(),
            pool: 32,
            append_writers: 4,
            overrides: String::new(),
            duration: "30s".to_owned(),
            secs: 30,
            connections: 100,
            threads: 2,
            openloop_rate: 1000,
        },
        writes_stored: 174022,
        reads_events: 174022,
        reads_orgs: 100,
        writes: wrk(
            5780.2,
            lat(16.16, 31.93, 43.85),
            "POST /api/v1/events: 201 x 173974; in-api latency p50 13.37 ms, p95 27.72 ms, p99 36.88 ms, max 117.63 ms\n\
             WARN x 1: request\n  e.g. {\"level\":\"WARN\"}\n",
        ),
        peer_writes: Peer { rps: 762.1, latency: lat(124.51, 246.88, 752.17), non_2xx: 0, cpu: quiet() },
        reads,
        peer_reads: Peer { rps: 455.5, latency: lat(209.69, 327.97, 967.71), non_2xx: 0, cpu: cpu(0, "-") },
        pages: [page.clone(), page],
        openloop: [
            openloop(2861, [2.88, 7.04, 34.03, 61.18, 127.46], CpuShare { idle: Some(33), ..cpu(8, "openloop:4.6s") }),
            openloop(
                144,
                [3.19, 5.32, 8.91, 30.05, 52.17],
                CpuShare { idle: Some(32), ..cpu(9, "openloop:5.2s, beam.smp:0.2s") },
            ),
        ],
        writes_one: [writes_one, wrk(4547.0, lat(0.0, 0.0, 49.21), "")],
        two_apis: two(
            [(2166.6, 64.27), (2151.8, 62.42)],
            "postgres(xentri_bench):34.8s,api#1:8.8s,api#2:8.7s,wrk:2.8s,postgres(shared):0.4s",
            7,
        ),
        two_apis_split: two(
            [(2207.3, 55.10), (2198.1, 55.20)],
            "postgres(xentri_bench):32.9s,api#2:8.8s,api#1:8.8s,wrk:3.0s,postgres(shared):0.4s",
            9,
        ),
        pgbench_list: pgbench(90, 3174.7, lat(21.14, 53.53, 77.49)),
        pgbench: pgbench_append,
        pgbench_pool: pgbench(32, 3247.1, lat(8.74, 16.02, 20.87)),
        calibration: pgbench(90, 5528.6, lat(13.29, 29.41, 37.69)),
        rounds: [
            [
                pgbench(90, 3302.1, lat(21.48, 42.25, 69.24)),
                pgbench(90, 5882.6, lat(12.54, 27.49, 35.71)),
                pgbench(90, 3902.4, lat(0.0, 0.0, 0.0)),
            ],
            [
                pgbench(90, 2863.9, lat(0.0, 0.0, 0.0)),
                pgbench(90, 5072.1, lat(0.0, 0.0, 0.0)),
                pgbench(90, 3310.2, lat(0.0, 0.0, 0.0)),
            ],
        ],
    }
}

#[test]
fn a_run_renders_as_the_section_the_bench_wrote_for_it() {
    let expected = include_str!("../fixtures/api_section.md");
    let rendered = report::section(&run());
    for (n, (got, want)) in rendered.lines().zip(expected.lines()).enumerate() {
        assert_eq!(got, want, "line {} differs", n + 1);
    }
    assert_eq!(rendered, expected);
}

#[test]
fn short_pages_and_disturbed_runs_are_called_out() {
    let mut run = run();
    run.pages[1] = Page { events: Some(3), bytes: 2000, holders: Some("1 session(s) of database x".to_owned()) };
    run.reads.bytes_per_answer = 20000;
    run.peer_reads.cpu = CpuShare::default();
    run.writes.cpu = cpu(12, "cargo:40.0s");
    let pages = report::page_summary(&run);
    assert!(pages.contains("**A full page is 40500 bytes: pages were short during the run"), "{pages}");
    assert!(
        pages.contains("**Short pages after the run: the commit horizon was held back by 1 session(s) of database x;")
    );
    assert!(!pages.contains("Short pages before"));
    let cpu = crate::benchkit::cpu_summary::foreign_summary(&[
        ("writes", &run.writes.cpu),
        ("peer_reads", &run.peer_reads.cpu),
    ]);
    assert_eq!(
        cpu,
        "Other processes' share of the CPUs during each scenario: writes 12 % (cargo:40.0s); peer_reads ?. \
         **These figures are disturbed by that work: compare with care.**"
    );
}

#[test]
fn two_processes_are_held_to_one_and_a_half_times_one_when_the_machine_has_room() {
    let mut run = run();
    run.writes_one[0].cpu.idle = Some(50);
    let text = report::two_apis_summary(&run);
    assert!(
        text.contains("the machine is not CPU-bound with one process (busy 50 %: 1.5× would need 75 %), so the target is ≥ 1.5× one process: missed"),
        "{text}"
    );
}

#[test]
fn an_open_loop_run_without_figures_misses() {
    let mut run = run();
    run.openloop[1].percentiles = [None; 5];
    let text = report::openloop_summary(&run);
    assert!(text.contains("| POST /api/v1/events | 30000 of 30000 | ? | ? | ? | ? | ? | 0 | 0 | 144 | p99 ≤ 10 ms, zero non-2xx: missed |"), "{text}");
}
