#!/usr/bin/env python3
"""Measures the CPU other work takes while a scenario runs.

Usage: sampler.py OUT [OWN_PID...]   (runs until SIGTERM or SIGINT)

With several OWN_PIDs each is listed apart as NAME#n, n its place in the list.

Every half second it reads utime+stime of every process in /proc; on exit it
writes one line to OUT:

  FOREIGN cpu_s=S share=P top=name:Ss,... wall_s=W own=name:Ss,... idle=I
  (no spaces in values)

where S is CPU seconds used by processes that are not the benchmark's, and P
is S as a percentage of the machine (wall time x CPUs). The benchmark's own are
the OWN_PIDs (the api), wrk, pgbench, this sampler, PostgreSQL backends of the
bench database (their process title names it) and PostgreSQL's shared
background processes. Everything else - a cargo build, another database's
sessions - competes with the benchmark for the same cores. A process that
starts and ends between two samples is missed.

`own` is the CPU time the benchmark's own processes (this sampler left out)
used over the W seconds, by name: where a scenario's CPU went; I is the
machine's idle time (idle + iowait, /proc/stat) in % of all CPUs meanwhile.

Environment: BENCH_SAMPLER_DB names the bench database (default xentri_bench);
BENCH_SAMPLER_OWN adds process names (comm) that count as the benchmark's,
comma-separated (`./scripts/bench worker` passes stream_bench,redis-server).
"""
import os
import signal
import sys
import time

BENCH_DB = os.environ.get("BENCH_SAMPLER_DB") or "xentri_bench"
OWN_COMMS = {"wrk", "pgbench"} | {c for c in os.environ.get("BENCH_SAMPLER_OWN", "").split(",") if c}
TICKS = os.sysconf("SC_CLK_TCK")


def snapshot(own_pids, me):
    """{pid: (label, cpu_ticks, ours)} of every process but this sampler."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] is the state (stat field 3): utime and stime are 14 and 15.
        ticks = int(fields[11]) + int(fields[12])
        if pid in own_pids:
            # Several own pids of one name (two api processes) apart: api#1, api#2.
            found[pid] = (own_pids[pid], ticks, True)
            continue
        if comm in OWN_COMMS:
            found[pid] = (comm, ticks, True)
            continue
        label = comm
        if comm == "postgres":
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            # A backend's title is "postgres: [CLUSTER: ]USER DATABASE HOST ...";
            # the postmaster and background processes ("postgres: 15/main:
            # checkpointer", autovacuum) serve everyone: counted as ours.
            words = title.split()
            if not words or words[0] != "postgres:":
                found[pid] = ("postgres(shared)", ticks, True)
                continue
            words = words[1:]
            if words and words[0].endswith(":"):
                words = words[1:]
            host = words[2] if len(words) >= 3 else ""
            if not (host.startswith("[local]") or "(" in host):
                found[pid] = ("postgres(shared)", ticks, True)
                continue
            if words[1] == BENCH_DB:
                found[pid] = (f"postgres({BENCH_DB})", ticks, True)
                continue
            label = f"postgres({words[1]})"
        found[pid] = (label, ticks, False)
    return found


def idle_and_total():
    """Idle (idle + iowait) and total jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user).
    return values[3] + values[4], sum(values[:8])


def by_label(first, last, ours):
    totals = {}
    for pid, (label, ticks, own) in last.items():
        if own != ours:
            continue
        used = ticks - first.get(pid, (label, 0, own))[1]
        if used > 0:  # (a reused pid can make it negative)
            totals[label] = totals.get(label, 0) + used / TICKS
    return totals


def listing(totals, limit):
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:limit]
    return ",".join(f"{label}:{secs:.1f}s" for label, secs in top if secs >= 0.1) or "-"


def main():
    out = sys.argv[1]
    me = os.getpid()
    pids = [int(p) for p in sys.argv[2:]]
    own = {}
    for n, pid in enumerate(pids, 1):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            comm = str(pid)
        own[pid] = f"{comm}#{n}" if len(pids) > 1 else comm
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    started = time.monotonic()
    first = snapshot(own, me)
    idle_start, total_start = idle_and_total()
    last = dict(first)
    while not stop:
        time.sleep(0.5)
        last.update(snapshot(own, me))
    wall = time.monotonic() - started
    idle_end, total_end = idle_and_total()
    idle = 100 * (idle_end - idle_start) / max(1, total_end - total_start)
    foreign = by_label(first, last, False)
    ours = by_label(first, last, True)
    total = sum(foreign.values())
    share = 100 * total / (wall * (os.cpu_count() or 1)) if wall > 0 else 0
    with open(out, "w") as f:
        f.write(f"FOREIGN cpu_s={total:.1f} share={share:.0f} top={listing(foreign, 4)} "
                f"wall_s={wall:.1f} own={listing(ours, 6)} idle={idle:.0f}\n")


if __name__ == "__main__":
    main()
