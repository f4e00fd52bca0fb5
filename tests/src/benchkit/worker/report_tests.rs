//! The worker section rendered from the figures of a real run (BENCHMARKS.md,
//! 2026-11-26 17:14:45, b84481d) must equal that section byte for byte.

use super::*;
use crate::benchkit::cpu::CpuShare;

const SECTION: &str = include_str!("../fixtures/worker_section.md");

fn scenario(line: &str, cpu: f64, wall: f64, sampler: &str) -> Outcome {
    let mut outcome = Outcome::from_line(line).unwrap();
    outcome.driver_cpu = cpu;
    outcome.driver_wall = wall;
    outcome.cpu = CpuShare::parse(sampler);
    outcome
}

fn real_run() -> WorkerReport {
    WorkerReport {
        started: "2026-11-26 17:14:45 UTC".to_owned(),
        commit: "b84481d".to_owned(),
        machine: "Linux 6.18.44-fc-v782 x86_64, 2 CPUs, AMD EPYC".to_owned(),
        load: "2.71 3.17 3.58".to_owned(),
        cpus: 2,
        redis_version: "7.0.15".to_owned(),
        redis_url: "redis://127.0.0.1:6379/0".to_owned(),
        pg_version: "15.20".to_owned(),
        autovacuum: "off".to_owned(),
        db: "xentri_wbench".to_owned(),
        dead_before: "100000".to_owned(),
        dead_after: Some("20000".to_owned()),
        read_count: "100".to_owned(),
        block_ms: "1000".to_owned(),
        batch_size: "500".to_owned(),
        sizes: Sizes { worker_entries: 200000, relay_entries: 100000, latency_rate: 1000, latency_seconds: 20 },
        raw: scenario(
            r#"{"entries":200000,"per_second":46581.51403331893,"scenario":"raw","seconds":4.293548721}"#,
            4.97,
            7.52,
            "FOREIGN cpu_s=0.0 share=0 top=- wall_s=7.6 own=stream_bench:5.0s,redis-server:2.5s idle=50",
        ),
        runtime: scenario(
            r#"{"entries":200000,"per_second":32940.59843904278,"scenario":"runtime","seconds":6.071535111}"#,
            8.64,
            10.98,
            "FOREIGN cpu_s=0.0 share=0 top=- wall_s=11.0 own=stream_bench:8.6s,redis-server:4.5s idle=40",
        ),
        relay: scenario(
            r#"{"entries":100000,"per_second":10531.79167371598,"published":100000,"scenario":"relay","seconds":9.495060584}"#,
            1.33,
            17.01,
            "FOREIGN cpu_s=0.1 share=1 top=kdamond.0:0.1s wall_s=17.0 \
             own=postgres(xentri_wbench):16.3s,stream_bench:1.3s,redis-server:0.7s,postgres(shared):0.2s idle=43",
        ),
        latency: scenario(
            r#"{"achieved_rate":999.5803487311221,"entries":20000,"failed_posts":0,"handled":20000,"p50_ms":14.885,"p95_ms":41.138,"p99_ms":162.577,"scenario":"latency"}"#,
            13.47,
            21.24,
            "FOREIGN cpu_s=0.5 share=2 top=kworker/1:1H-kblockd:0.2s,kdamond.0:0.2s,kworker/0:1H-kblockd:0.1s \
             wall_s=21.3 own=postgres(xentri_wbench):17.7s,stream_bench:13.5s,redis-server:2.4s,postgres(shared):0.2s \
             idle=17",
        ),
    }
}

#[test]
fn a_real_section_reads_byte_for_byte() {
    assert_eq!(section(&real_run()), SECTION.trim_end_matches('\n'));
}

#[test]
fn failures_and_oddities_are_noted() {
    let mut run = real_run();
    run.autovacuum = "on".to_owned();
    run.raw = Outcome {
        error: Some("stopped after 160 s (hung or far too slow), see target/bench/worker/raw.log".to_owned()),
        leftover: Some("stream length 5".to_owned()),
        stderr: Some("2 lines on stderr, first: boom".to_owned()),
        redis_clients: 3,
        ..Outcome::default()
    };
    run.relay = Outcome::from_line(r#"{"entries":100,"per_second":25000.0,"published":99,"seconds":0.004}"#).unwrap();
    run.latency = Outcome::from_line(
        r#"{"achieved_rate":900.0,"entries":50,"failed_posts":1,"handled":48,"p50_ms":null,"p95_ms":null}"#,
    )
    .unwrap();
    let table = table(&run);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[2],
        "| raw: `XREADGROUP COUNT 100` + `XACK` loop, 200000 entries | no result: stopped after 160 s (hung or far too \
         slow), see target/bench/worker/raw.log | the limit, for the ratio (Python's loop: 116,000/s) | – |"
    );
    assert_eq!(
        rows[3],
        "| runtime: worker runtime, no-op handler, 200000 entries | 32941 msgs/s (6.07 s); raw missing | ≥ 60 % of raw | ? |"
    );
    assert_eq!(
        rows[5],
        "| relay: 100000-row outbox backlog | 25000 events/s (0.00 s); published 99 of 100 | ≥ 20000 events/s; \
         published = entries | rate met; all published missed |"
    );
    assert_eq!(
        rows[6],
        "| latency: api append → handler start, 1000 events/s for 20 s | no latencies: 48 events handled | p95 ≤ 20 ms | missed |"
    );
    assert_eq!(
        rows[7],
        "| latency: completeness | 48 handled of 50 posted, 1 posts failed; achieved 900.0 events/s | handled = posted \
         − failed | missed |"
    );
    assert_eq!(
        notes(&run),
        "- **raw: stopped after 160 s (hung or far too slow), see target/bench/worker/raw.log.**
- raw: what the killed driver left in Redis: stream length 5
- raw: the driver logged 2 lines on stderr, first: boom
- raw: 3 other Redis client(s) connected at the start (redis-server CPU below includes their work)
- **latency: the posts reached 900.0 events/s, short of the 1000 asked for.**
- **relay: the stream held 99 entries when the outbox was empty, not 100.**"
    );
    assert_eq!(
        runtime_line(&run),
        "The runtime drained **32941 msgs/s**, **2.01×** BullMQ 5 (target ≥ 5×, 81750 msgs/s)."
    );
    let text = section(&run);
    assert!(text.contains("\nraw: stopped after 160 s (hung or far too slow), see target/bench/worker/raw.log\n"));
    assert!(text.contains("\n\nNotes:\n\n- **raw:"));
    assert_eq!(own_cpu(&run.raw), "stream_bench 0.00 (0.0 s of CPU in 0.0 s); machine idle ? %");
}
