#!/usr/bin/env bash
# Test harness for libprovledger: starts private database servers
# (PostgreSQL 15 primary + streaming replica, PgBouncer, Redis) in a fresh
# temporary directory, runs a command against them and tears everything down.
#
# Usage:
#   tests/servers.sh deps
#       Install the Debian packages the build, the tests and the benchmark
#       need (apt-get, only when something is missing).
#   tests/servers.sh run [--bench] [--no-replica] -- CMD [ARGS...]
#       Start the servers, export PL_TEST_* / PG* variables, run CMD, stop
#       the servers, remove the temp dir, exit with CMD's exit code.
#       PL_TEST_KEEP=1 keeps the temp dir (logs) after the run.
#   tests/servers.sh ctl ACTION [ARG]
#       Control the servers of the enclosing `run` (found via PL_TEST_DIR):
#       pg-stop pg-start pg-restart replica-stop replica-start replica-restart
#       pgbouncer-stop pgbouncer-start pgbouncer-restart
#       redis-stop redis-start redis-restart redis-pause SECONDS
#       redis-sigstop redis-sigcont
set -euo pipefail

readonly PG_BIN=/usr/lib/postgresql/15/bin
readonly SVC_USER=provledger
readonly DB_NAME=provledger_test
readonly ADMIN_ROLE=provledger_admin
readonly APP_ROLE=provledger_app
readonly BOOT_ROLE=postgres
readonly READY_TIMEOUT=30

SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
readonly SELF

# Globals describing one set of servers (filled by `run` or loaded by `ctl`).
TEST_DIR=""
RUN_AS=""          # unprivileged user to run servers as ("" = current user)
PG_PORT="" REPLICA_PORT="" BOUNCER_PORT="" REDIS_PORT=""
WITH_REPLICA=0
BENCH=0
RESERVED_PORTS=()
CHILD_PID=""
CLEANED=0

log() { printf 'servers.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$SELF" >&2
    exit 2
}

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# Run a command as the service user (or directly when not root), from a
# directory that user can enter.
as_user() {
    if [[ -n $RUN_AS ]]; then
        (cd "${TEST_DIR:-/}" && runuser -u "$RUN_AS" -- "$@")
    else
        (cd "${TEST_DIR:-/}" && "$@")
    fi
}

