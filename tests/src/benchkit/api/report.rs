//! The section `benchkit api` appends to BENCHMARKS.md: the results table,
//! the ratios against the original stack and pgbench, the open-loop table,
//! the two-process writes, the CPU other work took and what the api logged.
//! Every verdict is computed here, from an [`ApiRun`].

use super::figures::{ApiRun, OpenLoop, Pgbench, TwoApis, Wrk};
use crate::benchkit::cpu::CpuShare;
use crate::benchkit::cpu_summary::foreign_summary;
use crate::benchkit::figures::{fixed, percent_of, ratio, verdict};

/// Writes: p95 at most this many ms.
pub const TARGET_WRITES_P95_MS: f64 = 25.0;
/// Writes: at least this % of pgbench's rate.
pub const TARGET_WRITES_PCT_OF_PGBENCH: f64 = 60.0;
/// Writes: at least this many times the original stack (scaled).
pub const TARGET_WRITES_VS_ORIGINAL: f64 = 3.0;
/// Reads: at least this many times the original stack (scaled).
pub const TARGET_READS_VS_ORIGINAL: f64 = 5.0;
/// Reads: p95 at most this many ms.
pub const TARGET_READS_P95_MS: f64 = 15.0;
/// The original stack's writes/s on the reference machine.
pub const ORIGINAL_WRITES_RPS: f64 = 1269.0;
/// The original stack's reads/s on the reference machine.
pub const ORIGINAL_READS_RPS: f64 = 583.0;
/// The calibration's rate on the reference machine.
pub const REFERENCE_CALIBRATION_RPS: f64 = 5971.0;
/// Appends: at least this % of the calibration beside them.
pub const TARGET_APPEND_PCT_OF_CALIBRATION: f64 = 90.0;
/// Ours against the original stack run side by side.
pub const TARGET_VS_PEER: f64 = 6.0;
/// Open loop: p99 at most this many ms.
pub const TARGET_OPENLOOP_P99_MS: f64 = 10.0;
/// Two api processes: together at least this many times one, unless the
/// machine is CPU-bound (then within 10 % of one).
pub const TARGET_TWO_APIS_FACTOR: f64 = 1.5;

/// `x` as printed with `digits` decimals and read back: the bench compares
/// and divides some figures as printed, so the verdict matches the text.
fn rounded(x: f64, digits: usize) -> f64 {
    fixed(x, digits).parse().unwrap_or(x)
}

/// The scenarios whose CPU the section lists, in order.
fn scenarios(run: &ApiRun) -> Vec<(&'static str, &CpuShare)> {
    let [[append_1, calibration_1, event_1], [append_2, calibration_2, event_2]] = &run.rounds;
    vec![
        ("writes", &run.writes.cpu),
        ("peer_writes", &run.peer_writes.cpu),
        ("reads", &run.reads.cpu),
        ("peer_reads", &run.peer_reads.cpu),
        ("openloop_reads", &run.openloop[0].cpu),
        ("openloop_writes", &run.openloop[1].cpu),
        ("writes_one", &run.writes_one[0].cpu),
        ("two_apis", &run.two_apis.cpu),
        ("two_apis_split", &run.two_apis_split.cpu),
        ("writes_one_after", &run.writes_one[1].cpu),
        ("pgbench_list", &run.pgbench_list.cpu),
        ("pgbench", &run.pgbench.cpu),
        ("pgbench_pool", &run.pgbench_pool.cpu),
        ("calibration", &run.calibration.cpu),
        ("append_1", &append_1.cpu),
        ("calibration_1", &calibration_1.cpu),
        ("event_1", &event_1.cpu),
        ("append_2", &append_2.cpu),
        ("calibration_2", &calibration_2.cpu),
        ("event_2", &event_2.cpu),
    ]
}

/// Writes as % of pgbench's append at the same concurrency, as printed.
fn writes_pct(run: &ApiRun) -> f64 {
    rounded(percent_of(run.writes.rps, run.pgbench.rps), 1)
}

/// Appends (or the event row alone, `which` 2) as % of the calibration
/// beside them, both rounds together, as printed.
fn rounds_pct(run: &ApiRun, which: usize) -> f64 {
    let [first, second] = &run.rounds;
    rounded(percent_of(first[which].rps + second[which].rps, first[1].rps + second[1].rps), 1)
}

fn wrk_row(label: &str, w: &Wrk, target: &str) -> String {
    format!(
        "| {label} | {} | {} | {} | {} | {} | {} | {target} |\n",
        fixed(w.rps, 1),
        fixed(w.latency.p50, 2),
        fixed(w.latency.p95, 2),
        fixed(w.latency.p99, 2),
        w.non2xx,
        w.socket
    )
}

