#!/usr/bin/env bash
# Failover harness for libprovledger: a pg_auto_failover 2.0 formation
# (one monitor, two PostgreSQL 15 data nodes) on loopback, on ports of its
# own, in a fresh temporary directory, run as the unprivileged user
# "provledger" when started as root (pg_autoctl refuses root). The cache's
# Redis comes from the enclosing `tests/servers.sh run` (PL_TEST_REDIS).
#
# Usage:
#   tests/failover.sh run -- CMD [ARGS...]
#       Start the formation, wait until one node is primary and the other
#       secondary, export PL_FO_* (PL_FO_CONNINFO is the multi-host
#       conninfo), run CMD, stop everything (also on failure), exit with
#       CMD's exit code. Outside `servers.sh run` (no PL_TEST_REDIS) or
#       without pg_autoctl it exits 77 (skip), unless PL_FAILOVER_REQUIRED=1.
#       PL_TEST_KEEP=1 keeps the temp dir (logs).
#   tests/failover.sh ctl ACTION [ARG]     (inside `run`, via PL_FO_DIR)
#       state               pg_autoctl show state
#       primary             name of the node that is primary now
#       primary-conninfo    conninfo of that node alone
#       standby-conninfo    conninfo of the other node alone
#       wait-healthy        wait until primary + secondary
#   (PL_FO_REPLICA_CONNINFO names both nodes, target_session_attrs=prefer-standby)
#       perform-failover    pg_autoctl perform failover (waits for it)
#       kill-primary        SIGKILL the primary node: its pg_autoctl
#                           processes and its postmaster (the monitor then
#                           fails over on its own)
#       kill-postmaster     SIGKILL only the primary's postmaster
#       restart-node NAME   start `pg_autoctl run` of NAME again
#       sync-off | sync-on  replication-quorum of both nodes false/true:
#                           synchronous_standby_names '' or ANY 1 (...)
#       walsender-stop | walsender-cont
#                           SIGSTOP/SIGCONT the primary's walsender(s):
#                           commits from then on do not reach the standby
set -euo pipefail

readonly PG_BIN=/usr/lib/postgresql/15/bin
readonly SVC_USER=provledger
readonly DB_NAME=provledger_test
readonly READY_TIMEOUT=${PL_FO_READY_TIMEOUT:-120}

SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
readonly SELF

FO_DIR="" RUN_AS="" MON_PORT="" PORT1="" PORT2=""
RESERVED_PORTS=()
CHILD_PID=""
CLEANED=0

log() { printf 'failover.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$SELF" >&2; exit 2; }

as_user() {
    if [[ -n $RUN_AS ]]; then
        (cd "$FO_DIR" && runuser -u "$RUN_AS" -- "$@")
    else
        (cd "$FO_DIR" && "$@")
    fi
}

# pg_autoctl keeps its configuration and state under the XDG directories:
# ours live in the temp dir, never in the user's home.
autoctl() {
    as_user env PATH="$PG_BIN:$PATH" XDG_CONFIG_HOME="$FO_DIR/xdg/config" \
        XDG_DATA_HOME="$FO_DIR/xdg/data" XDG_RUNTIME_DIR="$FO_DIR/xdg/run" \
        PGHOST="$FO_DIR/sock" PG_CONFIG=/usr/bin/pg_config pg_autoctl "$@"
}

pid_alive() {
    local pid=$1 stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# --- ports: tests/ports.sh (the same reservations as tests/servers.sh) -----
# shellcheck source=tests/ports.sh
source "$(dirname -- "$SELF")/ports.sh"

# --- state shared between run and ctl --------------------------------------

write_state() {
    printf 'RUN_AS=%s\nMON_PORT=%s\nPORT1=%s\nPORT2=%s\n' \
        "$RUN_AS" "$MON_PORT" "$PORT1" "$PORT2" >"$FO_DIR/state.env"
}

load_state() {
    [[ -n ${PL_FO_DIR:-} ]] || die "PL_FO_DIR is not set (ctl runs inside 'failover.sh run')"
    FO_DIR=$PL_FO_DIR
    local k v
    while IFS='=' read -r k v; do
        case $k in
        RUN_AS) [[ -z $v || $v == "$SVC_USER" ]] && RUN_AS=$v ;;
        MON_PORT | PORT1 | PORT2) [[ $v =~ ^[0-9]+$ ]] && printf -v "$k" '%s' "$v" ;;
        esac
    done <"$FO_DIR/state.env"
    [[ -n $MON_PORT && -n $PORT1 && -n $PORT2 ]] || die "corrupt state in $FO_DIR"
}

