#!/usr/bin/env bash
# Tamper evidence end to end, as an attacker with superuser rights: for
# each attack a fresh schema gets records, a seal and a saved checkpoint;
# then the attack runs with triggers bypassed (session_replication_role =
# replica) and `provledger verify` must report exactly the expected
# findings (name and record id), from the database and from an export.
#
# Environment: PL_TEST_PG (libpq conninfo; skip 77 without), PROVLEDGER_BIN.
set -uo pipefail

if [[ -z ${PL_TEST_PG:-} ]]; then
    echo "check_tlog.sh: PL_TEST_PG is not set: run under tests/servers.sh (skipping)" >&2
    exit 77
fi
BIN=${PROVLEDGER_BIN:?set PROVLEDGER_BIN}
PSQL=${PL_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}/psql
TMP=$(mktemp -d)
FAILS=0 CHECKS=0 N=0
SCHEMAS=()
cleanup() {
    for s in "${SCHEMAS[@]}"; do
        "$PSQL" "$PL_TEST_PG" -XAtq -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1
    done
    rm -rf -- "$TMP"
}
trap cleanup EXIT
openssl genpkey -algorithm ed25519 -out "$TMP/key.pem" 2>/dev/null
openssl pkey -in "$TMP/key.pem" -pubout -out "$TMP/pub.pem" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$TMP/other.pem" 2>/dev/null

pl() { "$BIN" --pg "$PL_TEST_PG" --schema "$S" "$@"; }
sql() { "$PSQL" "$PL_TEST_PG" -XAtq -v ON_ERROR_STOP=1 -c "SET search_path = $S; $1"; }
attack() { sql "SET session_replication_role = replica; $1" >/dev/null; }

# A fresh ledger of 40 records over 4 entities, sealed, its checkpoint kept.
fresh() {
    N=$((N + 1))
    S=tlog_test_$$_$N
    SCHEMAS+=("$S")
    pl migrate >/dev/null || { echo "migrate failed" >&2; exit 1; }
    for i in $(seq 1 40); do
        printf '{"entity_id":"acct:%d","field_name":"f%d","new_value":{"amount":%d.5,"tags":["a","b"]},"source_type":"test","metadata":{"k":%d,"b":"x"}}\n' \
            $((i % 4)) $((i % 3)) "$i" "$i"
    done | pl insert --stdin >/dev/null || { echo "insert failed" >&2; exit 1; }
    pl seal --key "$TMP/key.pem" >"$TMP/cp" || { echo "seal failed" >&2; exit 1; }
}

# expect NAME "FINDING:ID ..." [verify args]: the sorted findings must be these.
expect() {
    local name=$1 want=$2
    shift 2
    CHECKS=$((CHECKS + 1))
    local out rc got
    out=$("$BIN" --pg "$PL_TEST_PG" --schema "$S" verify --pub "$TMP/pub.pem" --checkpoint "$TMP/cp" "$@")
    rc=$?
    got=$(printf '%s\n' "$out" | jq -r 'select(.finding) | "\(.finding):\(.id)"' | sort -u | tr '\n' ' ' | sed 's/ $//')
    local want_rc=4
    [[ -z $want || $want =~ ^(ERASED:[0-9]+ ?)+$ ]] && want_rc=0
    if [[ $got != "$want" || $rc != "$want_rc" ]]; then
        echo "FAIL $name: want [$want] exit $want_rc, got [$got] exit $rc" >&2
        printf '%s\n' "$out" >&2
        FAILS=$((FAILS + 1))
    else
        echo "ok   $name: [$got] exit $rc"
    fi
}

id_of() { sql "SELECT id FROM provenance_ledger ORDER BY id OFFSET $1 LIMIT 1"; }

fresh
expect "untouched" ""
pl export --out "$TMP/ex1" >/dev/null
CHECKS=$((CHECKS + 1))
if "$BIN" verify --pub "$TMP/pub.pem" --export "$TMP/ex1" --checkpoint "$TMP/cp" >/dev/null; then
    echo "ok   export verifies with no database"
else
    echo "FAIL export verify" >&2; FAILS=$((FAILS + 1))
fi

