# Sourced by scripts/bench: `./scripts/bench worker --soak`. The release api
# and worker run as processes of their own over a fresh database; the release
# load generator tests/examples/soak.rs posts events at a fixed rate, samples
# both processes' RSS and measures api → relay → event_counts latency; this
# file starts and stops everything and writes the report.
#
# Uses scripts/bench's helpers (log, die, psql_value, num, le, port_in_use,
# stop_sampler, R, ...).

SOAK_DB=xentri_soak
SOAK_DIR=target/bench/soak
SOAK_SECONDS=${BENCH_SOAK_SECONDS:-600}
SOAK_RATE=${BENCH_SOAK_RATE:-2000}
SOAK_ORGS=${BENCH_SOAK_ORGS:-20}
SOAK_IN_FLIGHT=${BENCH_SOAK_IN_FLIGHT:-512}
SOAK_DRAIN_SECONDS=${BENCH_SOAK_DRAIN_SECONDS:-120}
SOAK_WORKER_PORT=${BENCH_SOAK_WORKER_PORT:-19090}
# With the server's autovacuum off, outbox (a queue) is vacuumed this often by
# the script instead; 0 leaves it to pile up dead rows.
SOAK_VACUUM_EVERY=${BENCH_SOAK_VACUUM_EVERY:-30}

# Pass marks.
SOAK_MAX_GROWTH_MIB_H=5
SOAK_MAX_P99_RISE_PCT=20

soak_api_pid=
soak_worker_pid=
soak_vacuum_pid=

# free_port FIRST: the first port from FIRST on that nothing listens on.
free_port() {
    local port=$1
    while port_in_use "$port"; do
        port=$((port + 1))
        [ "$port" -lt $(($1 + 100)) ] || die "no free port in $1-$(($1 + 99))"
    done
    echo "$port"
}

# wait_ready NAME PID URL LOG: until URL answers 2xx (at most 30 s).
wait_ready() {
    local name=$1 pid=$2 url=$3 logfile=$4
    for _ in $(seq 1 120); do
        if curl -sf -o /dev/null --max-time 2 "$url"; then return 0; fi
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$logfile" >&2; die "the $name exited during start-up"; }
        sleep 0.25
    done
    tail -n 20 "$logfile" >&2
    die "the $name was not ready within 30 s"
}

# stop_process PID NAME: SIGTERM, then up to 30 s to exit (SIGKILL after);
# R[NAME_exit] is its exit status, or "killed" when it had to be. Runs in this
# shell, not in $(...): a subshell cannot wait for this shell's children.
stop_process() {
    local pid=$1 name=$2 rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        R[${name}_exit]=killed
        return 0
    fi
    wait "$pid" 2>/dev/null || rc=$?
    R[${name}_exit]=$rc
}

soak_cleanup() {
    if [ -n "$sampler_pid" ]; then kill -TERM "$sampler_pid" 2>/dev/null || true; fi
    if [ -n "$soak_vacuum_pid" ]; then kill -TERM "$soak_vacuum_pid" 2>/dev/null || true; fi
    if [ -n "$soak_api_pid" ]; then stop_process "$soak_api_pid" api; fi
    if [ -n "$soak_worker_pid" ]; then stop_process "$soak_worker_pid" worker; fi
    if [ -n "${SOAK_PREFIX:-}" ]; then
        redis-cli -u "$REDIS" --scan --pattern "$SOAK_PREFIX*" | xargs -r -n 100 redis-cli -u "$REDIS" UNLINK >/dev/null
    fi
}

# soak_field PATH: one value of the generator's JSON line, by dotted path
# (first_minute.p99_ms); "" when missing or null.
soak_field() {
    "$BENCHKIT" json-field "${R[soak_json]}" "$1"
}

# The latency per minute, one "minute: p50/p95/p99 ms (events)" item each.
soak_minutes() {
    "$BENCHKIT" soak-minutes "${R[soak_json]}"
}

# The events handled per minute since the start of sending, "minute: n" each.
soak_handled_minutes() {
    "$BENCHKIT" soak-handled "${R[soak_json]}"
}