fn pgbench_row(label: &str, p: &Pgbench, target: &str) -> String {
    format!(
        "| {label} | {} | {} | {} | {} | {} failed | – | {target} |\n",
        fixed(p.rps, 1),
        fixed(p.latency.p50, 2),
        fixed(p.latency.p95, 2),
        fixed(p.latency.p99, 2),
        p.failed
    )
}

/// The results table.
pub fn results_table(run: &ApiRun) -> String {
    let (w, r) = (&run.writes, &run.reads);
    let pct = writes_pct(run);
    let pct_pool = rounded(percent_of(w.rps, run.pgbench_pool.rps), 1);
    let [[append_1, calibration_1, _], [append_2, calibration_2, _]] = &run.rounds;
    let mut t = String::from(
        "| scenario | requests/s | p50 ms | p95 ms | p99 ms | non-2xx | socket errors | target |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    t += &wrk_row(
        "a) writes: POST /api/v1/events",
        w,
        &format!(
            "p95 ≤ {TARGET_WRITES_P95_MS} ms: {}; ≥ {TARGET_WRITES_PCT_OF_PGBENCH} % of pgbench: {} %, {}; zero non-2xx: {}",
            verdict(w.latency.p95 <= TARGET_WRITES_P95_MS),
            fixed(pct, 1),
            verdict(pct >= TARGET_WRITES_PCT_OF_PGBENCH),
            verdict(w.non2xx == 0)
        ),
    );
    t += &wrk_row(
        "b) reads: GET /api/v1/events?limit=50",
        r,
        &format!(
            "p95 ≤ {TARGET_READS_P95_MS} ms: {}; zero non-2xx: {}",
            verdict(r.latency.p95 <= TARGET_READS_P95_MS),
            verdict(r.non2xx == 0)
        ),
    );
    let p = &run.pgbench;
    t += &pgbench_row(
        &format!("pgbench: the write statement, one append per transaction, {} clients", p.clients),
        p,
        &format!("the baseline (latency average {} ms)", fixed(p.avg_ms, 2)),
    );
    let l = &run.pgbench_list;
    t += &pgbench_row(
        &format!("pgbench: the reads' statement (one list_events call, 51 rows), {} clients", l.clients),
        l,
        &format!("reads are {} % of it", fixed(percent_of(r.rps, l.rps), 1)),
    );
    let pool = &run.pgbench_pool;
    t += &pgbench_row(
        &format!("pgbench: the same, {} clients (the api's pool size)", pool.clients),
        pool,
        &format!("for context: writes are {} % of it", fixed(pct_pool, 1)),
    );
    for (label, peer, ours) in [
        ("original stack: POST /api/v1/events", &run.peer_writes, w.rps),
        ("original stack: GET /api/v1/events?limit=50", &run.peer_reads, r.rps),
    ] {
        t += &format!(
            "| {label} | {} | {} | {} | {} | {} | – | ours/theirs {}×, target ≥ {TARGET_VS_PEER}× |\n",
            fixed(peer.rps, 1),
            fixed(peer.latency.p50, 2),
            fixed(peer.latency.p95, 2),
            fixed(peer.latency.p99, 2),
            peer.non_2xx,
            fixed(ratio(ours, peer.rps), 2)
        );
    }
    t += &format!(
        "| pgbench: one append per transaction through append_events, {} clients (two rounds) | {} / {} | {} | {} | {} | {} / {} failed | – | {} % of the calibration beside it, target ≥ {TARGET_APPEND_PCT_OF_CALIBRATION} % |\n",
        append_1.clients,
        fixed(append_1.rps, 1),
        fixed(append_2.rps, 1),
        fixed(append_1.latency.p50, 2),
        fixed(append_1.latency.p95, 2),
        fixed(append_1.latency.p99, 2),
        append_1.failed,
        append_2.failed,
        fixed(rounds_pct(run, 0), 1)
    );
    t += &format!(
        "| pgbench: calibration, {} clients (two rounds, alternating with the appends) | {} / {} | {} | {} | {} | {} / {} failed | – | – |\n",
        calibration_1.clients,
        fixed(calibration_1.rps, 1),
        fixed(calibration_2.rps, 1),
        fixed(calibration_1.latency.p50, 2),
        fixed(calibration_1.latency.p95, 2),
        fixed(calibration_1.latency.p99, 2),
        calibration_1.failed,
        calibration_2.failed
    );
    let c = &run.calibration;
    t += &pgbench_row(
        &format!("pgbench: single-row insert transactions under forced RLS, {} clients", c.clients),
        c,
        &format!(
            "calibration: {} % of the reference machine's {REFERENCE_CALIBRATION_RPS}/s",
            fixed(percent_of(c.rps, REFERENCE_CALIBRATION_RPS), 1)
        ),
    );
    t
}

