# Sourced by scripts/bench: `./scripts/bench api --burst`. Whether the api's
# memory follows its concurrency (bounded, given back) or grows: the release
# api over a fresh database, written to by wrk in rounds of a burst (500
# connections, 10 s) and 20 s idle, then 10 s at 50 connections; its RSS after
# each step. A leak grows from round to round; memory that follows
# concurrency peaks alike at every burst and comes back down under the
# lighter load.
#
# Uses scripts/bench's helpers (log, die, num, start_api, stop_api, org_uuid,
# psql_value, R, ...).

BURST_ROUNDS=${BENCH_BURST_ROUNDS:-3}
BURST_CONNECTIONS=${BENCH_BURST_CONNECTIONS:-500}
BURST_LIGHT_CONNECTIONS=${BENCH_BURST_LIGHT_CONNECTIONS:-50}
# Pass marks: each burst's peak within this share of the first's, and each
# light phase within this many MiB of the first light phase.
BURST_MAX_PEAK_RISE_PCT=10
BURST_MAX_LIGHT_RISE_MIB=5

api_rss_mib() {
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$api_pid/status"
}

# burst_wrk NAME CONNECTIONS: 10 s of writes; the rate it reached.
burst_wrk() {
    local out="$BENCH_DIR/burst-$1.wrk.txt"
    BENCH_TOKENS=$TOKENS BENCH_RUN_ID="$RUN_ID-$1" timeout --signal=INT 70 \
        wrk -t "$THREADS" -c "$2" -d 10s --timeout 10s -s "$HELPERS/write.lua" \
        "http://127.0.0.1:$PORT/api/v1/events" >"$out" 2>&1 || die "wrk failed, see $out"
    sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$out"
}

bench_burst() {
    ensure_services
    command -v wrk >/dev/null 2>&1 || apt_install wrk
    log "building (release)"
    cargo build --release -p api --bins
    unset XENTRI_ENV
    DB_NAME=xentri_burst
    DB_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME"
    SERVICE_URL="postgres://xentri_service@127.0.0.1:5432/$DB_NAME"
    BENCH_DIR=target/bench/burst
    mkdir -p "$BENCH_DIR"
    API_LOG="$BENCH_DIR/api.log"
    TOKENS="$BENCH_DIR/tokens.txt"
    RUN_ID=$(date -u +%Y%m%dT%H%M%S)
    local started n rows=() first_peak= first_light= peak light rate verdict=PASS
    started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
    psql -h 127.0.0.1 -U postgres -d postgres -X -v ON_ERROR_STOP=1 -q \
        -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME"
    DATABASE_URL=$SERVICE_URL DATABASE_MIGRATE_URL=$DB_URL ./target/release/api migrate 2>"$BENCH_DIR/migrate.log" ||
        { cat "$BENCH_DIR/migrate.log" >&2; die "migrations failed"; }
    : >"$TOKENS"
    for n in $(seq 1 "$ORGS"); do
        ./target/release/api dev-token --org "$(org_uuid "$n")" --sub "bench_user_$n" --ttl 2h >>"$TOKENS"
    done
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    start_api
    rows+=("| idle after start | – | $(api_rss_mib) |")
    for n in $(seq 1 "$BURST_ROUNDS"); do
        rate=$(burst_wrk "burst-$n" "$BURST_CONNECTIONS")
        peak=$(api_rss_mib)
        rows+=("| burst $n: 10 s at $BURST_CONNECTIONS connections | $(num "$rate" 0)/s | $peak |")
        log "burst $n: $(num "$rate" 0) writes/s, api RSS $peak MiB"
        sleep 20
        rows+=("| then 20 s idle | – | $(api_rss_mib) |")
        rate=$(burst_wrk "light-$n" "$BURST_LIGHT_CONNECTIONS")
        light=$(api_rss_mib)
        rows+=("| then 10 s at $BURST_LIGHT_CONNECTIONS connections | $(num "$rate" 0)/s | $light |")
        log "light $n: $(num "$rate" 0) writes/s, api RSS $light MiB"
        first_peak=${first_peak:-$peak}
        first_light=${first_light:-$light}
        le "$peak" "$(awk -v p="$first_peak" -v r="$BURST_MAX_PEAK_RISE_PCT" 'BEGIN { print p * (1 + r / 100) }')" || verdict=FAIL
        le "$light" "$(awk -v l="$first_light" -v r="$BURST_MAX_LIGHT_RISE_MIB" 'BEGIN { print l + r }')" || verdict=FAIL
    done
    stop_api

    local commit section
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -z "$(git status --porcelain -- . ':(exclude)BENCHMARKS.md' 2>/dev/null)" ] || commit="$commit+dirty"
    section=$(
        printf '## %s — %s — api memory under bursts (`./scripts/bench api --burst`)\n\n' "$started" "$commit"
        printf -- '- machine: %s, %s CPUs; release api, default settings, fresh database; wrk %s threads, `write.lua`\n\n' \
            "$(uname -srm)" "$(nproc)" "$THREADS"
        printf '| step | writes | api RSS MiB |\n|---|---:|---:|\n'
        printf '%s\n' "${rows[@]}"
        printf '\nEvery burst peaks within %s %% of the first, and every light phase within %s MiB of the first: **%s** (memory that follows concurrency, bounded and given back; a leak would grow from round to round).\n' \
            "$BURST_MAX_PEAK_RISE_PCT" "$BURST_MAX_LIGHT_RISE_MIB" "$verdict"
    )
    [ -f BENCHMARKS.md ] || benchmarks_header >BENCHMARKS.md
    printf '\n%s\n' "$section" >>BENCHMARKS.md
    printf '\n%s\n\n(appended to BENCHMARKS.md; wrk outputs and the api log in %s/)\n' "$section" "$BENCH_DIR"
    [ "$verdict" = PASS ] || die "burst: memory grew from round to round"
}