# soak_rss_row NAME: the table row of one process's RSS; sets R[NAME_verdict].
# (soak_table sets verdicts: call it in this shell, not in $(...).)
soak_rss_row() {
    local name=$1 start warm end growth error scatter after floor verdict fig
    start=$(soak_field "$name.start_mib")
    warm=$(soak_field "$name.warm_mib")
    end=$(soak_field "$name.end_mib")
    growth=$(soak_field "$name.growth_mib_h")
    error=$(soak_field "$name.growth_standard_error_mib_h")
    scatter=$(soak_field "$name.scatter_mib")
    after=$(soak_field "$name.samples_after_warmup")
    floor=$(soak_field "$name.floor_growth_mib_h")
    if [ -n "$growth" ]; then
        fig="start $(num "$start") MiB, after warm-up $(num "$warm") MiB, end $(num "$end") MiB; growth **$(num "$growth" 2) MiB/h** ± $(num "$error" 2) (least squares over $after samples after the warm-up, ± its standard error; samples scatter $(num "$scatter" 2) MiB around the line); through each minute's lowest sample $(num "${floor:-0}" 2) MiB/h"
        [ "$name" != api ] || fig+="; api sockets open $(soak_field api_sockets.min)-$(soak_field api_sockets.max)"
        # The allocator's own counts (diagnostic): live bytes that grow are a
        # leak; resident bytes that grow over flat live bytes are kept for reuse.
        local live resident
        live=$(soak_field "${name}_heap_allocated.growth_mib_h")
        resident=$(soak_field "${name}_heap_resident.growth_mib_h")
        [ -z "$live" ] || fig+="; allocator: live $(num "$(soak_field "${name}_heap_allocated.warm_mib")") → $(num "$(soak_field "${name}_heap_allocated.end_mib")") MiB, growth $(num "$live" 2) ± $(num "$(soak_field "${name}_heap_allocated.growth_standard_error_mib_h")" 2) MiB/h; resident $(num "$(soak_field "${name}_heap_resident.warm_mib")") → $(num "$(soak_field "${name}_heap_resident.end_mib")") MiB, growth $(num "${resident:-0}" 2) MiB/h"
        verdict=$(le "$growth" "$SOAK_MAX_GROWTH_MIB_H" && echo PASS || echo FAIL)
    else
        fig="no growth figure (${after:-0} samples after the warm-up)"
        verdict=FAIL
    fi
    [ "$(soak_field "$name.gone")" != True ] || fig+="; **the process was gone before the end**"
    R[${name}_verdict]=$verdict
    echo "| $name RSS | $fig | ≤ $SOAK_MAX_GROWTH_MIB_H MiB/h after the warm-up | $verdict |"
}