/// Ours against the original stack as quoted, and scaled to this machine
/// by the calibration (the quoted figures come from another machine).
pub fn versus_original(run: &ApiRun) -> String {
    let factor = rounded(ratio(run.calibration.rps, REFERENCE_CALIBRATION_RPS), 3);
    let (w, r) = (run.writes.rps, run.reads.rps);
    let (sw, sr) = (ORIGINAL_WRITES_RPS * factor, ORIGINAL_READS_RPS * factor);
    let (xw, xr) = (ratio(w, sw), ratio(r, sr));
    format!(
        "Against the original stack (Fastify 5 + Prisma 7: {ORIGINAL_WRITES_RPS} writes/s, {ORIGINAL_READS_RPS} reads/s on the reference machine): \
         writes {}×, reads {}× as quoted. This machine runs the calibration at {} % of the reference machine's rate; \
         scaled to it ({} writes/s, {} reads/s), writes are **{}×** (target {TARGET_WRITES_VS_ORIGINAL}×: {}) and reads **{}×** (target {TARGET_READS_VS_ORIGINAL}×: {}).",
        fixed(w / ORIGINAL_WRITES_RPS, 1),
        fixed(r / ORIGINAL_READS_RPS, 1),
        fixed(100.0 * factor, 0),
        fixed(sw, 0),
        fixed(sr, 0),
        fixed(xw, 1),
        verdict(xw >= TARGET_WRITES_VS_ORIGINAL),
        fixed(xr, 1),
        verdict(xr >= TARGET_READS_VS_ORIGINAL)
    )
}

/// Ours against the original stack run side by side, and against pgbench
/// running our own statements.
pub fn versus_peer(run: &ApiRun) -> String {
    let (w, r) = (run.writes.rps, run.reads.rps);
    let (pw, pr) = (&run.peer_writes, &run.peer_reads);
    let (pa, pl) = (run.pgbench.rps, run.pgbench_list.rps);
    let (xw, xr) = (ratio(w, pw.rps), ratio(r, pr.rps));
    format!(
        "Side by side with the original stack (../shared/peers/seed-stack, same machine, same run, same wrk settings; \
         it does strictly less: no idempotency key, no outbox, no trace context): theirs {} writes/s (p95 {} ms, {} non-2xx) \
         and {} reads/s (p95 {} ms, {} non-2xx); ours are **{}×** on writes and **{}×** on reads (target {TARGET_VS_PEER}×: {}, {}). \
         Where PostgreSQL itself sets the limit, the alternative target is ≥ 90 % of pgbench running our own statement at the same concurrency: \
         writes are **{} %** of pgbench running append_events ({}/s: {}), reads **{} %** of pgbench running list_events ({}/s: {}).",
        fixed(pw.rps, 0),
        fixed(pw.latency.p95, 1),
        pw.non_2xx,
        fixed(pr.rps, 0),
        fixed(pr.latency.p95, 1),
        pr.non_2xx,
        fixed(xw, 2),
        fixed(xr, 2),
        verdict(xw >= TARGET_VS_PEER),
        verdict(xr >= TARGET_VS_PEER),
        fixed(percent_of(w, pa), 0),
        fixed(pa, 0),
        verdict(w >= 0.9 * pa),
        fixed(percent_of(r, pl), 0),
        fixed(pl, 0),
        verdict(r >= 0.9 * pl)
    )
}

/// One-append transactions and the event row alone against the calibration.
pub fn append_summary(run: &ApiRun) -> String {
    let [[a1, c1, e1], [a2, c2, e2]] = &run.rounds;
    let (append_pct, event_pct) = (rounds_pct(run, 0), rounds_pct(run, 2));
    format!(
        "One-append transactions through `append_events` (scripts/bench.d/append.sql) at {} clients, alternating with the calibration: \
         {}/s and {}/s against {}/s and {}/s, **{} %** of the calibration (target ≥ {TARGET_APPEND_PCT_OF_CALIBRATION} %: {}). \
         An append writes three rows (the event with its six indexes, its outbox row with two, its idempotency key with two); \
         the calibration writes one row with one index. The event row alone, as a plain INSERT in the calibration's shape \
         (scripts/bench.d/event_only.sql: its six indexes, three checks and row-level security; no key, no outbox row), \
         ran at {}/s and {}/s in the same rounds: **{} %** of the calibration, a ceiling for an append, which writes that row and two more.",
        a1.clients,
        fixed(a1.rps, 0),
        fixed(a2.rps, 0),
        fixed(c1.rps, 0),
        fixed(c2.rps, 0),
        fixed(append_pct, 1),
        verdict(append_pct >= TARGET_APPEND_PCT_OF_CALIBRATION),
        fixed(e1.rps, 0),
        fixed(e2.rps, 0),
        fixed(event_pct, 1)
    )
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "?".to_owned(), |v| fixed(v, 2))
}

