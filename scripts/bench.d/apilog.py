#!/usr/bin/env python3
"""Summarises the api's JSON log between two byte offsets (one scenario).

Usage: apilog.py LOG START END

Prints, one line each: requests by route and status with the server-side
latency (the `latency_ms` of the api's per-request line: time inside the api,
without the client's queueing), then every WARN/ERROR message grouped, with
one example, then lines that are not JSON (panics, stray output).
"""
import collections
import json
import math
import sys


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    # Nearest rank.
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[max(0, min(len(sorted_values), rank) - 1)]


def main():
    path, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path, "rb") as log:
        log.seek(start)
        chunk = log.read(max(0, end - start))
    statuses = collections.Counter()
    latencies = collections.defaultdict(list)
    problems = collections.Counter()
    examples = {}
    not_json = []
    for raw in chunk.splitlines():
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            not_json.append(line)
            continue
        span = record.get("span") or {}
        level = record.get("level", "?")
        if record.get("message") == "request":
            route = f"{span.get('method', '?')} {span.get('route', '?')}"
            statuses[(route, record.get("status"))] += 1
            if isinstance(record.get("latency_ms"), (int, float)):
                latencies[route].append(record["latency_ms"])
        if level in ("WARN", "ERROR"):
            group = (level, record.get("message", ""), str(record.get("error", ""))[:200])
            problems[group] += 1
            examples.setdefault(group, line[:400])
    for route in sorted({route for route, _ in statuses}):
        counts = ", ".join(f"{status} x {n}" for (r, status), n in sorted(statuses.items(), key=str) if r == route)
        values = sorted(latencies[route])
        print(f"{route}: {counts}; in-api latency p50 {percentile(values, 50):.2f} ms, "
              f"p95 {percentile(values, 95):.2f} ms, p99 {percentile(values, 99):.2f} ms, "
              f"max {values[-1] if values else float('nan'):.2f} ms")
    if not statuses:
        print("no request lines")
    for (level, message, error), n in problems.most_common():
        print(f"{level} x {n}: {message}" + (f" ({error})" if error else ""))
        print(f"  e.g. {examples[(level, message, error)]}")
    if not problems:
        print("no WARN/ERROR lines")
    if not_json:
        print(f"{len(not_json)} non-JSON lines, first: {not_json[0][:300]}")


if __name__ == "__main__":
    main()