# The results table.
soak_table() {
    echo '| scenario | figure | target | verdict |'
    echo '|---|---|---|---|'
    soak_rss_row api
    soak_rss_row worker

    local f50 f95 f99 l50 l95 l99 lmin rise verdict fig
    f50=$(soak_field first_minute.p50_ms) f95=$(soak_field first_minute.p95_ms) f99=$(soak_field first_minute.p99_ms)
    l50=$(soak_field last_minute.p50_ms) l95=$(soak_field last_minute.p95_ms) l99=$(soak_field last_minute.p99_ms)
    # The last complete minute of sending (as the generator picks it).
    lmin=$(awk -v s="$(soak_field sending_seconds)" 'BEGIN { m = int((s + 0.5) / 60) - 1; print (m < 0 ? 0 : m) }')
    if [ -n "$f99" ] && [ -z "$l99" ]; then
        fig="first minute p50 $(num "$f50" 1) / p95 $(num "$f95" 1) / p99 $(num "$f99" 1) ms ($(soak_field first_minute.events) events handled); last (minute $lmin): none of its events handled by the end of draining"
        verdict=FAIL
    elif [ -n "$f99" ]; then
        rise=$(awk -v a="$l99" -v b="$f99" 'BEGIN { printf "%+.1f", (b > 0 ? 100 * (a - b) / b : 0) }')
        fig="first minute p50 $(num "$f50" 1) / p95 $(num "$f95" 1) / p99 $(num "$f99" 1) ms ($(soak_field first_minute.events) events); last (minute $lmin) p50 $(num "$l50" 1) / p95 $(num "$l95" 1) / p99 $(num "$l99" 1) ms ($(soak_field last_minute.events) events); p99 $rise %"
        verdict=$(le "$l99" "$(awk -v b="$f99" -v p="$SOAK_MAX_P99_RISE_PCT" 'BEGIN { print b * (1 + p / 100) }')" && echo PASS || echo FAIL)
    else
        fig="no latencies"
        verdict=FAIL
    fi
    R[latency_verdict]=$verdict
    echo "| latency: api send → event_counts handler | $fig | last-minute p99 ≤ first-minute p99 + $SOAK_MAX_P99_RISE_PCT % | $verdict |"

    local lost
    lost=$(soak_field lost)
    R[lost_verdict]=$([ "$lost" = 0 ] && echo PASS || echo FAIL)
    fig="scheduled $(soak_field scheduled), sent $(soak_field sent) ($(soak_field unsent) unsent when the time was up): $(soak_field created) × 201, $(soak_field non_201) other statuses, $(soak_field errors) unanswered, $(soak_field late) late (> $(soak_field late_after_ms) ms behind schedule); $(soak_field handled) handled, **$lost lost**; outbox $(soak_field outbox_left) rows after $(num "$(soak_field drain_waited_seconds)" 1) s of draining"
    echo "| completeness | $fig | lost = 0 (201 without an event_counts record) | ${R[lost_verdict]} |"

    fig="$(num "$(soak_field achieved_rate)") events/s of $SOAK_RATE asked (the schedule took $(num "$(soak_field sending_seconds)" 1) s of $SOAK_SECONDS); 201 answers p50 $(num "$(soak_field response_p50_ms)" 1) ms, p99 $(num "$(soak_field response_p99_ms)" 1) ms"
    echo "| rate sustained: posting | $fig | $SOAK_RATE events/s, all sent, ≤ 1 % late | $(soak_rate_met && echo met || echo missed) |"

    fig="$(soak_field handled_while_sending) of $(soak_field sent) sent events handled while sending: $(num "$(soak_field handled_rate_while_sending)") events/s"
    echo "| rate sustained: event_counts handling | $fig | ≥ 99 % of the sent handled while sending | $(soak_kept_up && echo met || echo missed) |"

    R[shutdown_verdict]=$([ "${R[api_exit]}" = 0 ] && [ "${R[worker_exit]}" = 0 ] && echo PASS || echo FAIL)
    echo "| shutdown: SIGTERM | api exit ${R[api_exit]}, worker exit ${R[worker_exit]} | both exit 0 | ${R[shutdown_verdict]} |"
}

# The asked rate was held: within 1 %, everything sent, at most 1 % late.
soak_rate_met() {
    ge "$(soak_field achieved_rate)" "$(awk -v r="$SOAK_RATE" 'BEGIN { print r * 0.99 }')" &&
        [ "$(soak_field unsent)" = 0 ] && le "$(soak_field late)" "$(awk -v n="$(soak_field sent)" 'BEGIN { print n / 100 }')"
}

# The event_counts group kept up: it handled ≥ 99 % of the sent events while
# they were being sent.
soak_kept_up() {
    ge "$(soak_field handled_while_sending)" "$(awk -v n="$(soak_field sent)" 'BEGIN { print n * 0.99 }')"
}

# The events stream's consumer groups: "group: pending P, lag L; ...".
soak_groups() {
    redis-cli -u "$REDIS" XINFO GROUPS "${SOAK_PREFIX}events:work" 2>/dev/null | paste -d' ' - - |
        awk '$1 == "name" { if (g != "") print g; g = $2 ":" }
             $1 == "pending" || $1 == "lag" { g = g (g ~ /:$/ ? " " : ", ") $1 " " $2 }
             END { if (g != "") print g }' | paste -sd';' - | sed 's/;/; /g'
}

# Lines on what the api and the worker logged at WARN and above.
soak_log_lines() {
    local name file n
    for name in api worker; do
        file="$SOAK_DIR/$name.log"
        n=$(grep -c '"level":"\(WARN\|ERROR\)"' "$file" || true)
        printf -- '- %s: %s lines (%s MiB), %s at WARN or ERROR' "$name" "$(wc -l <"$file")" \
            "$(awk -v b="$(stat -c %s "$file")" 'BEGIN { printf "%.1f", b / 1048576 }')" "$n"
        if [ "$n" -gt 0 ]; then
            printf ', first: `%s`' "$(grep -m 1 '"level":"\(WARN\|ERROR\)"' "$file" | cut -c 1-300 | tr '`' "'")"
        fi
        printf '\n'
    done
}

