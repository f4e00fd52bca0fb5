#!/usr/bin/env python3
"""Formats the outage drills' JSON lines (tests/examples/outage.rs) as markdown.

Usage: outage_report.py DRILLS.jsonl

Prints one table row per drill (time to recovery, status-code counts, events
lost, duplicates, what failed), then the spike's p99 per 1-second window.
Exit status 0 whatever the checks say: the caller reads "failed" counts.
"""
import json
import sys


def statuses(figure):
    """`201 × 7200, 503 × 64` from an answers figure."""
    if not isinstance(figure, dict):
        return "–"
    counts = figure.get("statuses", {})
    text = ", ".join(f"{status} × {n}" for status, n in sorted(counts.items()))
    return f"{text} (slowest {figure.get('slowest_s', 0):.3f} s)" if text else "none"


def short(text, at=240):
    """`text`, cut at `at` characters (the whole of it is in drills.log)."""
    return text if len(text) <= at else text[:at] + " …"


def seconds(value):
    return "–" if value is None else f"{value:.2f} s"


def recovery(drill, f):
    name = drill["drill"]
    if name == "postgres stopped":
        return f"api {seconds(f.get('api_recovery_s'))}, worker {seconds(f.get('worker_recovery_s'))} after PostgreSQL accepted connections again (outage {seconds(f.get('outage_s'))})"
    if name == "redis paused and stopped":
        return (f"paused: backlog handled {seconds(f.get('paused_recovery_s'))} after the pause ended "
                f"({f.get('paused_outbox_at_end')} events waiting in the outbox at its end); stopped: "
                f"{seconds(f.get('stopped_recovery_s'))} after Redis was back ({f.get('stopped_outbox_at_end')} waiting)")
    if name == "redis restarted empty":
        return (f"groups recreated {seconds(f.get('groups_recreated_s'))} after Redis was back; "
                f"`worker audit`: {f.get('missing_before_republish')} events of event_counts missing "
                f"({f.get('relayed_unhandled_at_kill')} relayed and unhandled at the kill, the rest in the worker's memory); "
                f"`worker republish` put back {f.get('republished_event_counts')} (event_counts) and "
                f"{f.get('republished_cache_invalidation')} (cache_invalidation); all handled {seconds(f.get('recovered_after_republish_s'))} after it started")
    if name == "api killed":
        return (f"restarted api listening {seconds(f.get('api_start_s'))} after start, first 201 {seconds(f.get('api_recovery_s'))} after start; "
                f"{f.get('in_flight_at_kill')} requests cut at the kill, {f.get('cut_keys_committed_before_the_kill')} of their keys had committed (replayed on retry)")
    if name == "spike":
        clients = f.get("clients", {})
        return (f"{clients.get('from')} → {clients.get('to')} clients in {seconds(f.get('ramp_s'))}, "
                f"api.max_concurrent_requests {f.get('max_concurrent_requests')}; /health: {statuses(f.get('health'))}")
    return "–"


def main():
    drills = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
    print("| drill | time to recovery | status codes | events lost | duplicates | checks |")
    print("|---|---|---|---:|---:|---|")
    for drill in drills:
        f = drill["figures"]
        failed = [c for c in drill["checks"] if not c["held"]]
        checks = f"{len(drill['checks']) - len(failed)} of {len(drill['checks'])} held"
        if failed:
            checks += ": **FAILED** " + "; ".join(f"{c['what']} ({short(c['found'])})" for c in failed)
        codes = statuses(f.get("answers"))
        if drill["drill"] == "postgres stopped":
            codes += f"; during the outage {statuses(f.get('answers_during_outage'))}"
        if drill["drill"] == "spike":
            codes = f"writes {statuses(f.get('writes'))}; reads {statuses(f.get('reads'))}"
        print(f"| {drill['drill']} | {recovery(drill, f)} | {codes} | {f.get('events_lost', '–')} | {f.get('duplicates', '–')} | {checks} |")
    print()
    print("What the api and the worker logged at WARN and ERROR (lines per message):")
    print()
    for drill in drills:
        logged = drill["figures"].get("logged", {})
        parts = []
        for process in ("api", "worker"):
            lines = logged.get(process, {})
            text = ", ".join(f"`{message}` × {n}" for message, n in sorted(lines.items(), key=lambda kv: -kv[1]))
            parts.append(f"{process}: {text or 'nothing'}")
        print(f"- {drill['drill']}: " + "; ".join(parts))
    for drill in drills:
        if drill["drill"] != "spike":
            continue
        windows = drill["figures"].get("per_second", [])
        print()
        print("Spike, per 1-second window of sending (second: requests, p99 ms, 503s): " + "; ".join(
            f"{w['second']}: {w['requests']}, {w['p99_ms']}, {w['statuses'].get('503', 0)}" for w in windows) + ".")


if __name__ == "__main__":
    main()