node_port() { case $1 in node1) echo "$PORT1" ;; node2) echo "$PORT2" ;; *) return 1 ;; esac; }
other_node() { case $1 in node1) echo node2 ;; node2) echo node1 ;; esac; }
node_conninfo() {
    printf 'host=127.0.0.1 port=%s dbname=%s user=%s connect_timeout=5' \
        "$(node_port "$1")" "$DB_NAME" "${RUN_AS:-$(id -un)}"
}
monitor_uri() {
    printf 'postgres://autoctl_node@127.0.0.1:%s/pg_auto_failover?sslmode=disable' "$MON_PORT"
}

# "NAME STATE ASSIGNED" per data node, from the monitor.
node_states() {
    "$PG_BIN/psql" -X -q -A -t -F ' ' -d "host=127.0.0.1 port=$MON_PORT dbname=pg_auto_failover user=autoctl_node connect_timeout=5" \
        -c "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node ORDER BY nodeid" 2>/dev/null
}

current_primary() { # primary, or wait_primary (writable, no standby yet)
    local name st goal
    while read -r name st goal; do
        if [[ $st == "$goal" && ($st == primary || $st == wait_primary) ]]; then
            echo "$name"
            return 0
        fi
    done < <(node_states)
    return 1
}

healthy() {
    local name st goal np=0 ns=0
    while read -r name st goal; do
        [[ $st == "$goal" ]] || return 1
        [[ $st == primary ]] && np=$((np + 1))
        [[ $st == secondary ]] && ns=$((ns + 1))
    done < <(node_states)
    ((np == 1 && ns == 1))
}

wait_healthy() {
    local i
    for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
        healthy && return 0
        sleep 0.2
    done
    log "formation not primary + secondary within ${READY_TIMEOUT}s:"
    node_states >&2 || true
    return 1
}

wait_state() { # wait_state NAME STATE
    local i name st goal
    for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
        while read -r name st goal; do
            [[ $name == "$1" && $st == "$2" && $goal == "$2" ]] && return 0
        done < <(node_states)
        sleep 0.2
    done
    log "$1 did not reach $2 within ${READY_TIMEOUT}s"
    node_states >&2 || true
    return 1
}

# Start `pg_autoctl run` (or create ... --run) detached, in a session of
# its own whose id is recorded, so that it can be killed as a whole.
spawn_node() { # spawn_node NAME ARGS...
    local name=$1 i
    shift
    rm -f -- "$FO_DIR/$name.pid"
    # shellcheck disable=SC2016
    as_user setsid -f bash -c 'echo "$$" >"$1"; shift; exec "$@"' spawn "$FO_DIR/$name.pid" \
        env PATH="$PG_BIN:$PATH" XDG_CONFIG_HOME="$FO_DIR/xdg/config" \
        XDG_DATA_HOME="$FO_DIR/xdg/data" XDG_RUNTIME_DIR="$FO_DIR/xdg/run" \
        PGHOST="$FO_DIR/sock" PG_CONFIG=/usr/bin/pg_config pg_autoctl "$@" </dev/null >>"$FO_DIR/log/$name.log" 2>&1
    for ((i = 0; i < 100; i++)); do
        [[ -s $FO_DIR/$name.pid ]] && return 0
        sleep 0.05
    done
    return 1
}

