//! The soak's section on a real run: `fixtures/soak.md` is the section
//! BENCHMARKS.md holds for the 3-minute soak of 2026-11-30 18:38:29 UTC (its
//! hand-written preamble left out), `fixtures/soak.json` the generator's line
//! of that run (the per-minute lists rebuilt from the section's figures).

use super::super::lines::log_line;
use super::*;

const SECTION: &str = include_str!("../../fixtures/soak.md");
const LINE: &str = include_str!("../../fixtures/soak.json");

fn settings() -> SoakSettings {
    SoakSettings {
        seconds: 180,
        rate: 2000,
        orgs: 20,
        in_flight: 512,
        drain_seconds: 120,
        worker_port: 19090,
        vacuum_every: 30,
        api_port: 18080,
        redis_url: "redis://127.0.0.1:6379/0".to_owned(),
    }
}

fn facts() -> SoakFacts {
    SoakFacts {
        started: "2026-11-30 18:38:29 UTC".to_owned(),
        commit: "4d05917".to_owned(),
        machine: "Linux 6.18.44-fc-v657 x86_64, 2 CPUs, Intel(R) Xeon(R) Processor".to_owned(),
        load: "2.74 8.41 6.88".to_owned(),
        cpus: 2,
        redis_version: "7.0.15".to_owned(),
        pg_version: "15.20".to_owned(),
        vacuum_note: "autovacuum off on this server: the script ran `VACUUM outbox` every 30 s in its stead".to_owned(),
        db: "xentri_soak".to_owned(),
        outbox_dead: "0".to_owned(),
        dir: "target/bench/soak".to_owned(),
        overrides: String::new(),
        api_exit: "0".to_owned(),
        worker_exit: "0".to_owned(),
        cpu: CpuShare {
            foreign: Some(1),
            foreign_top: "beam.smp:0.8s, kworker/1:0H-kblockd:0.7s, kworker/0:1H-kblockd:0.5s, memfd:sealed-91:0.1s"
                .to_owned(),
            own: "postgres(xentri_soak):89.0s,api#1:34.0s,worker#2:30.0s,soak:21.0s,redis-server:16.0s,postgres(shared):3.0s"
                .to_owned(),
            wall: 100.0,
            idle: Some(2),
        },
        apilog: [
            "- api: GET /api/v1/metrics: 200 x 19; in-api latency p50 1.96 ms, p95 11.70 ms, p99 11.70 ms, max 11.70 ms",
            "- api: GET /health/ready: 200 x 1; in-api latency p50 10.45 ms, p95 10.45 ms, p99 10.45 ms, max 10.45 ms",
            "- api: POST /api/v1/events: 201 x 359995; in-api latency p50 10.40 ms, p95 37.28 ms, p99 69.10 ms, max 186.74 ms",
            "- api: no WARN/ERROR lines",
        ]
        .join("\n"),
        log_lines: vec![
            "- api: 360019 lines (113.4 MiB), 0 at WARN or ERROR".to_owned(),
            "- worker: 19 lines (0.0 MiB), 0 at WARN or ERROR".to_owned(),
        ],
        groups: "cache_invalidation: pending 0, lag 0; event_counts: pending 0, lag 0".to_owned(),
        stream_length: "0".to_owned(),
        prefix: "soak-1-1:".to_owned(),
        redis_left: 0,
    }
}

#[test]
fn a_real_section_reads_as_before() {
    let report = render(LINE.trim_end(), &settings(), &facts()).unwrap();
    assert_eq!(format!("{}\n", report.section), SECTION);
    assert_eq!(report.failed, vec!["latency"]);
}

#[test]
fn a_lost_event_and_a_killed_process_fail_with_notes() {
    let line = LINE.trim_end().replace(r#""lost": 0"#, r#""lost": 3"#).replace(r#""errors": 0"#, r#""errors": 2"#);
    let mut facts = facts();
    facts.worker_exit = "killed".to_owned();
    facts.redis_left = 4;
    let report = render(&line, &settings(), &facts).unwrap();
    assert_eq!(report.failed, vec!["latency", "lost", "shutdown"]);
    assert!(report.section.contains("| shutdown: SIGTERM | api exit 0, worker exit killed | both exit 0 | FAIL |"));
    assert!(report.section.contains(
        "\n\nNotes:\n\n- **2 requests unanswered; first: **\n- **3 events answered 201 had no event_counts record after 0 s of draining**; then: 0 rows in outbox; stream events:work 0 entries long, consumer groups cache_invalidation: pending 0, lag 0; event_counts: pending 0, lag 0 (lag: entries not yet delivered to the group; pending: delivered, not acknowledged). The latency figures cover the events handled by then only\n- 4 keys under soak-1-1: left in Redis after the clean-up\n\nRaw line"
    ));
}

#[test]
fn a_sustained_rate_leaves_one_blank_line_after_the_table() {
    let line = LINE.trim_end().replace(r#""late": 5543"#, r#""late": 5"#).replace(r#""unsent": 5"#, r#""unsent": 0"#);
    let report = render(&line, &settings(), &facts()).unwrap();
    assert!(report.section.contains("| PASS |\n\nLatency per minute"));
    assert!(report.section.contains("≤ 1 % late | met |"));
}

#[test]
fn thresholds_are_read_as_awk_printed_them() {
    assert_eq!(awk_printed(1980.0), 1980.0);
    assert_eq!(awk_printed(3599.95), 3599.95);
    assert_eq!(awk_printed(123456.78), 123457.0);
}

#[test]
fn log_lines_count_and_quote_the_first_warning() {
    let log = b"{\"level\":\"INFO\"}\n{\"level\":\"WARN\",\"message\":\"a `b`\"}\n{\"level\":\"ERROR\"}\n";
    assert_eq!(
        log_line("worker", &log[..]).unwrap(),
        "- worker: 3 lines (0.0 MiB), 2 at WARN or ERROR, first: `{\"level\":\"WARN\",\"message\":\"a 'b'\"}`"
    );
    assert_eq!(log_line("api", &b""[..]).unwrap(), "- api: 0 lines (0.0 MiB), 0 at WARN or ERROR");
}

#[test]
fn the_foreign_share_sentence() {
    let mut cpu = CpuShare { foreign: Some(12), foreign_top: "cargo:9.0s".to_owned(), ..CpuShare::default() };
    assert_eq!(
        foreign_summary("soak", &cpu),
        "Other processes' share of the CPUs during each scenario: soak 12 % (cargo:9.0s). **These figures are disturbed by that work: compare with care.**"
    );
    cpu.foreign = None;
    assert_eq!(foreign_summary("soak", &cpu), "Other processes' share of the CPUs during each scenario: soak ?.");
}
