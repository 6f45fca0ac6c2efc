# shellcheck shell=bash
# tests/ports.sh: free TCP ports for the test servers, reserved across
# concurrent runs (tests/servers.sh, tests/failover.sh source it). A port is
# reserved by an atomically created lock directory naming the reserving
# shell's pid; a lock whose owner is gone is taken over. The sourcing script
# defines die() and declares RESERVED_PORTS=() and calls release_ports when
# it ends.
PORT_LOCK_PREFIX=/tmp/.provledger-port-

port_in_use() {
    local p=$1
    # something accepting on 127.0.0.1?
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        return 0
    fi
    # any listener on that port (wildcard, other address, IPv6)?
    if command -v ss >/dev/null 2>&1 &&
        [[ -n $(ss -Hltn "sport = :$p" 2>/dev/null) ]]; then
        return 0
    fi
    return 1
}

# Reserve a port for the lifetime of this run: an atomically created lock
# directory that names our pid (stale ones of dead runs are taken over).
reserve_port() {
    local p=$1 lock=$PORT_LOCK_PREFIX$1 owner=""
    if ! mkdir -- "$lock" 2>/dev/null; then
        read -r owner <"$lock/pid" 2>/dev/null || true
        if [[ $owner =~ ^[0-9]+$ ]] && [[ -d /proc/$owner ]]; then
            return 1
        fi
        # stale (or half-created: give its creator a moment)
        [[ -n $owner ]] || { sleep 0.2; read -r owner <"$lock/pid" 2>/dev/null || true; }
        [[ -n $owner && -d /proc/$owner ]] && return 1
        mv -- "$lock" "$lock.stale.$$" 2>/dev/null || return 1
        rm -rf -- "$lock.stale.$$"
        mkdir -- "$lock" 2>/dev/null || return 1
    fi
    echo "$$" >"$lock/pid"
    RESERVED_PORTS+=("$p")
    return 0
}

release_ports() {
    local p owner
    for p in "${RESERVED_PORTS[@]}"; do
        owner=""
        read -r owner <"$PORT_LOCK_PREFIX$p/pid" 2>/dev/null || true
        [[ $owner == "$$" ]] && rm -rf -- "$PORT_LOCK_PREFIX$p"
    done
    RESERVED_PORTS=()
}

# pick_port VAR: a free TCP port in 20000-50000, reserved for this run.
pick_port() {
    local -n out=$1
    local start p i
    start=$((20000 + (RANDOM * 32768 + RANDOM) % 30001))
    for ((i = 0; i < 30001; i++)); do
        p=$((20000 + (start - 20000 + i) % 30001))
        port_in_use "$p" && continue
        reserve_port "$p" || continue
        # re-check after reserving (someone outside our scheme may have it)
        if port_in_use "$p"; then
            continue
        fi
        # shellcheck disable=SC2034  # nameref
        out=$p
        return 0
    done
    die "no free TCP port found in 20000-50000"
}