fn openloop_row(kind: &str, o: &OpenLoop) -> String {
    let [p50, p90, p99, p999, max] = o.percentiles;
    let met = p99.is_some_and(|p| p <= TARGET_OPENLOOP_P99_MS) && o.non_2xx == 0 && o.errors == 0;
    format!(
        "| {kind} | {} of {} | {} | {} | {} | {} | {} | {} | {} | {} | p99 ≤ {TARGET_OPENLOOP_P99_MS} ms, zero non-2xx: {} |\n",
        o.ok,
        o.sent,
        ms(p50),
        ms(p90),
        ms(p99),
        ms(p999),
        ms(max),
        o.non_2xx,
        o.errors,
        o.late,
        verdict(met)
    )
}

/// The open-loop runs: a table and the verdicts.
pub fn openloop_summary(run: &ApiRun) -> String {
    let [reads, writes] = &run.openloop;
    let mut s = format!(
        "| open loop: {}/s for {} s after a 2 s warm-up | answered 2xx | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | non-2xx | errors | sent > 2 ms late | target |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        run.setup.openloop_rate, run.setup.secs
    );
    s += &openloop_row("GET /api/v1/events?limit=50", reads);
    s += &openloop_row("POST /api/v1/events", writes);
    s += &format!(
        "\nOpen loop (tests/examples/openloop.rs): request i is due at i / rate whatever the answers so far, and its latency runs \
         from when it was due to the end of its answer, so time spent waiting behind a slow answer is counted, not hidden as in a \
         closed loop. Closed-loop p95 at {} connections (the wrk rows) follows from throughput by Little's law and is not a target. \
         Other processes used {} % and {} % of the CPUs meanwhile; the machine was idle {} % and {} % of the time.",
        run.setup.connections,
        reads.cpu.foreign_text(),
        writes.cpu.foreign_text(),
        reads.cpu.idle_text(),
        writes.cpu.idle_text()
    );
    s
}

fn two_apis_figures(two: &TwoApis, mean: f64) -> (String, String) {
    let [first, second] = &two.halves;
    let figures = format!(
        "{}/s + {}/s = **{}/s**, **{}×** one process (p99 {} and {} ms; {} non-2xx, {} socket errors; CPU {}; idle {} %)",
        fixed(first.rps, 0),
        fixed(second.rps, 0),
        fixed(rounded(two.rps(), 1), 0),
        fixed(ratio(rounded(two.rps(), 1), mean), 2),
        fixed(first.p99, 2),
        fixed(second.p99, 2),
        first.non2xx + second.non2xx,
        first.socket + second.socket,
        two.cpu.own_text(),
        two.cpu.idle_text()
    );
    (figures, fixed(ratio(rounded(two.rps(), 1), mean), 2))
}

