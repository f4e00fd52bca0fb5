# Sourced by scripts/bench: `./scripts/bench outage`. Runs the recovery drills
# of issue 14 in their full form with the release binaries: the same drills as
# tests/outage.rs (tests/src/drills/), driven by tests/examples/outage.rs, each
# on a private PostgreSQL cluster and a private Redis server of its own (the
# machine's servers are never stopped or paused). This file builds, runs the
# drills and writes the report (formatted by `benchkit outage-report`,
# tests/src/benchkit/outage_report.rs).
#
# Uses scripts/bench's helpers (log, die, R, ...).

OUTAGE_DIR=target/bench/outage

bench_outage() {
    local drills=("$@")
    ensure_services
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || apt_install postgresql

    log "building (release)"
    cargo build --release --bins
    cargo build --release -p xentri-e2e --example outage
    cargo build --release -p xentri-e2e --example benchkit

    mkdir -p "$OUTAGE_DIR"
    local started load rc=0
    started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    log "outage drills: ${drills[*]:-postgres redis empty api spike} (figures in $OUTAGE_DIR/)"
    # E2E_PROFILE: the drills start target/release/{api,worker}.
    E2E_PROFILE=release timeout --kill-after=10 1800 ./target/release/examples/outage "${drills[@]}" \
        >"$OUTAGE_DIR/drills.jsonl" 2> >(tee "$OUTAGE_DIR/drills.log" >&2) || rc=$?
    [ -s "$OUTAGE_DIR/drills.jsonl" ] || die "the drills printed nothing (status $rc), see $OUTAGE_DIR/drills.log"

    local machine commit pg_version redis_version table failed
    machine="$(uname -srm), $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git status --porcelain -- . ':(exclude)BENCHMARKS.md' 2>/dev/null)" ]; then
        commit="$commit+dirty"
    fi
    pg_version=$("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres" --version |
        sed -n 's/.*(PostgreSQL) \([0-9.]*\).*/\1/p')
    redis_version=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
    table=$("$BENCHKIT" outage-report "$OUTAGE_DIR/drills.jsonl")
    failed=$("$BENCHKIT" outage-failed "$OUTAGE_DIR/drills.jsonl")

    local section
    section=$(
        cat <<SECTION
## $started — $commit — outage drills

- machine: $machine; load average at start $load
- each drill on a private PostgreSQL $pg_version cluster (initdb per drill, max_connections 200, fsync off) and a private Redis $redis_version server (no persistence; AOF \`appendfsync everysec\` in the Redis drill, so a stopped server comes back with its streams)
- processes: target/release/api and target/release/worker with the test profile (config/test.toml: warn-level logs), \`database.acquire_timeout_ms\` 500 for the api in the PostgreSQL drill; drills and clients: tests/src/drills/ and tests/src/load.rs driven by tests/examples/outage.rs (release)
- load: 10 writers, each key posted again after a 503 (honouring \`Retry-After\`, at most 1 s), a 409 or a dropped connection until it is answered; 1,000 events/s in all for the PostgreSQL and Redis drills, as fast as answered in the others; outages of 10 s, the api dead for 5 s; spike: 10 → 200 clients (half writing, half reading \`GET /api/v1/events?limit=50\`) within 10 s, held 10 s, \`api.max_concurrent_requests\` 64, \`/health\` probed every 100 ms
- lost: events answered 201 and not stored; duplicates: events beyond one per Idempotency-Key; every drill also checks each group handled each event once (processed records, the \`event_counts\` projection, \`worker audit\`)

$table

Checks that did not hold: $failed. Each drill's checks, figures and the processes' last log lines are in $OUTAGE_DIR/drills.log; one JSON document per drill in $OUTAGE_DIR/drills.jsonl.
SECTION
    )
    [ -f BENCHMARKS.md ] || benchmarks_header >BENCHMARKS.md
    printf '\n%s\n' "$section" >>BENCHMARKS.md
    printf '\n%s\n\n(appended to BENCHMARKS.md)\n' "$section"
    [ "$rc" -eq 0 ] || die "outage drills: $failed checks did not hold (status $rc)"
    log "outage drills PASSED"
}
