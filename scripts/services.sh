# Sourced by scripts/run and scripts/test: makes sure PostgreSQL and Redis answer
# on 127.0.0.1, installing (apt) and starting them where they do not.
# Idempotent: services already answering are used as they are.

PGHOST_ADDR=${PGHOST_ADDR:-127.0.0.1}
PGPORT=${PGPORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    log "installing $* with apt"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

postgres_answers() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$PGHOST_ADDR" -p "$PGPORT"
}

redis_answers() {
    command -v redis-cli >/dev/null 2>&1 && [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

wait_for() {
    local what=$1 check=$2
    for _ in $(seq 1 100); do
        if $check; then return 0; fi
        sleep 0.2
    done
    log "$what did not come up on 127.0.0.1"
    return 1
}

ensure_postgres() {
    if postgres_answers; then return 0; fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        apt_install postgresql postgresql-client
        local fresh=1
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if [ "${fresh:-0}" = 1 ]; then
        # A cluster this script installed: local development trusts loopback,
        # matching the URLs in config/default.toml.
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for PostgreSQL postgres_answers
}

ensure_redis() {
    if redis_answers; then return 0; fi
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server redis-tools
    fi
    log "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/xentri.log
    wait_for Redis redis_answers
}

# The allocator (jemalloc) and ring are C code built with the crates: they
# need a C compiler and make.
ensure_build_tools() {
    if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
        apt_install build-essential
    fi
}

ensure_services() {
    ensure_build_tools
    ensure_postgres
    ensure_redis
}