# True when PID names a live (non-zombie) process.
pid_alive() {
    local pid=$1 stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # field 3 (after the parenthesised comm) is the state
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Wait until PID has exited; SIGKILL it after TIMEOUT seconds.
wait_gone() {
    local pid=$1 timeout=${2:-15} i
    for ((i = 0; i < timeout * 10; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    log "pid $pid did not exit in ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    return 1
}

# Read a pid file written by one of our wrappers; only accept processes
# owned by the service user (the file lives in a directory that user owns).
read_pid() {
    local file=$1 pid uid want
    [[ -r $file ]] || return 1
    read -r pid <"$file" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    uid=$(stat -c %u "/proc/$pid" 2>/dev/null) || return 1
    if [[ -n $RUN_AS ]]; then want=$(id -u "$RUN_AS"); else want=$(id -u); fi
    [[ $uid == "$want" ]] || return 1
    printf '%s\n' "$pid"
}

# Start a long-running server detached (own session, no controlling
# terminal, reparented away from us) and record its real pid.
#   spawn PIDFILE LOGFILE CMD [ARGS...]
spawn() {
    local pidfile=$1 logfile=$2 i
    shift 2
    rm -f -- "$pidfile"
    # shellcheck disable=SC2016  # expanded by the inner shell
    as_user setsid -f bash -c '
        ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        echo "$$" >"$1.tmp" && mv -f "$1.tmp" "$1"
        shift
        exec "$@"' spawn "$pidfile" "$@" </dev/null >>"$logfile" 2>&1
    for ((i = 0; i < 100; i++)); do
        [[ -s $pidfile ]] && return 0
        sleep 0.05
    done
    return 1
}

# Stop a server started by spawn (SIGTERM, SIGCONT in case it is stopped).
stop_pidfile() {
    local pidfile=$1 pid
    if pid=$(read_pid "$pidfile"); then
        kill -TERM "$pid" 2>/dev/null || true
        kill -CONT "$pid" 2>/dev/null || true
        wait_gone "$pid" 15 || true
    fi
    rm -f -- "$pidfile"
}

tail_log() {
    local f=$1
    [[ -f $f ]] || return 0
    printf '\n===== last lines of %s =====\n' "$f" >&2
    tail -n 40 -- "$f" >&2 || true
}

start_failed() {
    log "error: $*"
    local f
    for f in "$TEST_DIR"/log/*.log; do
        tail_log "$f"
    done
    exit 1
}

# ---------------------------------------------------------------------------
# ports: tests/ports.sh (port_in_use, reserve_port, release_ports, pick_port)
# ---------------------------------------------------------------------------

# shellcheck source=tests/ports.sh
source "$(dirname -- "$SELF")/ports.sh"

# ---------------------------------------------------------------------------
# state shared between `run` and `ctl`
# ---------------------------------------------------------------------------

write_state() {
    local f=$TEST_DIR/state.env
    {
        printf 'RUN_AS=%s\n' "$RUN_AS"
        printf 'PG_PORT=%s\n' "$PG_PORT"
        printf 'REPLICA_PORT=%s\n' "$REPLICA_PORT"
        printf 'BOUNCER_PORT=%s\n' "$BOUNCER_PORT"
        printf 'REDIS_PORT=%s\n' "$REDIS_PORT"
        printf 'WITH_REPLICA=%s\n' "$WITH_REPLICA"
    } >"$f.tmp"
    chmod 644 "$f.tmp"
    mv -f "$f.tmp" "$f"
}

# Parse (never source) the state file.
load_state() {
    [[ -n ${PL_TEST_DIR:-} ]] || die "PL_TEST_DIR is not set (ctl must run inside 'servers.sh run')"
    TEST_DIR=$PL_TEST_DIR
    local f=$TEST_DIR/state.env k v
    [[ -r $f ]] || die "no server state in $TEST_DIR"
    while IFS='=' read -r k v; do
        case $k in
        RUN_AS) [[ -z $v || $v == "$SVC_USER" ]] && RUN_AS=$v ;;
        PG_PORT | REPLICA_PORT | BOUNCER_PORT | REDIS_PORT)
            [[ -z $v || $v =~ ^[0-9]+$ ]] && printf -v "$k" '%s' "$v" ;;
        WITH_REPLICA) [[ $v == 1 ]] && WITH_REPLICA=1 ;;
        esac
    done <"$f"
    [[ -n $PG_PORT && -n $REDIS_PORT ]] || die "corrupt state file $f"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

pg_conn() { # pg_conn SOCKETDIR PORT [USER] [DB]
    printf 'host=%s port=%s dbname=%s user=%s connect_timeout=5' \
        "$1" "$2" "${4:-$DB_NAME}" "${3:-$ADMIN_ROLE}"
}

psql_q() { # psql_q CONNINFO SQL... (each SQL runs in its own transaction)
    local conn=$1 sql
    local -a args=()
    shift
    for sql in "$@"; do args+=(-c "$sql"); done
    "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$conn" "${args[@]}"
}

wait_pg() { # wait_pg SOCKETDIR PORT NAME
    local i
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        if "$PG_BIN/pg_isready" -q -h "$1" -p "$2" -U "$BOOT_ROLE" -d postgres -t 2 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    log "$3 did not accept connections within ${READY_TIMEOUT}s"
    return 1
}

pg_running() { # pg_running DATADIR
    as_user "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

pg_start() { # pg_start DATADIR LOG SOCKETDIR PORT NAME
    if ! pg_running "$1"; then
        as_user "$PG_BIN/pg_ctl" -D "$1" -l "$2" -w -t "$READY_TIMEOUT" start >/dev/null ||
            { log "$5 failed to start"; return 1; }
    fi
    wait_pg "$3" "$4" "$5"
}

pg_stop() { # pg_stop DATADIR
    [[ -d $1 ]] || return 0
    pg_running "$1" || return 0
    as_user "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 ||
        as_user "$PG_BIN/pg_ctl" -D "$1" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
        { log "could not stop PostgreSQL in $1"; return 1; }
}

pg_restart() { # pg_restart DATADIR LOG SOCKETDIR PORT NAME
    if pg_running "$1"; then
        as_user "$PG_BIN/pg_ctl" -D "$1" -l "$2" -m fast -w -t 60 restart >/dev/null ||
            { log "$5 failed to restart"; return 1; }
    fi
    pg_start "$@"
}

primary_start() { pg_start "$TEST_DIR/primary" "$TEST_DIR/log/postgresql.log" "$TEST_DIR" "$PG_PORT" "PostgreSQL primary"; }
primary_restart() { pg_restart "$TEST_DIR/primary" "$TEST_DIR/log/postgresql.log" "$TEST_DIR" "$PG_PORT" "PostgreSQL primary"; }
replica_start() { pg_start "$TEST_DIR/replica/data" "$TEST_DIR/log/replica.log" "$TEST_DIR/replica" "$REPLICA_PORT" "PostgreSQL replica"; }
replica_restart() { pg_restart "$TEST_DIR/replica/data" "$TEST_DIR/log/replica.log" "$TEST_DIR/replica" "$REPLICA_PORT" "PostgreSQL replica"; }

setup_primary() {
    local data=$TEST_DIR/primary locale_opt=(--no-locale)
    if locale -a 2>/dev/null | grep -qix 'c\.utf-\{0,1\}8'; then
        locale_opt=(--locale=C.UTF-8)
    fi
    as_user "$PG_BIN/initdb" -D "$data" -U "$BOOT_ROLE" -A trust -E UTF8 \
        "${locale_opt[@]}" --no-sync >"$TEST_DIR/log/initdb.log" 2>&1 ||
        start_failed "initdb failed"

    {
        echo "# --- provledger test harness ---"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $PG_PORT"
        echo "unix_socket_directories = '$TEST_DIR'"
        echo "shared_preload_libraries = 'pg_cron,pg_stat_statements'"
        echo "cron.database_name = '$DB_NAME'"
        echo "cron.host = '$TEST_DIR'"
        echo "max_connections = 300"
        echo "wal_level = replica"
        echo "max_wal_senders = 5"
        echo "max_replication_slots = 5"
        echo "hot_standby = on"
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        echo "log_min_messages = warning"
        if ((BENCH)); then
            echo "fsync = on"
            echo "synchronous_commit = on"
            echo "full_page_writes = on"
            echo "shared_buffers = 2GB"
            echo "effective_cache_size = 8GB"
            echo "work_mem = 32MB"
            echo "maintenance_work_mem = 512MB"
            echo "max_wal_size = 8GB"
            echo "checkpoint_timeout = 30min"
        else
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } >>"$data/postgresql.conf"

    primary_start || start_failed "PostgreSQL primary did not start"

    local boot
    boot=$(pg_conn "$TEST_DIR" "$PG_PORT" "$BOOT_ROLE" postgres)
    psql_q "$boot" "CREATE ROLE $ADMIN_ROLE LOGIN SUPERUSER REPLICATION" \
        "CREATE ROLE $APP_ROLE LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" \
        "CREATE DATABASE $DB_NAME OWNER $ADMIN_ROLE" \
        >>"$TEST_DIR/log/setup.log" 2>&1 || start_failed "creating roles/database failed"
    psql_q "$(pg_conn "$TEST_DIR" "$PG_PORT")" \
        "CREATE EXTENSION IF NOT EXISTS pg_cron" \
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
        >>"$TEST_DIR/log/setup.log" 2>&1 || start_failed "creating extensions failed"
}

setup_replica() {
    local rdir=$TEST_DIR/replica
    as_user mkdir -p "$rdir"
    chmod 755 "$rdir"
    as_user "$PG_BIN/pg_basebackup" -D "$rdir/data" \
        -d "host=$TEST_DIR port=$PG_PORT user=$BOOT_ROLE" \
        -R -X stream -C -S provledger_replica -c fast -N \
        >>"$TEST_DIR/log/basebackup.log" 2>&1 || start_failed "pg_basebackup failed"
    {
        echo "# --- replica overrides ---"
        echo "port = $REPLICA_PORT"
        echo "unix_socket_directories = '$rdir'"
        echo "cron.host = '$rdir'"
        echo "hot_standby = on"
        echo "fsync = off"
        if ((BENCH)); then
            echo "shared_buffers = 256MB"
            echo "effective_cache_size = 1GB"
        fi
    } >>"$rdir/data/postgresql.conf"

    replica_start || start_failed "PostgreSQL replica did not start"

    # wait until it actually streams from the primary
    local i n=0 conn
    conn=$(pg_conn "$TEST_DIR" "$PG_PORT")
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        n=$(psql_q "$conn" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || echo 0)
        [[ $n -ge 1 ]] && return 0
        sleep 0.1
    done
    start_failed "replica did not start streaming within ${READY_TIMEOUT}s"
}

# ---------------------------------------------------------------------------
# PgBouncer
# ---------------------------------------------------------------------------

write_bouncer_conf() {
    as_user mkdir -p "$TEST_DIR/pgbouncer"
    chmod 755 "$TEST_DIR/pgbouncer"
    # auth_type=trust still requires the user names to be in auth_file
    printf '"%s" ""\n' "$ADMIN_ROLE" "$APP_ROLE" "$BOOT_ROLE" >"$TEST_DIR/pgbouncer-users.txt"
    cat >"$TEST_DIR/pgbouncer.ini" <<EOF
[databases]
$DB_NAME = host=$TEST_DIR port=$PG_PORT dbname=$DB_NAME

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $TEST_DIR/pgbouncer
auth_type = trust
auth_file = $TEST_DIR/pgbouncer-users.txt
admin_users = $ADMIN_ROLE
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options,search_path
server_login_retry = 1
EOF
    chmod 644 "$TEST_DIR/pgbouncer.ini" "$TEST_DIR/pgbouncer-users.txt"
}

bouncer_start() {
    local pid i
    if ! pid=$(read_pid "$TEST_DIR/run/pgbouncer.pid"); then
        spawn "$TEST_DIR/run/pgbouncer.pid" "$TEST_DIR/log/pgbouncer.log" \
            /usr/sbin/pgbouncer "$TEST_DIR/pgbouncer.ini" ||
            { log "pgbouncer did not start"; return 1; }
        pid=$(read_pid "$TEST_DIR/run/pgbouncer.pid") || { log "pgbouncer exited"; return 1; }
    fi
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        if psql_q "host=127.0.0.1 port=$BOUNCER_PORT dbname=$DB_NAME user=$ADMIN_ROLE connect_timeout=2" \
            "SELECT 1" >/dev/null 2>&1; then
            return 0
        fi
        pid_alive "$pid" || { log "pgbouncer exited"; return 1; }
        sleep 0.1
    done
    log "pgbouncer not ready within ${READY_TIMEOUT}s"
    return 1
}

bouncer_stop() { stop_pidfile "$TEST_DIR/run/pgbouncer.pid"; }

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

write_redis_conf() {
    cat >"$TEST_DIR/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
unixsocket $TEST_DIR/redis.sock
unixsocketperm 777
protected-mode no
daemonize no
supervised no
logfile ""
loglevel notice
dir $TEST_DIR
save ""
appendonly no
maxmemory 256mb
maxmemory-policy allkeys-lru
EOF
    chmod 644 "$TEST_DIR/redis.conf"
}

redis_ping() {
    [[ $(redis-cli -s "$TEST_DIR/redis.sock" ping 2>/dev/null) == PONG ]]
}

redis_start() {
    local pid i
    if ! pid=$(read_pid "$TEST_DIR/run/redis.pid"); then
        spawn "$TEST_DIR/run/redis.pid" "$TEST_DIR/log/redis.log" \
            /usr/bin/redis-server "$TEST_DIR/redis.conf" ||
            { log "redis-server did not start"; return 1; }
        pid=$(read_pid "$TEST_DIR/run/redis.pid") || { log "redis-server exited"; return 1; }
    fi
    for ((i = 0; i < READY_TIMEOUT * 20; i++)); do
        redis_ping && return 0
        pid_alive "$pid" || { log "redis-server exited"; return 1; }
        sleep 0.05
    done
    log "redis-server not ready within ${READY_TIMEOUT}s"
    return 1
}

redis_stop() { stop_pidfile "$TEST_DIR/run/redis.pid"; }

redis_signal() { # redis_signal SIG
    local pid
    pid=$(read_pid "$TEST_DIR/run/redis.pid") || die "redis-server is not running"
    kill "-$1" "$pid"
}

# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------

ensure_user() {
    id -u "$SVC_USER" >/dev/null 2>&1 && return 0
    useradd --system --no-create-home --shell /usr/sbin/nologin "$SVC_USER" 2>/dev/null ||
        id -u "$SVC_USER" >/dev/null 2>&1 || # lost a race with a concurrent run
        die "could not create user $SVC_USER"
}

make_test_dir() {
    local base=${TMPDIR:-/tmp}
    TEST_DIR=$(mktemp -d "$base/provledger.XXXXXXXX")
    TEST_DIR=$(readlink -f -- "$TEST_DIR")
    chmod 755 "$TEST_DIR"
    # unix socket paths are limited to 107 bytes; the service user must be
    # able to reach the directory
    if ((${#TEST_DIR} > 80)) ||
        { [[ -n $RUN_AS ]] && ! runuser -u "$RUN_AS" -- test -x "$TEST_DIR" 2>/dev/null; }; then
        log "warning: $base is unusable for the servers, using /tmp"
        rmdir -- "$TEST_DIR"
        TEST_DIR=$(mktemp -d /tmp/provledger.XXXXXXXX)
        chmod 755 "$TEST_DIR"
    fi
    mkdir -p "$TEST_DIR/log" "$TEST_DIR/run"
    if [[ -n $RUN_AS ]]; then
        chown "$RUN_AS:" "$TEST_DIR" "$TEST_DIR/log" "$TEST_DIR/run"
    fi
}

cleanup() {
    local rc=$?
    ((CLEANED)) && return 0
    CLEANED=1
    trap '' INT TERM
    set +e
    if [[ -n $CHILD_PID ]] && pid_alive "$CHILD_PID"; then
        kill -TERM "$CHILD_PID" 2>/dev/null
        wait_gone "$CHILD_PID" 10
    fi
    if [[ -n $TEST_DIR && -d $TEST_DIR ]]; then
        bouncer_stop
        redis_stop
        pg_stop "$TEST_DIR/replica/data"
        pg_stop "$TEST_DIR/primary"
        if [[ ${PL_TEST_KEEP:-0} == 1 ]]; then
            log "kept $TEST_DIR"
        else
            rm -rf -- "$TEST_DIR"
        fi
    fi
    release_ports
    return "$rc"
}

on_signal() { # on_signal NAME NUMBER
    trap '' INT TERM
    if [[ -n $CHILD_PID ]] && pid_alive "$CHILD_PID"; then
        if [[ $1 == INT ]]; then
            # a terminal ^C reached the command too: give it time to finish
            local i
            for ((i = 0; i < 50; i++)); do
                pid_alive "$CHILD_PID" || break
                sleep 0.1
            done
        fi
        kill "-$1" "$CHILD_PID" 2>/dev/null || true
    fi
    exit $((128 + $2))
}

cmd_run() {
    local -a cmd=()
    while (($#)); do
        case $1 in
        --bench) BENCH=1; shift ;;
        --no-replica) WITH_REPLICA=-1; shift ;;
        --) shift; cmd=("$@"); break ;;
        -*) die "unknown run option: $1" ;;
        *) cmd=("$@"); break ;;
        esac
    done
    ((${#cmd[@]})) || usage
    if ((WITH_REPLICA == -1)); then WITH_REPLICA=0; else WITH_REPLICA=1; fi

    [[ -x $PG_BIN/postgres ]] || die "$PG_BIN/postgres missing (run: $0 deps)"
    command -v redis-server >/dev/null || die "redis-server missing (run: $0 deps)"
    command -v pgbouncer >/dev/null || die "pgbouncer missing (run: $0 deps)"

    # no leaking of an outer environment into our own connections
    local v
    for v in $(compgen -e); do
        [[ $v == PG* ]] && unset "$v"
    done

    if ((EUID == 0)); then
        ensure_user
        RUN_AS=$SVC_USER
    fi

    trap cleanup EXIT
    trap 'on_signal INT 2' INT
    trap 'on_signal TERM 15' TERM
    trap 'on_signal HUP 1' HUP

    make_test_dir
    pick_port PG_PORT
    pick_port BOUNCER_PORT
    pick_port REDIS_PORT
    if ((WITH_REPLICA)); then pick_port REPLICA_PORT; fi
    write_state

    local t0=$SECONDS
    write_redis_conf
    redis_start || start_failed "redis-server did not start"
    setup_primary
    if ((WITH_REPLICA)); then setup_replica; fi
    write_bouncer_conf
    bouncer_start || start_failed "pgbouncer did not start"
    log "servers up in $((SECONDS - t0))s in $TEST_DIR (pg $PG_PORT${REPLICA_PORT:+, replica $REPLICA_PORT}, pgbouncer $BOUNCER_PORT, redis $REDIS_PORT)"

    export PL_TEST_DIR=$TEST_DIR
    export PL_TEST_PG="host=$TEST_DIR port=$PG_PORT dbname=$DB_NAME user=$ADMIN_ROLE"
    export PL_TEST_PG_APP="host=$TEST_DIR port=$PG_PORT dbname=$DB_NAME user=$APP_ROLE"
    export PL_TEST_PG_TCP="host=127.0.0.1 port=$PG_PORT dbname=$DB_NAME user=$ADMIN_ROLE"
    if ((WITH_REPLICA)); then
        export PL_TEST_REPLICA="host=$TEST_DIR/replica port=$REPLICA_PORT dbname=$DB_NAME user=$ADMIN_ROLE"
        export PL_TEST_REPLICA_PORT=$REPLICA_PORT
    else
        export PL_TEST_REPLICA=""
        unset PL_TEST_REPLICA_PORT
    fi
    export PL_TEST_PGBOUNCER="host=127.0.0.1 port=$BOUNCER_PORT dbname=$DB_NAME user=$ADMIN_ROLE"
    export PL_TEST_PGBOUNCER_PORT=$BOUNCER_PORT
    export PL_TEST_REDIS="redis://127.0.0.1:$REDIS_PORT/0"
    export PL_TEST_REDIS_UNIX="unix://$TEST_DIR/redis.sock"
    export PL_TEST_REDIS_PORT=$REDIS_PORT
    export PL_TEST_PG_PORT=$PG_PORT
    export PL_TEST_PG_BIN=$PG_BIN
    export PL_TEST_CTL=$SELF
    export PGHOST=$TEST_DIR PGPORT=$PG_PORT PGDATABASE=$DB_NAME PGUSER=$ADMIN_ROLE

    # Run the command in the background (keeping stdin and default SIGINT
    # handling) so that a signal sent to this script is handled at once.
    local rc=0
    (
        trap - INT QUIT
        exec "${cmd[@]}"
    ) <&0 &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    exit "$rc"
}

# ---------------------------------------------------------------------------
# ctl
# ---------------------------------------------------------------------------

cmd_ctl() {
    (($#)) || usage
    load_state
    local action=$1
    shift
    case $action in
    pg-stop) pg_stop "$TEST_DIR/primary" ;;
    pg-start) primary_start ;;
    pg-restart) primary_restart ;;
    replica-stop | replica-start | replica-restart)
        ((WITH_REPLICA)) || die "this run has no replica"
        case $action in
        replica-stop) pg_stop "$TEST_DIR/replica/data" ;;
        replica-start) replica_start ;;
        replica-restart) replica_restart ;;
        esac
        ;;
    pgbouncer-stop) bouncer_stop ;;
    pgbouncer-start) bouncer_start ;;
    pgbouncer-restart) bouncer_stop && bouncer_start ;;
    redis-stop) redis_stop ;;
    redis-start) redis_start ;;
    redis-restart) redis_stop && redis_start ;;
    redis-sigstop) redis_signal STOP ;;
    redis-sigcont) redis_signal CONT ;;
    redis-pause)
        local secs=${1:-}
        [[ $secs =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "usage: ctl redis-pause SECONDS"
        redis_signal STOP
        sleep "$secs" || true
        redis_signal CONT
        ;;
    *) die "unknown ctl action: $action" ;;
    esac
}

# ---------------------------------------------------------------------------
# deps
# ---------------------------------------------------------------------------

pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# Stop servers that package scripts may have started with Debian's default
# configuration (never ours: those live in temp dirs).
stop_default_servers() {
    local f pid dir cmdline comm
    local -a pids=()
    for f in /var/lib/postgresql/*/main/postmaster.pid; do
        [[ -f $f ]] || continue
        read -r pid <"$f" || continue
        if pid_alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == postgres ]]; then
            log "stopping PostgreSQL started by the package (${f%/postmaster.pid})"
            kill -INT "$pid" 2>/dev/null && pids+=("$pid")
        fi
    done
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        comm=$(cat "$dir/comm" 2>/dev/null) || continue
        case $comm in
        redis-server)
            if [[ $(readlink "$dir/cwd" 2>/dev/null) == /var/lib/redis ]]; then
                log "stopping redis-server started by the package (pid $pid)"
                kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
            fi
            ;;
        pgbouncer)
            cmdline=$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null) || continue
            if [[ $cmdline == */etc/pgbouncer/pgbouncer.ini* ]]; then
                log "stopping pgbouncer started by the package (pid $pid)"
                kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
            fi
            ;;
        esac
    done
    for pid in "${pids[@]}"; do
        wait_gone "$pid" 30 || true
    done
}