bench_soak() {
    local n
    for n in "$SOAK_SECONDS" "$SOAK_RATE" "$SOAK_ORGS" "$SOAK_IN_FLIGHT" "$SOAK_DRAIN_SECONDS"; do
        [[ $n =~ ^[1-9][0-9]*$ ]] ||
            die "BENCH_SOAK_SECONDS, BENCH_SOAK_RATE, BENCH_SOAK_ORGS, BENCH_SOAK_IN_FLIGHT and BENCH_SOAK_DRAIN_SECONDS must be whole numbers ≥ 1"
    done
    [[ $SOAK_VACUUM_EVERY =~ ^[0-9]+$ ]] || die "BENCH_SOAK_VACUUM_EVERY must be a whole number of seconds"

    ensure_services
    command -v psql >/dev/null 2>&1 || apt_install postgresql-client

    log "building (release)"
    cargo build --release --bins
    cargo build --release -p xentri-e2e --example soak
    cargo build --release -p xentri-e2e --example benchkit

    # The api and worker read config/default.toml; an overlay would change what
    # is measured. XENTRI_* variables reach them and are named in the report.
    unset XENTRI_ENV
    local overrides
    overrides=$(env | sed -n 's/^\(XENTRI_[A-Z0-9_]*\)=.*/\1/p' | sort | paste -sd' ' -)
    [ -z "$overrides" ] || log "WARNING: $overrides set: the api and worker run with them"

    DB_NAME=$SOAK_DB
    DB_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME"
    # The api and the worker log in as the service login (they refuse a
    # superuser); migrations and the soak driver's checks use the owner.
    SERVICE_URL="postgres://xentri_service@127.0.0.1:5432/$DB_NAME"
    BENCH_DIR=$SOAK_DIR
    SOAK_PREFIX="soak-$(date +%s)-$$:"
    mkdir -p "$SOAK_DIR"
    local started load
    started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
    load=$(cut -d' ' -f1-3 /proc/loadavg)

    log "recreating database $DB_NAME"
    psql -h 127.0.0.1 -U postgres -d postgres -X -v ON_ERROR_STOP=1 -q \
        -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME"
    DATABASE_URL=$SERVICE_URL DATABASE_MIGRATE_URL=$DB_URL ./target/release/api migrate 2>"$SOAK_DIR/migrate.log" ||
        { cat "$SOAK_DIR/migrate.log" >&2; die "migrations failed"; }

    trap soak_cleanup EXIT
    trap 'exit 130' INT TERM

    local api_port worker_port
    api_port=$(free_port "$FIRST_PORT")
    worker_port=$(free_port "$SOAK_WORKER_PORT")
    # Default log level and format (telemetry.log_filter untouched): logging is
    # part of what is measured.
    log "starting the api on 127.0.0.1:$api_port and the worker (ops port $worker_port); logs in $SOAK_DIR/"
    DATABASE_URL=$SERVICE_URL DATABASE_MIGRATE_URL=$DB_URL REDIS_URL=$REDIS XENTRI_REDIS__KEY_PREFIX=$SOAK_PREFIX XENTRI_API__PORT=$api_port \
        XENTRI_DATABASE__MIGRATE_ON_START=false ./target/release/api 2>"$SOAK_DIR/api.log" >/dev/null &
    soak_api_pid=$!
    DATABASE_URL=$SERVICE_URL DATABASE_MIGRATE_URL=$DB_URL REDIS_URL=$REDIS XENTRI_REDIS__KEY_PREFIX=$SOAK_PREFIX XENTRI_WORKER__PORT=$worker_port \
        XENTRI_DATABASE__MIGRATE_ON_START=false ./target/release/worker 2>"$SOAK_DIR/worker.log" >/dev/null &
    soak_worker_pid=$!
    wait_ready api "$soak_api_pid" "http://127.0.0.1:$api_port/health/ready" "$SOAK_DIR/api.log"
    wait_ready worker "$soak_worker_pid" "http://127.0.0.1:$worker_port/health" "$SOAK_DIR/worker.log"

    local autovacuum vacuum_note
    autovacuum=$(psql_value "SHOW autovacuum")
    if [ "$autovacuum" != on ] && [ "$SOAK_VACUUM_EVERY" -gt 0 ]; then
        vacuum_note="autovacuum off on this server: the script ran \`VACUUM outbox\` every $SOAK_VACUUM_EVERY s in its stead"
        log "$vacuum_note"
        (while sleep "$SOAK_VACUUM_EVERY"; do psql_db -c "VACUUM outbox" 2>/dev/null || true; done) &
        soak_vacuum_pid=$!
    elif [ "$autovacuum" != on ]; then
        vacuum_note="autovacuum off on this server and outbox not vacuumed (BENCH_SOAK_VACUUM_EVERY=0): its dead rows pile up"
    else
        vacuum_note="autovacuum on"
    fi

    export BENCH_SAMPLER_DB=$DB_NAME BENCH_SAMPLER_OWN=soak,redis-server
    "$BENCHKIT" sample "$SOAK_DIR/soak.foreign" "$soak_api_pid" "$soak_worker_pid" &
    sampler_pid=$!

    log "soak: $SOAK_RATE events/s for $SOAK_SECONDS s over $SOAK_ORGS orgs, at most $SOAK_IN_FLIGHT in flight"
    local rc=0 limit=$((SOAK_SECONDS * 3 + SOAK_DRAIN_SECONDS + 300))
    DATABASE_URL=$DB_URL timeout --kill-after=10 "$limit" ./target/release/examples/soak \
        --url "http://127.0.0.1:$api_port" --api-pid "$soak_api_pid" --worker-pid "$soak_worker_pid" \
        --rate "$SOAK_RATE" --seconds "$SOAK_SECONDS" --orgs "$SOAK_ORGS" --in-flight "$SOAK_IN_FLIGHT" \
        --drain-seconds "$SOAK_DRAIN_SECONDS" --rss-out "$SOAK_DIR/rss.tsv" \
        --api-metrics "http://127.0.0.1:$api_port/api/v1/metrics" --worker-metrics "http://127.0.0.1:$worker_port/metrics" \
        >"$SOAK_DIR/soak.json" 2>"$SOAK_DIR/soak.log" || rc=$?
    stop_sampler soak
    if [ -n "$soak_vacuum_pid" ]; then
        kill -TERM "$soak_vacuum_pid" 2>/dev/null || true
        wait "$soak_vacuum_pid" 2>/dev/null || true
        soak_vacuum_pid=
    fi
    R[outbox_dead]=$(outbox_dead)
    # Where unhandled events would be: queued (outbox, stream) or gone.
    R[groups]=$(soak_groups)
    R[stream_length]=$(redis-cli -u "$REDIS" XLEN "${SOAK_PREFIX}events:work" 2>/dev/null || echo '?')

    log "stopping the api and the worker (SIGTERM)"
    stop_process "$soak_api_pid" api
    soak_api_pid=
    stop_process "$soak_worker_pid" worker
    soak_worker_pid=
    redis-cli -u "$REDIS" --scan --pattern "$SOAK_PREFIX*" | xargs -r -n 100 redis-cli -u "$REDIS" UNLINK >/dev/null
    R[redis_left]=$(redis-cli -u "$REDIS" --scan --pattern "$SOAK_PREFIX*" | wc -l)

    R[soak_json]=$(grep '^{' "$SOAK_DIR/soak.json" | tail -n 1 || true)
    if [ "$rc" -ne 0 ] || [ -z "${R[soak_json]}" ]; then
        tail -n 20 "$SOAK_DIR/soak.log" >&2
        die "the load generator failed (status $rc), see $SOAK_DIR/soak.log; nothing appended"
    fi

    local machine commit pg_version redis_version apilog
    machine="$(uname -srm), $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git status --porcelain -- . ':(exclude)BENCHMARKS.md' 2>/dev/null)" ]; then
        commit="$commit+dirty"
    fi
    pg_version=$(psql_value "SHOW server_version" | cut -d' ' -f1)
    redis_version=$(redis-cli -u "$REDIS" INFO server | sed -n 's/^redis_version:\([0-9.]*\).*/\1/p')
    apilog=$("$BENCHKIT" apilog "$SOAK_DIR/api.log" 0 "$(stat -c %s "$SOAK_DIR/api.log")" |
        grep -v '^  e\.g\. ' | sed 's/^/- api: /')

    local table rate_note=
    soak_table >"$SOAK_DIR/table.md"
    table=$(cat "$SOAK_DIR/table.md")
    if ! soak_rate_met; then
        rate_note="
