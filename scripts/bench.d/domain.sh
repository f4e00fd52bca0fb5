# Sourced by scripts/bench: `./scripts/bench domain`. The domain resources
# under load with the release binaries: the measuring, the verdicts and the
# table are tests/examples/domain.rs; this file builds, runs it and appends
# its report to BENCHMARKS.md.
#
# Uses scripts/bench's helpers (log, die, ...).

DOMAIN_DIR=target/bench/domain

bench_domain() {
    ensure_services
    log "building (release)"
    cargo build --release --bins
    cargo build --release -p xentri-e2e --example domain

    mkdir -p "$DOMAIN_DIR"
    local started load rc=0 machine commit table
    started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    log "domain: Soul staleness, cached reads (closed and open loop, cache on and off), lead imports"
    E2E_PROFILE=release timeout --kill-after=10 1800 ./target/release/examples/domain \
        --updates "${BENCH_DOMAIN_UPDATES:-1000}" --rate "${BENCH_DOMAIN_RATE:-2000}" \
        --json "$DOMAIN_DIR/domain.json" >"$DOMAIN_DIR/table.md" 2> >(tee "$DOMAIN_DIR/domain.log" >&2) || rc=$?
    [ "$rc" -eq 0 ] && [ -s "$DOMAIN_DIR/table.md" ] || die "the domain bench failed (status $rc), see $DOMAIN_DIR/domain.log"
    table=$(cat "$DOMAIN_DIR/table.md")

    machine="$(uname -srm), $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git status --porcelain -- . ':(exclude)BENCHMARKS.md' 2>/dev/null)" ]; then
        commit="$commit+dirty"
    fi
    local section
    section=$(
        cat <<SECTION
## $started — $commit — domain resources

- machine: $machine; load average at start $load
- processes: target/release/worker and two target/release/api (one with \`cache.enabled = false\`, same database and Redis) with the test profile (config/test.toml: warn-level logs); driver tests/examples/domain.rs (release) on the same machine
- staleness: each change of an approved Soul (editing, \`PUT\`, review_pending, approved in turn), then \`GET /api/v1/soul\` on the cached api until it answers the change's version: time from the change's 200 to that answer; closed loop: one connection per client, back to back; open loop: latency from when each request was due (2 s warm-up not counted)

$table
SECTION
    )
    [ -f BENCHMARKS.md ] || benchmarks_header >BENCHMARKS.md
    printf '\n%s\n' "$section" >>BENCHMARKS.md
    printf '\n%s\n\n(appended to BENCHMARKS.md; raw figures in %s/domain.json)\n' "$section" "$DOMAIN_DIR"
    if grep -q '| FAIL |' "$DOMAIN_DIR/table.md"; then
        die "domain: a target was missed"
    fi
    log "domain PASSED"
}