session_pids() { # every live process of session SID
    local sid=$1 d s
    for d in /proc/[0-9]*; do
        s=$(awk '{ sub(/.*\) /, ""); print $4 }' "$d/stat" 2>/dev/null) || continue
        [[ $s == "$sid" ]] && echo "${d#/proc/}"
    done
}

kill_session() { # kill_session NAME SIGNAL
    local sid pid
    read -r sid <"$FO_DIR/$1.pid" 2>/dev/null || return 0
    [[ $sid =~ ^[0-9]+$ ]] || return 0
    for pid in $(session_pids "$sid"); do
        kill "-$2" "$pid" 2>/dev/null || true
    done
}

wait_session_gone() { # wait_session_gone NAME SECONDS
    local sid i
    read -r sid <"$FO_DIR/$1.pid" 2>/dev/null || return 0
    for ((i = 0; i < $2 * 10; i++)); do
        [[ -z $(session_pids "$sid") ]] && return 0
        sleep 0.1
    done
    return 1
}

postmaster_pid() { # postmaster_pid NAME
    local pid
    read -r pid <"$FO_DIR/$1/postmaster.pid" 2>/dev/null || return 1
    pid_alive "$pid" && echo "$pid"
}

# --- run -------------------------------------------------------------------

init_pgdata() { # init_pgdata NAME
    local locale_opt=(--no-locale)
    if locale -a 2>/dev/null | grep -qix 'c\.utf-\{0,1\}8'; then locale_opt=(--locale=C.UTF-8); fi
    as_user "$PG_BIN/initdb" -D "$FO_DIR/$1" -A trust -E UTF8 "${locale_opt[@]}" --no-sync \
        >>"$FO_DIR/log/initdb.log" 2>&1 || die "initdb $1 failed: $(tail -5 "$FO_DIR/log/initdb.log")"
    {
        echo "unix_socket_directories = '$FO_DIR/sock'"
        # Only SIGKILL is simulated, never a machine crash: the page cache
        # survives, so fsync buys nothing here (and costs the shared CI disk).
        echo "fsync = off"
        echo "log_min_messages = warning"
        # pg_basebackup (pg_autoctl's, for the standby) waits for a spread
        # checkpoint: 90 s at the defaults, immediate at 0
        echo "checkpoint_completion_target = 0"
    } >>"$FO_DIR/$1/postgresql.conf"
}

cleanup() {
    local rc=$?
    ((CLEANED)) && return 0
    CLEANED=1
    trap '' INT TERM
    set +e
    if [[ -n $CHILD_PID ]] && pid_alive "$CHILD_PID"; then
        kill -TERM "$CHILD_PID" 2>/dev/null
        sleep 1
        kill -KILL "$CHILD_PID" 2>/dev/null
    fi
    if [[ -n $FO_DIR && -d $FO_DIR ]]; then
        local n
        for n in node1 node2 monitor; do kill_session "$n" TERM; done
        for n in node1 node2 monitor; do
            wait_session_gone "$n" 20 || { kill_session "$n" KILL; wait_session_gone "$n" 5; }
        done
        local pid
        if [[ -f $FO_DIR/stopped.pids ]]; then
            while read -r pid; do
                kill -CONT "$pid" 2>/dev/null
                kill -KILL "$pid" 2>/dev/null
            done <"$FO_DIR/stopped.pids"
        fi
        # a postmaster that left its session (or outlived its pg_autoctl)
        for n in node1 node2 monitor; do
            if pid=$(postmaster_pid "$n"); then
                kill -QUIT "$pid" 2>/dev/null
                sleep 1
                kill -KILL "$pid" 2>/dev/null
            fi
        done
        if ((rc != 0)); then
            for n in monitor node1 node2; do
                printf '\n===== last lines of %s.log =====\n' "$n" >&2
                tail -n 30 "$FO_DIR/log/$n.log" >&2 2>/dev/null
            done
        fi
        if [[ ${PL_TEST_KEEP:-0} == 1 ]]; then log "kept $FO_DIR"; else rm -rf -- "$FO_DIR"; fi
    fi
    release_ports
    return "$rc"
}