fresh; id=$(id_of 7)
attack "UPDATE provenance_ledger SET new_value = '{\"amount\": 8.6, \"tags\": [\"a\", \"b\"]}' WHERE id = $id"
expect "a number rewritten" "ALTERED:$id"
pl export --out "$TMP/ex2" >/dev/null
CHECKS=$((CHECKS + 1))
got=$("$BIN" verify --pub "$TMP/pub.pem" --export "$TMP/ex2" | jq -r 'select(.finding) | "\(.finding):\(.id)"')
if [[ $got == "ALTERED:$id" ]]; then echo "ok   the export shows it too"; else
    echo "FAIL export: got [$got]" >&2; FAILS=$((FAILS + 1)); fi

fresh; id=$(id_of 3)
attack "UPDATE provenance_ledger SET metadata = ('{\"b\": \"x\", \"k\": ' || (metadata->>'k') || '}')::jsonb WHERE id = $id"
expect "jsonb key order only" ""

fresh; id=$(id_of 5)
attack "UPDATE provenance_ledger SET change_reason = 'x' WHERE id = $id"
expect "one value byte" "ALTERED:$id"

fresh; id=$(id_of 9)
attack "UPDATE provenance_ledger SET valid_time_start = valid_time_start + interval '1 microsecond' WHERE id = $id"
expect "one microsecond" "ALTERED:$id"

fresh; id=$(id_of 11)
attack "DELETE FROM provenance_ledger WHERE id = $id"
expect "a deleted row" "MISSING:$id"

fresh; a=$(id_of 1); b=$(id_of 2)
attack "UPDATE provenance_ledger p SET new_value = q.new_value FROM provenance_ledger q
        WHERE (p.id, q.id) IN (($a, $b), ($b, $a))"
expect "two values swapped" "$(printf 'ALTERED:%s\nALTERED:%s\n' "$a" "$b" | sort | tr '\n' ' ' | sed 's/ $//')"

fresh; e=$(sql "SELECT entity_id FROM provenance_ledger ORDER BY id LIMIT 1")
bad=$(sql "SET session_replication_role = replica; INSERT INTO provenance_ledger (entity_id, field_name, new_value,
      transaction_time, valid_time_start, source_type) SELECT entity_id, field_name, '1', transaction_time - interval '1 microsecond',
      transaction_time, 'test' FROM provenance_ledger WHERE entity_id = '$e' ORDER BY transaction_time DESC LIMIT 1 RETURNING id" | head -1)
expect "a back-dated row" "BACKDATED:$bad"
pl seal --key "$TMP/key.pem" >/dev/null 2>&1
rc=$?
CHECKS=$((CHECKS + 1))
if [[ $rc == 4 ]]; then echo "ok   the sealer refuses it (exit 4)"; else echo "FAIL the sealer sealed it" >&2; FAILS=$((FAILS + 1)); fi

fresh
attack "DELETE FROM log_leaf WHERE leaf_index >= 30; DELETE FROM log_checkpoint"
expect "the log's tail truncated" "LOG_MISMATCH:null"

fresh
attack "UPDATE log_leaf SET nodes = set_byte(nodes, 5, get_byte(nodes, 5) # 1) WHERE nodes IS NOT NULL AND leaf_index = 15"
expect "one byte of an interior hash" "LOG_MISMATCH:null"

fresh
attack "DELETE FROM log_leaf; DELETE FROM log_checkpoint; DELETE FROM log_entity; UPDATE log_seal_state SET horizon = NULL"
pl seal --key "$TMP/other.pem" >/dev/null
expect "log rebuilt and re-signed with another key" "BAD_SIGNATURE:null INCONSISTENT:null"

fresh; e=$(sql "SELECT entity_id FROM provenance_ledger ORDER BY id LIMIT 1")
pl erase --entity "$e" --reason test >/dev/null
want=$(sql "SELECT 'ERASED:' || id FROM provenance_ledger WHERE entity_id = '$e'" | sort | tr '\n' ' ' | sed 's/ $//')
expect "erasure (before the next seal)" "$want"
pl seal --key "$TMP/key.pem" >/dev/null
expect "erasure (sealed)" "$want"
CHECKS=$((CHECKS + 1))
if sql "SELECT count(*) FROM provenance_ledger WHERE entity_id = '$e' AND (new_value <> 'null' OR metadata <> '{}')" | grep -qx 0; then
    echo "ok   no erased value left"
else
    echo "FAIL values left after erasure" >&2; FAILS=$((FAILS + 1))
fi

echo "check_tlog: $CHECKS checks, $FAILS failed"
((FAILS == 0))