**The asked rate was not sustained**: $(num "$(soak_field achieved_rate)") events/s on average, $(soak_field unsent) of $(soak_field scheduled) requests not sent when the $SOAK_SECONDS s were up, $(soak_field late) of the $(soak_field sent) sent more than $(soak_field late_after_ms) ms behind schedule ($(soak_field waited_for_slot) waited for one of the $SOAK_IN_FLIGHT in-flight slots; largest lag $(num "$(soak_field max_lag_ms)" 0) ms). The figures above are for the rate achieved."
    fi
    local notes=()
    [ "$(soak_field non_201)" = 0 ] || notes+=("- **answers other than 201: $(soak_field statuses)**")
    [ "$(soak_field errors)" = 0 ] || notes+=("- **$(soak_field errors) requests unanswered; first: $(soak_field first_error)**")
    [ "$(soak_field lost)" = 0 ] ||
        notes+=("- **$(soak_field lost) events answered 201 had no event_counts record after $(num "$(soak_field drain_waited_seconds)" 0) s of draining**; then: $(soak_field outbox_left) rows in outbox; stream events:work ${R[stream_length]} entries long, consumer groups ${R[groups]:-?} (lag: entries not yet delivered to the group; pending: delivered, not acknowledged). The latency figures cover the events handled by then only")
    [ "$(soak_field stored)" = "$(soak_field created)" ] ||
        notes+=("- $(soak_field stored) events stored, $(soak_field created) answered 201 (a request that timed out may still have committed); $(soak_field stored_unhandled) stored events without an event_counts record")
    [ "${R[redis_left]}" = 0 ] || notes+=("- ${R[redis_left]} keys under $SOAK_PREFIX left in Redis after the clean-up")

    local section
    section=$(
        cat <<SECTION
## $started — $commit — worker soak

- machine: $machine; load average at start $load
- Redis $redis_version ($REDIS); PostgreSQL $pg_version ($vacuum_note), database $DB_NAME created and migrated for the run; ${R[outbox_dead]} dead rows in outbox at the end
- processes: target/release/api and target/release/worker, config/default.toml (default log level, logs in $SOAK_DIR/)${overrides:+, environment overrides: $overrides}; load generator tests/examples/soak.rs (release)
- load: open loop, $SOAK_RATE events/s for $SOAK_SECONDS s, ~500-byte events, one Idempotency-Key each, $SOAK_ORGS orgs in rotation, at most $SOAK_IN_FLIGHT requests in flight
- latency: send (time in the payload) → \`processed_at\` of the event's \`event_counts\` record (the handler's transaction start; commit follows); RSS (VmRSS) every $(soak_field rss_every_seconds) s, warm-up $(num "$(soak_field warmup_seconds)" 0) s

$table
$rate_note

Latency per minute of sending (p50/p95/p99 ms, events sent in that minute and handled): $(soak_minutes). Events handled per minute (by \`processed_at\`): $(soak_handled_minutes). Over the whole run: p50 $(num "$(soak_field overall.p50_ms)" 1), p95 $(num "$(soak_field overall.p95_ms)" 1), p99 $(num "$(soak_field overall.p99_ms)" 1), max $(num "$(soak_field overall.max_ms)" 0) ms.

$(foreign_summary soak)

CPU during the run, in CPUs of $(nproc) (sampled every 0.5 s): $(printf '%s' "${R[soak_own]:-?}" | awk -v wall="${R[soak_wall]:-0}" 'BEGIN { RS = "," } match($0, /:[0-9.]+s$/) && wall > 0 { printf "%s%s %.2f", (n++ ? ", " : ""), substr($0, 1, RSTART - 1), substr($0, RSTART + 1, RLENGTH - 2) / wall }'); machine idle ${R[soak_idle]:-?} %.

What the processes logged:

$apilog
$(soak_log_lines)
${notes[*]:+
Notes:

$(printf '%s\n' "${notes[@]}")
}
Raw line (per-minute lists omitted; RSS samples in $SOAK_DIR/rss.tsv):

\`\`\`
$("$BENCHKIT" soak-raw "${R[soak_json]}")
\`\`\`
SECTION
    )

    [ -f BENCHMARKS.md ] || benchmarks_header >BENCHMARKS.md
    printf '\n%s\n' "$section" >>BENCHMARKS.md
    printf '\n%s\n\n(appended to BENCHMARKS.md; logs, RSS samples and the generator output in %s/)\n' \
        "$section" "$SOAK_DIR"

    local verdict failed=()
    for verdict in api worker latency lost shutdown; do
        [ "${R[${verdict}_verdict]}" = PASS ] || failed+=("$verdict")
    done
    [ ${#failed[@]} -eq 0 ] || die "soak FAILED: ${failed[*]}"
    log "soak PASSED"
}