cmd_deps() {
    local -a want=(postgresql-15 postgresql-15-cron postgresql-15-auto-failover pgbouncer redis-server
        redis-tools meson ninja-build pkg-config gcc g++ libpq-dev
        libhiredis-dev libjansson-dev libssl-dev check valgrind gnuplot-nox jq
        libmicrohttpd-dev curl
        golang-go golang-golang-x-mod-dev clang libclang-rt-dev
        gcovr clang-tidy cppcheck)
    local -a missing=()
    local p
    for p in "${want[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    # contrib (pg_stat_statements) ships inside postgresql-15 on Debian 12
    if ! pkg_installed postgresql-contrib && ! pkg_installed postgresql-contrib-15 &&
        [[ ! -f /usr/share/postgresql/15/extension/pg_stat_statements.control ]]; then
        missing+=(postgresql-contrib)
    fi
    if ((${#missing[@]} == 0)); then
        log "all packages installed"
        return 0
    fi
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        sudo=(sudo)
    fi
    log "installing: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    if ((EUID == 0)); then
        stop_default_servers
    fi
}

# ---------------------------------------------------------------------------

main() {
    (($#)) || usage
    local sub=$1
    shift
    case $sub in
    deps) cmd_deps "$@" ;;
    run) cmd_run "$@" ;;
    ctl) cmd_ctl "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
    esac
}

main "$@"