skip() {
    if [[ ${PL_FAILOVER_REQUIRED:-0} == 1 ]]; then die "$*"; fi
    log "skipped: $*"
    exit 77
}

cmd_run() {
    [[ ${1:-} == -- ]] && shift
    (($#)) || usage
    command -v pg_autoctl >/dev/null || skip "pg_autoctl missing (tests/servers.sh deps installs postgresql-15-auto-failover)"
    [[ -n ${PL_TEST_REDIS:-} ]] || skip "no Redis: run inside tests/servers.sh run"
    if ((EUID == 0)); then
        id -u "$SVC_USER" >/dev/null 2>&1 || die "user $SVC_USER missing (tests/servers.sh run creates it)"
        RUN_AS=$SVC_USER
    fi
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    FO_DIR=$(mktemp -d /tmp/provledger-fo.XXXXXXXX)
    chmod 755 "$FO_DIR"
    mkdir -p "$FO_DIR/log" "$FO_DIR/sock" "$FO_DIR/xdg/config" "$FO_DIR/xdg/data" "$FO_DIR/xdg/run"
    chmod 700 "$FO_DIR/xdg/run"
    [[ -z $RUN_AS ]] || chown -R "$RUN_AS:" "$FO_DIR"
    pick_port MON_PORT
    pick_port PORT1
    pick_port PORT2
    write_state
    local t0=$SECONDS

    # pg_autoctl starts postgres without -k: the socket directory (never
    # Debian's /var/run/postgresql, which the service user may not write)
    # comes from postgresql.conf, so the monitor and node1 are initdb'd
    # here (pg_autoctl adopts an existing data directory; node2 is a
    # base backup of node1 and inherits its postgresql.conf).
    init_pgdata monitor
    init_pgdata node1
    autoctl create monitor --pgdata "$FO_DIR/monitor" --pgport "$MON_PORT" \
        --hostname 127.0.0.1 --auth trust --no-ssl --pgctl "$PG_BIN/pg_ctl" \
        >>"$FO_DIR/log/monitor.log" 2>&1 || die "pg_autoctl create monitor failed: $(tail -5 "$FO_DIR/log/monitor.log")"
    # Fail over within seconds, not the defaults' tens of seconds.
    cat >>"$FO_DIR/monitor/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 4000
pgautofailover.startup_grace_period = 2000
# how long the monitor waits for a primary it lost to demote itself before
# promoting the standby (default 30 s; README "High availability")
pgautofailover.primary_demote_timeout = ${PL_FO_DEMOTE_TIMEOUT_MS:-10000}
EOF
    spawn_node monitor run --pgdata "$FO_DIR/monitor" || die "monitor did not start"
    local i
    for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$MON_PORT" -d pg_auto_failover -t 1 && break
        sleep 0.2
    done
    as_user "$PG_BIN/pg_ctl" -D "$FO_DIR/monitor" reload >/dev/null 2>&1 || true

    local n port
    for n in node1 node2; do
        port=$(node_port "$n")
        spawn_node "$n" create postgres --pgdata "$FO_DIR/$n" --pgport "$port" \
            --hostname 127.0.0.1 --listen 127.0.0.1 --name "$n" --auth trust --no-ssl --dbname "$DB_NAME" \
            --pgctl "$PG_BIN/pg_ctl" --monitor "$(monitor_uri)" --run ||
            die "$n did not start"
        if [[ $n == node1 ]]; then
            wait_state node1 single || die "node1 did not become single"
        fi
    done
    wait_healthy || die "formation not healthy"
    log "formation up in $((SECONDS - t0))s in $FO_DIR (monitor $MON_PORT, node1 $PORT1, node2 $PORT2)"
    autoctl show settings --pgdata "$FO_DIR/monitor" >"$FO_DIR/log/settings.txt" 2>&1 || true
    cat "$FO_DIR/log/settings.txt" >&2

    export PL_FO_DIR=$FO_DIR
    export PL_FO_CTL=$SELF
    export PL_FO_CONNINFO="host=127.0.0.1,127.0.0.1 port=$PORT1,$PORT2 dbname=$DB_NAME user=${RUN_AS:-$(id -un)} target_session_attrs=read-write connect_timeout=2"
    export PL_FO_REPLICA_CONNINFO="host=127.0.0.1,127.0.0.1 port=$PORT1,$PORT2 dbname=$DB_NAME user=${RUN_AS:-$(id -un)} target_session_attrs=prefer-standby connect_timeout=2"
    export PL_FO_MONITOR="host=127.0.0.1 port=$MON_PORT dbname=pg_auto_failover user=autoctl_node"
    log "conninfo: $PL_FO_CONNINFO"

    local rc=0
    ("${@}") &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    exit "$rc"
}

# --- ctl -------------------------------------------------------------------

cmd_ctl() {
    (($#)) || usage
    load_state
    local action=$1 p pid
    shift
    case $action in
    state) autoctl show state --pgdata "$FO_DIR/monitor" ;;
    primary) current_primary ;;
    primary-conninfo) p=$(current_primary) && node_conninfo "$p" ;;
    standby-conninfo) p=$(current_primary) && node_conninfo "$(other_node "$p")" ;;
    wait-healthy) wait_healthy ;;
    perform-failover)
        autoctl perform failover --pgdata "$FO_DIR/monitor" --wait 120 >>"$FO_DIR/log/ctl.log" 2>&1 ||
            die "perform failover failed: $(tail -5 "$FO_DIR/log/ctl.log")"
        wait_healthy
        ;;
    kill-primary)
        p=$(current_primary) || die "no primary"
        kill_session "$p" KILL
        pid=$(postmaster_pid "$p") && kill -KILL "$pid"
        echo "$p"
        ;;
    kill-postmaster)
        p=$(current_primary) || die "no primary"
        pid=$(postmaster_pid "$p") || die "no postmaster for $p"
        kill -KILL "$pid"
        echo "$p"
        ;;
    restart-node)
        [[ ${1:-} == node1 || ${1:-} == node2 ]] || die "usage: ctl restart-node node1|node2"
        wait_session_gone "$1" 10 || kill_session "$1" KILL
        spawn_node "$1" run --pgdata "$FO_DIR/$1"
        ;;
    sync-off | sync-on)
        local q=false
        [[ $action == sync-on ]] && q=true
        for p in node1 node2; do
            autoctl set node replication-quorum "$q" --pgdata "$FO_DIR/$p" >>"$FO_DIR/log/ctl.log" 2>&1 ||
                die "set replication-quorum $q on $p failed: $(tail -5 "$FO_DIR/log/ctl.log")"
        done
        ;;
    walsender-stop | walsender-cont)
        p=$(current_primary) || die "no primary"
        local sig=STOP
        [[ $action == walsender-cont ]] && sig=CONT
        for pid in $("$PG_BIN/psql" -X -q -A -t -d "$(node_conninfo "$p")" \
            -c "SELECT pid FROM pg_stat_replication"); do
            kill "-$sig" "$pid"
            # A stopped walsender outlives a killed postmaster (and keeps
            # its logger alive): cleanup wakes and kills the ones noted.
            [[ $sig == STOP ]] && echo "$pid" >>"$FO_DIR/stopped.pids"
        done
        ;;
    *) die "unknown ctl action: $action" ;;
    esac
}

main() {
    (($#)) || usage
    # the enclosing servers.sh exports PGHOST, PGUSER, ... of its own server
    local v
    for v in $(compgen -e); do
        [[ $v == PG* ]] && unset "$v"
    done
    local sub=$1
    shift
    case $sub in
    run) cmd_run "$@" ;;
    ctl) cmd_ctl "$@" ;;
    *) usage ;;
    esac
}

main "$@"