/// Two api processes writing at once against one process in the same run.
pub fn two_apis_summary(run: &ApiRun) -> String {
    let [before, after] = &run.writes_one;
    let mean = rounded((before.rps + after.rps) / 2.0, 1);
    let (default_figures, ratio_text) = two_apis_figures(&run.two_apis, mean);
    let (split_figures, _) = two_apis_figures(&run.two_apis_split, mean);
    let ratio_value: f64 = ratio_text.parse().unwrap_or(0.0);
    let busy = rounded(100.0 - before.cpu.idle.map_or(100.0, |i| i as f64), 0);
    let needed = rounded(busy * TARGET_TWO_APIS_FACTOR, 0);
    let (bound, met) = if needed > 100.0 {
        (
            format!(
                "the machine is CPU-bound with one process (busy {busy} %: {TARGET_TWO_APIS_FACTOR}× its writes at the same CPU per write \
                 would need {needed} % of the machine), so the target is within 10 % of one process"
            ),
            ratio_value >= 0.9,
        )
    } else {
        (
            format!(
                "the machine is not CPU-bound with one process (busy {busy} %: {TARGET_TWO_APIS_FACTOR}× would need {needed} %), \
                 so the target is ≥ {TARGET_TWO_APIS_FACTOR}× one process"
            ),
            ratio_value >= TARGET_TWO_APIS_FACTOR,
        )
    };
    let writers = run.setup.append_writers;
    format!(
        "Two api processes over one database, writes at {} connections on each at once (one wrk per api), against one process at {} \
         connections just before and just after: {}/s and {}/s, mean **{}/s** (p99 {} and {} ms; CPU before {}; idle {} %).\n\n\
         - {writers} append writers each (the default): {default_figures}; {bound}: {}.\n\
         - {} append writers each (together as many as one process has): {split_figures}.\n\n\
         Each process batches the appends waiting for it into one transaction per writer (`api.append_writers`, per process): with the \
         default each, PostgreSQL sees twice as many append transactions as from one process, each with about half the appends; with \
         half the writers each, as many as from one.",
        run.setup.connections / 2,
        run.setup.connections,
        fixed(before.rps, 0),
        fixed(after.rps, 0),
        fixed(mean, 0),
        fixed(before.latency.p99, 2),
        fixed(after.latency.p99, 2),
        before.cpu.own_text(),
        before.cpu.idle_text(),
        verdict(met),
        writers.div_ceil(2)
    )
}

/// A line on what the reads returned.
pub fn page_summary(run: &ApiRun) -> String {
    let [before, after] = &run.pages;
    let mut line = format!(
        "Reads: a page held {} events before the run and {} after (limit 50); {} bytes per answer on average.",
        before.events_text(),
        after.events_text(),
        run.reads.bytes_per_answer
    );
    // wrk's bytes include the response headers: an average under 90 % of a
    // full page means short pages during the run.
    if before.full() && (run.reads.bytes_per_answer as usize) < before.bytes * 9 / 10 {
        line += &format!(
            " **A full page is {} bytes: pages were short during the run (commit horizon held back).**",
            before.bytes
        );
    }
    for (when, page) in [("before", before), ("after", after)] {
        if !page.full() {
            line += &format!(
                " **Short pages {when} the run: the commit horizon was held back by {}; the reads figures measure near-empty answers.**",
                page.holders.as_deref().unwrap_or("?")
            );
        }
    }
    line
}

fn apilog_lines(label: &str, summary: &str) -> String {
    summary.lines().filter(|l| !l.starts_with("  e.g. ")).map(|l| format!("- {label}: {l}\n")).collect()
}

/// The whole section.
pub fn section(run: &ApiRun) -> String {
    let s = &run.setup;
    let overrides =
        if s.overrides.is_empty() { String::new() } else { format!("; environment overrides: {}", s.overrides) };
    let note = if run.pgbench.note.is_empty() { String::new() } else { format!(" ({})", run.pgbench.note) };
    let pct = writes_pct(run);
    format!(
        "## {} — {}\n\n\
         - machine: {}; load average at start {}\n\
         - PostgreSQL {} (max_connections {}, shared_buffers {}); api pool {} connections{overrides}\n\
         - wrk: {} per scenario, {} connections, {} threads; reads over {} events in {} orgs ({} of them from the writes)\n\
         - pgbench: {} clients{note}, then {}; {} threads, {} s each, -M prepared, api stopped; then the calibration \
         (scripts/bench.d/calibrate.sql), {} clients\n\n\
         {}\n\
         Writes reached **{} %** of pgbench's rate (target ≥ {TARGET_WRITES_PCT_OF_PGBENCH} %).\n\n\
         {}\n\n{}\n\n{}\n\n{}\n\n{}\n\n{}\n\n{}\n\n\
         What the api logged:\n\n{}{}",
        s.started,
        s.commit,
        s.machine,
        s.load,
        s.pg_version,
        s.pg_max_connections,
        s.pg_shared_buffers,
        s.pool,
        s.duration,
        s.connections,
        s.threads,
        run.reads_events,
        run.reads_orgs,
        run.writes_stored,
        run.pgbench.clients,
        run.pgbench_pool.clients,
        run.pgbench.threads,
        s.secs,
        run.calibration.clients,
        results_table(run),
        fixed(pct, 1),
        versus_original(run),
        versus_peer(run),
        append_summary(run),
        openloop_summary(run),
        two_apis_summary(run),
        foreign_summary(&scenarios(run)),
        page_summary(run),
        apilog_lines("writes", &run.writes.apilog),
        apilog_lines("reads", &run.reads.apilog),
    )
}
