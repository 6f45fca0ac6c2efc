#!/usr/bin/env bash
# End-to-end tests of the provledger command-line tool, through its real
# binary, against the servers of tests/servers.sh:
#
#   bash tests/servers.sh run --no-replica -- \
#       env PROVLEDGER_BIN=build/lib/cli/provledger bash tests/check_cli.sh
#
# Environment:
#   PROVLEDGER_BIN   the binary (default: build/lib/cli/provledger beside
#                    this script's tree, or $MESON_BUILD_ROOT/lib/cli/...)
#   PROVLEDGER_MAN   the man page (default: lib/cli/provledger.1)
#   PROVLEDGER_WRAP  a command to run the binary under, e.g.
#                    "valgrind -q --error-exitcode=99 --leak-check=full"
# Exits 77 (skip) when PL_TEST_PG is not set, 1 when a check failed.
set -uo pipefail

if [[ -z ${PL_TEST_PG:-} ]]; then
    echo "check_cli.sh: PL_TEST_PG is not set: run under tests/servers.sh (skipping)" >&2
    exit 77
fi

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname -- "$HERE")
BIN=${PROVLEDGER_BIN:-}
if [[ -z $BIN ]]; then
    for cand in "${MESON_BUILD_ROOT:-/nonexistent}/lib/cli/provledger" "$ROOT/build/lib/cli/provledger"; do
        if [[ -x $cand ]]; then
            BIN=$cand
            break
        fi
    done
fi
if [[ -z $BIN || ! -x $BIN ]]; then
    echo "check_cli.sh: no provledger binary (set PROVLEDGER_BIN)" >&2
    exit 1
fi
MAN=${PROVLEDGER_MAN:-$ROOT/lib/cli/provledger.1}
WRAP=()
if [[ -n ${PROVLEDGER_WRAP:-} ]]; then
    read -r -a WRAP <<<"$PROVLEDGER_WRAP"
fi
PSQL=${PL_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}/psql

SCHEMA=cli_test_$$
PREFIX="cli_test_$$:"
G=(--schema "$SCHEMA")  # global options of most runs
TMP=$(mktemp -d)
FAILS=0
CHECKS=0
OUT="" ERR="" RC=0

cleanup() {
    "${WRAP[@]}" "$BIN" "${G[@]}" refresh --unschedule >/dev/null 2>&1
    sql "DROP SCHEMA IF EXISTS $SCHEMA CASCADE; DROP SCHEMA IF EXISTS ${SCHEMA}_env CASCADE;" \
        >/dev/null 2>&1
    rm -rf -- "$TMP"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

fail() {
    FAILS=$((FAILS + 1))
    printf 'FAIL: %s\n' "$*" >&2
}

ok() {
    CHECKS=$((CHECKS + 1))
}

# Raw SQL on the test database; prints the unaligned result.
sql() {
    "$PSQL" "$PL_TEST_PG" -XAtq -v ON_ERROR_STOP=1 -c "$1"
}

# run DESCRIPTION EXPECTED_STATUS ARGS... : runs the binary (stdin from
# $STDIN, environment changed by the env(1) arguments in RUN_ENV) and checks
# the exit status; output lands in OUT and ERR.
STDIN=/dev/null
RUN_ENV=()
run() {
    local what=$1 want=$2
    shift 2
    env "${RUN_ENV[@]}" "${WRAP[@]}" "$BIN" "$@" <"$STDIN" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
    if [[ $RC -ne $want ]]; then
        fail "$what: exit status $RC, expected $want (provledger $*)"$'\n'"  stdout: ${OUT:0:600}"$'\n'"  stderr: $ERR"
        return 1
    fi
    ok
    return 0
}

# An error must be exactly one line on stderr, "provledger: ...", and
# nothing on stdout.
one_line_error() {
    local what=$1 lines
    lines=$(printf '%s\n' "$ERR" | wc -l)
    if [[ -z $ERR || $lines -ne 1 || $ERR != "provledger: "* ]]; then
        fail "$what: expected one 'provledger: ...' line on stderr, got: $ERR"
    elif [[ -n $OUT ]]; then
        fail "$what: expected nothing on stdout, got: $OUT"
    else
        ok
    fi
}

# bad DESCRIPTION ARGS... : a usage or input error: status 2, one line.
bad() {
    local what=$1
    shift
    run "$what" 2 "$@" && one_line_error "$what"
}

# JSON checks run in one python3 process for the whole script (starting
# python for each check would take most of the run time). A request is a
# line "FILE<TAB>EXPR"; the answer is one line, "ok VALUE" or "error TEXT",
# where EXPR sees L = the list of JSON lines of FILE and J = the only one.
PYJ_SRC='
import json, sys
for req in sys.stdin:
    path, expr = req.rstrip("\n").split("\t", 1)
    try:
        text = open(path, encoding="utf-8").read()
        L = [json.loads(x) for x in text.splitlines() if x.strip()]
        J = L[0] if len(L) == 1 else None
        v = eval(expr)
        out = "ok " + ("" if v is None else str(v)).replace("\n", " ")
    except Exception as e:
        out = "error %s: %s" % (type(e).__name__, str(e).replace("\n", " "))
    print(out, flush=True)
'
coproc PYJ { python3 -c "$PYJ_SRC"; }

# pyj EXPR : evaluates EXPR over OUT; sets PYJ_ANSWER.
pyj() {
    printf '%s\t%s\n' "$TMP/out" "$1" >&"${PYJ[1]}"
    IFS= read -r PYJ_ANSWER <&"${PYJ[0]}"
}

# jcheck DESCRIPTION PYTHON_EXPR : EXPR must be true over the JSON in OUT.
jcheck() {
    local what=$1 expr=$2
    pyj "$expr"
    if [[ $PYJ_ANSWER == "ok True" ]]; then
        ok
    else
        fail "$what: ($expr) gives '${PYJ_ANSWER#ok }' for output: ${OUT:0:800}"
    fi
}

# jval VAR PYTHON_EXPR : sets VAR to the value of EXPR over OUT.
jval() {
    pyj "$2"
    if [[ $PYJ_ANSWER == "ok "* ]]; then
        printf -v "$1" '%s' "${PYJ_ANSWER#ok }"
    else
        printf -v "$1" '%s' ""
        fail "jval ($2): $PYJ_ANSWER"
    fi
}

contains() {
    local what=$1 hay=$2 needle=$3
    if [[ $hay == *"$needle"* ]]; then
        ok
    else
        fail "$what: expected '$needle' in: ${hay:0:600}"
    fi
}

equals() {
    local what=$1 got=$2 want=$3
    if [[ $got == "$want" ]]; then
        ok
    else
        fail "$what: got '$got', expected '$want'"
    fi
}

rows() {
    sql "SELECT count(*) FROM $SCHEMA.provenance_ledger${1:+ WHERE $1}"
}

COMMANDS=(migrate insert current as-of snapshot range history search audit stats refresh
    partitions health "dashboard changes" "dashboard corrections" version seal checkpoint
    verify prove erase export rollup)

# ---------------------------------------------------------------------------
# help, version and the man page (no server needed)
# ---------------------------------------------------------------------------

run "--help" 0 --help && contains "--help" "$OUT" "Usage: provledger"
for cmd in "${COMMANDS[@]}"; do
    read -r -a words <<<"$cmd"
    if run "$cmd --help" 0 "${words[@]}" --help; then
        contains "$cmd --help" "$OUT" "Usage: provledger [GLOBAL OPTIONS] $cmd"
        equals "$cmd --help writes nothing on stderr" "$ERR" ""
    fi
    run "help $cmd" 0 help "${words[@]}" && contains "help $cmd" "$OUT" "provledger [GLOBAL OPTIONS] $cmd"
    run "$cmd -h" 0 "${words[@]}" -h && contains "$cmd -h" "$OUT" "Usage:"
    # --help wins over other arguments, even bad ones.
    run "$cmd --help with junk" 0 "${words[@]}" --help extra --format xml
done
run "dashboard --help" 0 dashboard --help && contains "dashboard --help" "$OUT" "dashboard changes"
run "--version" 0 --version && contains "--version" "$OUT" "provledger "
if run "version" 0 version; then
    jcheck "version" 'J["provledger"] == J["library"] and J["schema_version"] >= 1'
    jval SV 'J["schema_version"]'
fi
run "version --format table" 0 version --format table && contains "version table" "$OUT" "KEY"

# The man page renders without warnings and documents every command and
# every option the binary knows.
if command -v groff >/dev/null; then
    if LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$MAN" 2>"$TMP/groff" && [[ ! -s $TMP/groff ]]; then
        ok
    else
        fail "man page: groff warns: $(cat "$TMP/groff")"
    fi
    # Rendered wide and unhyphenated, so that every option reads whole.
    MANTEXT=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -rLL=300n -rHY=0 -P-cbou "$MAN" 2>/dev/null)
elif command -v man >/dev/null; then
    MANTEXT=$(MANWIDTH=300 man -l "$MAN" 2>/dev/null | col -b)
else
    MANTEXT=""
fi
if [[ -n $MANTEXT ]]; then ok; else fail "man page: nothing rendered (groff or man needed)"; fi
for section in NAME SYNOPSIS DESCRIPTION ENVIRONMENT "EXIT STATUS" EXAMPLES; do
    contains "man page section" "$MANTEXT" "$section"
done
for cmd in "${COMMANDS[@]}"; do
    contains "man page documents command" "$MANTEXT" "$cmd"
    read -r -a words <<<"$cmd"
    "$BIN" "${words[@]}" --help 2>/dev/null | sed -n 's/^  \(--[a-z-]*\).*/\1/p' >"$TMP/opts"
    while read -r opt; do
        contains "man page documents $cmd $opt" "$MANTEXT" "$opt"
    done <"$TMP/opts"
done
for var in PGHOST PROVLEDGER_REDIS_URL PROVLEDGER_SCHEMA PROVLEDGER_CACHE_PREFIX PROVLEDGER_REPLICA; do
    contains "man page documents $var" "$MANTEXT" "$var"
done

# ---------------------------------------------------------------------------
# bad usage: exit 2, one line, checked before connecting (the server given
# here does not exist)
# ---------------------------------------------------------------------------

NOPG=(--pg "host=/nonexistent port=1" --schema "$SCHEMA")
bad "no command"
bad "unknown command" frobnicate
bad "unknown global option" --frobnicate version
bad "unknown command option" "${NOPG[@]}" current e f --frobnicate
bad "single-dash option" "${NOPG[@]}" current e f -x
bad "option without its argument" "${NOPG[@]}" history e --format
bad "flag given an argument" "${NOPG[@]}" current e f --realtime=yes
bad "missing argument" "${NOPG[@]}" current e
bad "missing arguments" "${NOPG[@]}" snapshot
bad "extra argument" "${NOPG[@]}" current e f g
bad "bad format" "${NOPG[@]}" --format xml current e f
bad "realtime and allow-stale" "${NOPG[@]}" --realtime --allow-stale current e f
bad "bad --tx" "${NOPG[@]}" as-of e f --tx yesterday
bad "bad --valid" "${NOPG[@]}" as-of e f --valid 2025-13-01T00:00:00Z
bad "time without offset" "${NOPG[@]}" as-of e f --tx 2025-01-01T00:00:00
bad "infinity is no query time" "${NOPG[@]}" snapshot e --valid infinity
bad "range from after to" "${NOPG[@]}" range e --from 2025-02-01T00:00:00Z --to 2025-01-01T00:00:00Z
bad "insert without --entity" "${NOPG[@]}" insert --field f --value 1 --source s
bad "insert without --value" "${NOPG[@]}" insert --entity e --field f --source s
bad "insert bad --valid-from" "${NOPG[@]}" insert --entity e --field f --value 1 --source s --valid-from soon
bad "insert --batch without --stdin" "${NOPG[@]}" insert --entity e --field f --value 1 --source s --batch 5
bad "insert --stdin with --entity" "${NOPG[@]}" insert --stdin --entity e
bad "insert bad --batch" "${NOPG[@]}" insert --stdin --batch 0
bad "insert --batch too big" "${NOPG[@]}" insert --stdin --batch 100001
bad "search bad --limit" "${NOPG[@]}" search '{}' --limit 0
bad "search non-numeric --limit" "${NOPG[@]}" search '{}' --limit ten
bad "partitions two actions" "${NOPG[@]}" partitions --ensure 3 --attach x
bad "partitions bad --ensure" "${NOPG[@]}" partitions --ensure 121
bad "partitions bad --detach-before" "${NOPG[@]}" partitions --detach-before now
bad "refresh two actions" "${NOPG[@]}" refresh --schedule '* * * * *' --unschedule
bad "dashboard without subcommand" "${NOPG[@]}" dashboard
bad "dashboard unknown subcommand" "${NOPG[@]}" dashboard totals
bad "dashboard without --from" "${NOPG[@]}" dashboard changes --to now
bad "dashboard without --to" "${NOPG[@]}" dashboard corrections --from any
bad "audit bad --from" "${NOPG[@]}" audit --from last-week
bad "help for an unknown command" help frobnicate

# An option given twice is an error, not "the last one wins" (checked
# before connecting: the status would be 1 otherwise).
bad "option given twice" "${NOPG[@]}" current e f --format json --format table &&
    contains "option twice named" "$ERR" "option '--format' given twice"
bad "command option given twice" "${NOPG[@]}" insert --entity a --entity b --field f --value 1 --source s &&
    contains "command option twice named" "$ERR" "'--entity' given twice"
bad "global option twice, before and after" --schema a "${NOPG[@]}" current e f &&
    contains "global option twice named" "$ERR" "'--schema' given twice"
bad "flag given twice" "${NOPG[@]}" --realtime current e f --realtime &&
    contains "flag twice named" "$ERR" "'--realtime' given twice"
# ENTITY and FIELD as options: a positional argument and an option for one
# place must agree.
bad "positional and --entity differ" "${NOPG[@]}" current e f --entity x &&
    contains "positional and option differ" "$ERR" "ENTITY given twice: 'e' (argument 1) and --entity 'x'"
bad "positional and --field differ" "${NOPG[@]}" history e f --field g &&
    contains "field positional and option differ" "$ERR" "FIELD given twice"
bad "missing FIELD names --field" "${NOPG[@]}" as-of --entity e &&
    contains "missing field names the option" "$ERR" "missing argument FIELD or --field"
# Without --entity and with a standard input that is not a terminal,
# insert reads JSON lines; options of one change then need --entity.
bad "insert option needs --entity off a terminal" "${NOPG[@]}" insert --value 1 --source s &&
    contains "needs --entity" "$ERR" "--value needs --entity"

# --stdin: a line that is not an object of known keys is reported before
# connecting, with its number and column.
bad_line() {
    local what=$1 line=$2
    printf '%s\n' '{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s"}' "$line" >"$TMP/in"
    STDIN=$TMP/in bad "stdin: $what" "${NOPG[@]}" insert --stdin && contains "stdin: $what" "$ERR" "line 2"
}
bad_line "not JSON" 'hello'
bad_line "not an object" '[1,2]'
bad_line "entity_id not a string" '{"entity_id":7,"field_name":"f","new_value":1,"source_type":"s"}'
bad_line "unknown key" '{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s","colour":1}'
bad_line "duplicate key" '{"entity_id":"e","field_name":"f","new_value":1,"new_value":2,"source_type":"s"}'
bad_line "bad valid_from" '{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s","valid_from":"monday"}'
printf 'x\0y\n' >"$TMP/in"
STDIN=$TMP/in bad "stdin: NUL byte" "${NOPG[@]}" insert --stdin && contains "stdin: NUL byte" "$ERR" "line 1"
# Positions are 1-based columns in characters, of the line they name.
printf '%s\n' '{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s"}' \
    '{"entity_id":"日本","field_name" "f"}' >"$TMP/in"
STDIN=$TMP/in bad "stdin: column in characters" "${NOPG[@]}" insert --stdin &&
    contains "column in characters" "$ERR" "line 2, column 32: expected ':'"
printf '%s\n' '{"entity_id":"e","field_name":"f","new_value":[1,2},"source_type":"s"}' >"$TMP/in"
STDIN=$TMP/in bad "stdin: mismatched bracket" "${NOPG[@]}" insert --stdin &&
    contains "mismatched bracket column" "$ERR" "line 1, column 51: expected ']'"
printf '{"entity_id":"é","field_name":"f","new_value":1,"source_type":"s"} x\n' >"$TMP/in"
STDIN=$TMP/in bad "stdin: text after the object" "${NOPG[@]}" insert --stdin &&
    contains "text after the object column" "$ERR" "line 1, column 68: unexpected text"
# A UTF-8 byte order mark before the first line is skipped; columns count
# from after it.
printf '\xef\xbb\xbf{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s",}\n' >"$TMP/in"
STDIN=$TMP/in bad "stdin: BOM then an error" "${NOPG[@]}" insert --stdin &&
    contains "column after the BOM" "$ERR" "line 1, column 67: expected a member name"
STDIN=/dev/null

# ---------------------------------------------------------------------------
# connection and schema errors: exit 1, one line
# ---------------------------------------------------------------------------

run "unreachable server" 1 --pg "host=/nonexistent port=1" --schema "$SCHEMA" current e f &&
    one_line_error "unreachable server"
run "schema not migrated" 1 "${G[@]}" current e f && one_line_error "schema not migrated"
run "invalid schema name" 2 --schema "Bad-Name" current e f && one_line_error "invalid schema name"
# Before the first migration the schema version is 0 (pl_schema_version).
if run "stats before migrate" 0 "${G[@]}" stats; then
    jcheck "stats before migrate" 'J["schema_version"] == 0'
fi

# ---------------------------------------------------------------------------
# migrate, insert, read
# ---------------------------------------------------------------------------

if run "migrate" 0 "${G[@]}" migrate; then
    jcheck "migrate" "J == {'schema': '$SCHEMA', 'previous_version': 0, 'schema_version': ${SV:-0}}"
fi
run "migrate again" 0 "${G[@]}" migrate && jcheck "migrate again" "J['previous_version'] == ${SV:-0} and J['schema_version'] == ${SV:-0}"

if run "insert one" 0 "${G[@]}" insert --entity cust_1 --field email --value '"a@example.com"' \
    --old '"old@example.com"' --source api --reason "user request" \
    --metadata '{"import_batch_id":"one","n":0.1}' --idempotency-key k-1; then
    jcheck "insert receipt" 'set(J) == {"id", "transaction_time"} and isinstance(J["id"], int)'
    jval ID1 'J["id"]'
    jval TT1 'J["transaction_time"]'
fi
equals "one row written" "$(rows)" 1
run "insert same idempotency key" 0 "${G[@]}" insert --entity cust_1 --field email \
    --value '"a@example.com"' --old '"old@example.com"' --source api --reason "user request" \
    --metadata '{"import_batch_id":"one","n":0.1}' --idempotency-key k-1 &&
    jcheck "idempotent receipt" "J['id'] == ${ID1:-0} and J['transaction_time'] == '${TT1:-}'"
equals "retry wrote nothing" "$(rows)" 1
run "idempotency key reused" 1 "${G[@]}" insert --entity cust_1 --field email --value '"b@example.com"' \
    --source api --idempotency-key k-1 && one_line_error "idempotency conflict"
run "library rejects input" 2 "${G[@]}" insert --entity cust_1 --field email --value 1 --source api \
    --idempotency-key "" && one_line_error "library EINVAL"
equals "rejected inserts wrote nothing" "$(rows)" 1

# One validation, the library's: JSON texts reach it as written, and its
# verdict (status and message) is the tool's. It needs a connection.
bad "insert bad JSON value" "${G[@]}" insert --entity e --field f --value '{"a":' --source s &&
    contains "library message names the field and the option" "$ERR" "invalid argument: new_value: invalid JSON"
contains "the option of the bad value" "$ERR" "(--value)"
bad "insert bare word value" "${G[@]}" insert --entity e --field f --value hello --source s
bad "insert duplicate keys" "${G[@]}" insert --entity e --field f --value '{"a":1,"a":2}' --source s
bad "insert metadata not an object" "${G[@]}" insert --entity e --field f --value 1 --source s --metadata '[1]' &&
    contains "library's metadata message" "$ERR" "metadata: must be a JSON object"
bad "insert bad --old" "${G[@]}" insert --entity e --field f --value 1 --old '{' --source s &&
    contains "old value named" "$ERR" "(--old)"
bad "insert empty valid interval" "${G[@]}" insert --entity e --field f --value 1 --source s \
    --valid-from 2025-01-02T00:00:00Z --valid-to 2025-01-01T00:00:00Z
bad "search bad JSON" "${G[@]}" search '{"a":' && contains "library's query message" "$ERR" "query: invalid JSON"
bad "search not an object" "${G[@]}" search '[1,2]' && contains "library's object message" "$ERR" "query: must be a JSON object"
bad_lib_line() {
    local what=$1 line=$2 want=$3
    printf '%s\n' '{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s"}' "$line" >"$TMP/in"
    STDIN=$TMP/in bad "stdin: $what" "${G[@]}" insert --stdin && contains "stdin: $what" "$ERR" "$want"
}
bad_lib_line "missing entity_id" '{"field_name":"f","new_value":1,"source_type":"s"}' "line 2: invalid argument: entity_id: required"
bad_lib_line "missing new_value" '{"entity_id":"e","field_name":"f","source_type":"s"}' "line 2: invalid argument: new_value: required"
bad_lib_line "missing source_type" '{"entity_id":"e","field_name":"f","new_value":1}' "line 2"
bad_lib_line "empty entity_id" '{"entity_id":"","field_name":"f","new_value":1,"source_type":"s"}' "line 2, column 14: invalid argument: entity_id: must not be empty"
bad_lib_line "empty valid interval" '{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s","valid_from":"2025-01-02T00:00:00Z","valid_to":"2025-01-01T00:00:00Z"}' "line 2"
bad_lib_line "metadata not an object" '{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s","metadata":"x"}' "line 2, column 78: invalid argument: metadata: must be a JSON object"
bad_lib_line "empty idempotency key" '{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s","idempotency_key":""}' "line 2"
bad_lib_line "entity_id too long" "{\"entity_id\":\"$(printf 'x%.0s' {1..1025})\",\"field_name\":\"f\",\"new_value\":1,\"source_type\":\"s\"}" "entity_id: longer than 1024 bytes"
bad_lib_line "bad nested value, at its column" '{"entity_id":"日本","field_name":"f","new_value":[1,,2],"source_type":"s"}' "line 2, column 48: invalid argument: new_value: invalid JSON"
equals "rejected lines wrote nothing" "$(rows)" 1
# The library's checks (pl_validate_changes) run before connecting: the
# same input against a server that does not exist is still a usage error.
bad "library check before connecting" "${NOPG[@]}" insert --entity e --field f --value '{' --source s &&
    contains "library check names the option" "$ERR" "new_value: invalid JSON" &&
    contains "library check names --value" "$ERR" "(--value)"
bad "unstorable number before connecting" "${NOPG[@]}" insert --entity e --field f --value 1e1000000 --source s &&
    contains "unstorable number named" "$ERR" "new_value: the number 1e1000000"
printf '%s\n' '{"entity_id":"e","field_name":"f","new_value":1,"source_type":"s"}' \
    '{"entity_id":"e","field_name":"f","new_value":1.5.5,"source_type":"s"}' >"$TMP/in"
STDIN=$TMP/in bad "stdin: library check before connecting" "${NOPG[@]}" insert --stdin &&
    contains "stdin: library check line" "$ERR" "line 2, column 47: invalid argument: new_value: invalid JSON"

# Numbers the library accepts are accepted on both paths, and kept.
run "insert 1e400 by option" 0 "${G[@]}" insert --entity huge_1 --field opt --value 1e400 --source api
printf '%s\n' '{"entity_id":"huge_1","field_name":"line","new_value":1e400,"source_type":"api","metadata":{"n":-2.5E-400}}' >"$TMP/in"
STDIN=$TMP/in run "insert 1e400 by JSON line" 0 "${G[@]}" insert --stdin
run "1e400 read back (option)" 0 "${G[@]}" current huge_1 opt && jcheck "1e400 kept (option)" 'J["new_value"] == 10**400'
run "1e400 read back (line)" 0 "${G[@]}" current huge_1 line && jcheck "1e400 kept (line)" 'J["new_value"] == 10**400'
run "search for 1e400" 0 "${G[@]}" search '{"n": -2.5E-400}' && jcheck "search 1e400" '[r["field_name"] for r in J["records"]] == ["line"]'
# Every line is checked by the library before the first is written, even
# across transactions: a bad value on line 5 of batches of 2 writes nothing.
BEFORE=$(rows)
for i in 1 2 3 4; do
    printf '{"entity_id":"multi_%d","field_name":"f","new_value":%d,"source_type":"s"}\n' "$i" "$i"
done >"$TMP/in"
echo '{"entity_id":"multi_5","field_name":"f","new_value":tru,"source_type":"s"}' >>"$TMP/in"
STDIN=$TMP/in bad "stdin: bad value in a later batch" "${G[@]}" insert --stdin --batch 2 &&
    contains "later batch line named" "$ERR" "line 5, column 53: invalid argument: new_value"
equals "a bad later line writes nothing" "$(rows)" "$BEFORE"
# Standard input that is not a terminal is read without --stdin.
printf '%s\n' '{"entity_id":"pipe_1","field_name":"f","new_value":"piped","source_type":"s"}' >"$TMP/in"
STDIN=$TMP/in run "insert reads a pipe without --stdin" 0 "${G[@]}" insert &&
    jcheck "pipe receipt" '[r["line"] for r in L] == [1]'
# A byte order mark before the first line is skipped.
printf '\xef\xbb\xbf{"entity_id":"bom_1","field_name":"f","new_value":"bom","source_type":"s"}\n' >"$TMP/in"
STDIN=$TMP/in run "insert skips a byte order mark" 0 "${G[@]}" insert --stdin
run "BOM line written" 0 "${G[@]}" current bom_1 f && jcheck "BOM line value" 'J["new_value"] == "bom"'

if run "current" 0 "${G[@]}" current cust_1 email; then
    jcheck "current record" "J['id'] == ${ID1:-0} and J['entity_id'] == 'cust_1' and J['field_name'] == 'email' and J['new_value'] == 'a@example.com' and J['old_value'] == 'old@example.com' and J['source_type'] == 'api' and J['change_reason'] == 'user request' and J['metadata']['import_batch_id'] == 'one' and J['valid_to'] is None and J['transaction_time'] == J['valid_from'] == '${TT1:-}'"
    contains "metadata numbers kept" "$OUT" '"n": 0.1'
fi
run "current not found" 3 "${G[@]}" current cust_1 phone && one_line_error "not found"
run "current unknown entity" 3 "${G[@]}" current nobody email && one_line_error "not found"
run "current realtime" 0 "${G[@]}" --realtime current cust_1 email && jcheck "realtime" "J['id'] == ${ID1:-0}"
run "options after arguments" 0 current cust_1 email "${G[@]}" && jcheck "global after" "J['id'] == ${ID1:-0}"
run "option=value form" 0 --schema="$SCHEMA" current cust_1 email && jcheck "--opt=value" "J['id'] == ${ID1:-0}"

# ENTITY and FIELD as --entity and --field.
run "current by options" 0 "${G[@]}" current --entity cust_1 --field email && jcheck "current by options" "J['id'] == ${ID1:-0}"
run "current: option agrees with argument" 0 "${G[@]}" current cust_1 email --entity cust_1 &&
    jcheck "agreeing option" "J['id'] == ${ID1:-0}"
run "history by --entity" 0 "${G[@]}" history --entity cust_1 --field email && jcheck "history by options" 'len(L) == 1'
run "as-of by options" 0 "${G[@]}" as-of cust_1 --field email --tx now && jcheck "as-of by --field" "J['id'] == ${ID1:-0}"
run "snapshot by --entity" 0 "${G[@]}" snapshot --entity cust_1 && jcheck "snapshot by option" "J['id'] == ${ID1:-0}"
run "range by options" 0 "${G[@]}" range --entity cust_1 --field email --from any && jcheck "range by options" 'len(L) == 1'

# Exact numbers: JSON values are passed through as written.
run "insert big number" 0 "${G[@]}" insert --entity num_1 --field big --value 123456789012345678901234567890 --source api
run "insert decimal" 0 "${G[@]}" insert --entity num_1 --field dec --value 0.1 --source api
run "current big" 0 "${G[@]}" current num_1 big && contains "big number kept" "$OUT" '"new_value":123456789012345678901234567890,'
run "current decimal" 0 "${G[@]}" current num_1 dec && contains "decimal kept" "$OUT" '"new_value":0.1,'
run "insert -- value" 0 "${G[@]}" insert --entity num_1 --field neg --value -5 --source api
run "current negative" 0 "${G[@]}" current num_1 neg && jcheck "negative" 'J["new_value"] == -5'

# Bitemporal: a value valid from the past, then a correction.
run "insert tier" 0 "${G[@]}" insert --entity cust_1 --field tier --value '"silver"' --source import \
    --valid-from 2020-01-01T00:00:00Z
jval TT_SILVER 'J["transaction_time"]'
sleep 0.01
run "insert correction" 0 "${G[@]}" insert --entity cust_1 --field tier --value '"gold"' --source support \
    --valid-from 2021-01-01T00:00:00Z --valid-to 2022-01-01T00:00:00Z
run "as-of now, 2021" 0 "${G[@]}" as-of cust_1 tier --tx now --valid 2021-06-01T00:00:00Z &&
    jcheck "as-of corrected" 'J["new_value"] == "gold" and J["valid_to"] == "2022-01-01T00:00:00.000000Z"'
run "as-of before correction" 0 "${G[@]}" as-of cust_1 tier --tx "$TT_SILVER" --valid 2021-06-01T00:00:00Z &&
    jcheck "as-of belief" 'J["new_value"] == "silver"'
run "as-of 2023" 0 "${G[@]}" as-of cust_1 tier --valid 2023-01-01T00:00:00Z && jcheck "as-of outside correction" 'J["new_value"] == "silver"'
run "as-of before anything" 3 "${G[@]}" as-of cust_1 tier --valid 2019-01-01T00:00:00Z && one_line_error "as-of not found"
run "as-of before the ledger knew" 3 "${G[@]}" as-of cust_1 tier --tx 2000-01-01T00:00:00Z --valid any
run "as-of any any" 0 "${G[@]}" as-of cust_1 tier --tx any --valid any && jcheck "as-of any" 'J["new_value"] == "gold"'
run "as-of with offset" 0 "${G[@]}" as-of cust_1 tier --valid 2021-06-01T02:00:00+02:00 && jcheck "offset" 'J["new_value"] == "gold"'

if run "snapshot" 0 "${G[@]}" snapshot cust_1; then
    jcheck "snapshot fields" '[r["field_name"] for r in L] == ["email", "tier"]'
fi
run "snapshot 2021" 0 "${G[@]}" snapshot cust_1 --valid 2021-06-01T00:00:00Z &&
    jcheck "snapshot at 2021" '[r["new_value"] for r in L] == ["gold"]'
run "snapshot unknown" 3 "${G[@]}" snapshot nobody && one_line_error "snapshot not found"

if run "history" 0 "${G[@]}" history cust_1; then
    jcheck "history order" 'len(L) == 3 and [(r["transaction_time"], r["id"]) for r in L] == sorted((r["transaction_time"], r["id"]) for r in L)'
fi
run "history field" 0 "${G[@]}" history cust_1 tier && jcheck "history field" '[r["new_value"] for r in L] == ["silver", "gold"]'
run "history unknown" 0 "${G[@]}" history nobody && equals "empty history prints nothing" "$OUT" ""
run "range all" 0 "${G[@]}" range cust_1 && jcheck "range all" 'len(L) == 3'
run "range from" 0 "${G[@]}" range cust_1 --from "$TT_SILVER" && jcheck "range from" '[r["field_name"] for r in L] == ["tier", "tier"]'
run "range to" 0 "${G[@]}" range cust_1 --to "$TT_SILVER" && jcheck "range to (exclusive)" '[r["field_name"] for r in L] == ["email"]'
run "range field" 0 "${G[@]}" range cust_1 email --from any --to now && jcheck "range field" 'len(L) == 1'
run "range empty" 0 "${G[@]}" range cust_1 --from 2000-01-01T00:00:00Z --to 2000-01-02T00:00:00Z &&
    equals "empty range" "$OUT" ""

# Tables for people.
if run "current table" 0 "${G[@]}" --format table current cust_1 email; then
    contains "table header" "$(head -1 <<<"$OUT")" "ID  ENTITY  FIELD  VALUE"
    contains "table row" "$OUT" "a@example.com"
fi
run "history table" 0 "${G[@]}" history cust_1 --format table && equals "table lines" "$(wc -l <<<"$OUT")" 4
if grep -q ' $' <<<"$OUT"; then fail "table lines end in blanks"; else ok; fi

# Wide (CJK, emoji) and combining characters are aligned by display width,
# whatever the locale.
run "insert wide field" 0 "${G[@]}" insert --entity wide_1 --field 名前 --value '"日本語のテキスト"' --source api
run "insert emoji" 0 "${G[@]}" insert --entity wide_1 --field x --value '"🎉ok"' --source 'café'
run "insert combining" 0 "${G[@]}" insert --entity wide_1 --field 'é' --value '"plain"' --source api
RUN_ENV=(LC_ALL=C)
if run "wide table" 0 "${G[@]}" --format table history wide_1; then
    printf '%s\n' "$OUT" >"$TMP/wide"
    WIDTHS=$(python3 - "$TMP/wide" <<'PY'
import re, sys, unicodedata
def width(s):
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in s)
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
# The display column where VALID_FROM starts, in the header and each row.
cols = [width(lines[0][:lines[0].index("VALID_FROM")])]
cols += [width(l[:re.search(r"\d{4}-\d\d-\d\dT", l).start()]) for l in lines[1:]]
print(" ".join(map(str, cols)))
PY
)
    read -r -a W <<<"$WIDTHS"
    if [[ ${#W[@]} -eq 4 && ${W[1]} == "${W[0]}" && ${W[2]} == "${W[0]}" && ${W[3]} == "${W[0]}" ]]; then ok; else
        fail "wide characters misalign the table (VALID_FROM at display columns $WIDTHS):"$'\n'"$OUT"
    fi
fi
RUN_ENV=()

# ---------------------------------------------------------------------------
# insert --stdin
# ---------------------------------------------------------------------------

gen_lines() { # gen_lines N ENTITY BATCHID
    python3 - "$@" <<'PY'
import json, sys
n, entity, batch = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for i in range(n):
    print(json.dumps({"entity_id": "%s_%d" % (entity, i % 7), "field_name": "f%d" % (i % 3),
                      "new_value": {"i": i, "s": "v\u00e9\n%d" % i}, "source_type": "bulk",
                      "change_reason": "load %s" % batch,
                      "metadata": {"import_batch_id": batch, "entity_type": "cust"}}))
PY
}

# 5 good lines and 1 bad one: nothing written, exit 2, the bad line named.
BEFORE=$(rows)
{
    gen_lines 3 good b0
    echo '{"entity_id":"x","field_name":"f","new_value":1,"source_type":"bulk","valid_to":"tomorrow"}'
    gen_lines 2 good b0
} >"$TMP/six"
STDIN=$TMP/six run "stdin with one bad line" 2 "${G[@]}" insert --stdin &&
    one_line_error "stdin bad line" && contains "bad line named" "$ERR" "line 4"
equals "a bad line writes nothing" "$(rows)" "$BEFORE"

# The same 5 good lines (and a blank one) are written, receipts name lines.
{
    gen_lines 3 good b0
    echo
    gen_lines 2 good b0
} >"$TMP/five"
if STDIN=$TMP/five run "stdin five lines" 0 "${G[@]}" insert --stdin; then
    jcheck "stdin receipts" '[r["line"] for r in L] == [1, 2, 3, 5, 6] and len({r["id"] for r in L}) == 5'
    # Lines 1 and 5 change one entity (good_0), as do 2 and 6 (good_1).
    jcheck "stdin receipts per entity in line order" 'L[0]["transaction_time"] < L[3]["transaction_time"] and L[1]["transaction_time"] < L[4]["transaction_time"]'
    equals "no progress bar off a terminal" "$ERR" ""
fi
equals "five written" "$(rows)" $((BEFORE + 5))
run "stdin values round trip" 0 "${G[@]}" history good_0 f0 &&
    jcheck "unicode and newline kept" 'L[0]["new_value"] == {"i": 0, "s": "v\u00e9\n0"} and L[0]["change_reason"] == "load b0"'

# Batches: 25 lines in transactions of 10.
gen_lines 25 batch b1 >"$TMP/25"
STDIN=$TMP/25 run "stdin batches" 0 "${G[@]}" insert --stdin --batch 10 && jcheck "25 receipts" 'len(L) == 25'
gen_lines 12 batch b2 >"$TMP/12"
STDIN=$TMP/12 run "stdin --count" 0 "${G[@]}" insert --stdin --batch 5 --count && jcheck "count" 'J == {"inserted": 12}'
STDIN=/dev/null run "stdin empty" 0 "${G[@]}" insert --stdin --count && jcheck "count 0" 'J == {"inserted": 0}'
STDIN=$TMP/12 run "stdin table" 0 "${G[@]}" --format table insert --stdin --batch 5 &&
    equals "receipt table lines" "$(wc -l <<<"$OUT")" 13

# A batch that fails is written not at all; earlier batches stay.
BEFORE=$(rows)
{
    gen_lines 4 conflict b3
    echo '{"entity_id":"conflict_x","field_name":"f","new_value":1,"source_type":"bulk"}'
    echo '{"entity_id":"conflict_y","field_name":"f","new_value":1,"source_type":"bulk","idempotency_key":"k-1"}'
    gen_lines 2 conflict b3
} >"$TMP/conflict"
STDIN=$TMP/conflict run "stdin failing batch" 1 "${G[@]}" insert --stdin --batch 4 &&
    contains "failure names lines" "$ERR" "lines 5-8 not written, 4 earlier changes committed"
if [[ $(printf '%s\n' "$ERR" | wc -l) -eq 1 ]]; then ok; else fail "failing batch: more than one stderr line: $ERR"; fi
jcheck "first batch receipts printed" 'len(L) == 4'
equals "first batch committed, second not" "$(rows)" $((BEFORE + 4))

# Idempotency keys through stdin: a rerun lands nothing twice.
python3 -c '
import json
for i in range(6):
    print(json.dumps({"entity_id": "idem_%d" % i, "field_name": "f", "new_value": i,
                      "source_type": "bulk", "idempotency_key": "idem-%d" % i}))' >"$TMP/idem"
STDIN=$TMP/idem run "stdin idempotent" 0 "${G[@]}" insert --stdin --batch 4
FIRST=$OUT
STDIN=$TMP/idem run "stdin idempotent rerun" 0 "${G[@]}" insert --stdin --batch 4
equals "rerun gives the same receipts" "$OUT" "$FIRST"
equals "rerun wrote nothing" "$(rows "entity_id LIKE 'idem_%'")" 6

# A progress bar when stderr is a terminal.
if command -v script >/dev/null; then
    gen_lines 30 tty b4 >"$TMP/tty"
    script -qec "$(printf '%q ' "${WRAP[@]}" "$BIN" "${G[@]}" insert --stdin --batch 10 --count) <$(printf '%q' "$TMP/tty") >$(printf '%q' "$TMP/ttyout")" /dev/null >"$TMP/ttyerr" 2>&1
    contains "progress bar on a terminal" "$(cat "$TMP/ttyerr")" "100% 30/30"
    contains "count beside the progress bar" "$(cat "$TMP/ttyout")" '"inserted":30'
    # On a terminal the default format is a table; elsewhere JSON.
    script -qec "$(printf '%q ' "${WRAP[@]}" "$BIN" "${G[@]}" current cust_1 tier)" /dev/null >"$TMP/ttyout" 2>&1
    contains "table by default on a terminal" "$(cat "$TMP/ttyout")" "ID  ENTITY  FIELD"
    run "JSON by default off a terminal" 0 "${G[@]}" current cust_1 tier && jcheck "JSON default" 'J["field_name"] == "tier"'
fi

# ---------------------------------------------------------------------------
# Redis: a write through the tool invalidates what the tool cached
# ---------------------------------------------------------------------------

if [[ -n ${PL_TEST_REDIS:-} ]]; then
    R=("${G[@]}" --redis "$PL_TEST_REDIS" --cache-prefix "$PREFIX")
    run "cached read" 0 "${R[@]}" current cust_1 email
    run "cached read again" 0 "${R[@]}" current cust_1 email && jcheck "cached value" 'J["new_value"] == "a@example.com"'
    run "write through cache" 0 "${R[@]}" insert --entity cust_1 --field email --value '"c@example.com"' --source api
    run "read after write" 0 "${R[@]}" current cust_1 email && jcheck "no stale cache" 'J["new_value"] == "c@example.com"'
    RUN_ENV=(PROVLEDGER_REDIS_URL="$PL_TEST_REDIS" PROVLEDGER_CACHE_PREFIX="$PREFIX")
    run "cache from environment" 0 "${G[@]}" current cust_1 email &&
        jcheck "cache from environment" 'J["new_value"] == "c@example.com"'
    RUN_ENV=()
fi

# Settings from the environment and an explicit conninfo.
RUN_ENV=(PROVLEDGER_SCHEMA="$SCHEMA")
run "schema from environment" 0 current cust_1 tier && jcheck "env schema" 'J["new_value"] == "silver"'
RUN_ENV=(-u PGHOST -u PGPORT -u PGDATABASE -u PGUSER)
run "explicit --pg without PG variables" 0 --pg "$PL_TEST_PG" "${G[@]}" current cust_1 tier &&
    jcheck "--pg" 'J["new_value"] == "silver"'
run "no PG variables, no --pg" 1 "${G[@]}" --pg "dbname=provledger_test host=/nonexistent" current cust_1 tier &&
    one_line_error "no server"
RUN_ENV=(PROVLEDGER_SCHEMA="${SCHEMA}_env")
run "migrate a schema from the environment" 0 migrate && jcheck "env migrate" "J['schema'] == '${SCHEMA}_env'"
RUN_ENV=()

# ---------------------------------------------------------------------------
# stats, search, audit
# ---------------------------------------------------------------------------

if run "stats" 0 "${G[@]}" stats; then
    jcheck "stats keys" "J['schema_version'] == ${SV:-0} and J['pool_size'] == 2 and {'cache_hits', 'queries', 'inserts', 'cache_hit_rate', 'reconnects'} <= set(J)"
fi
run "stats table" 0 "${G[@]}" --format table stats && contains "stats table" "$OUT" "pool_size"

# Search pages through every record of batch b1 (25 records).
seen=0 n=0 next=""
pages=0
cursor=()
while :; do
    if ! run "search page" 0 "${G[@]}" search '{"import_batch_id":"b1"}' --limit 10 "${cursor[@]}"; then
        break
    fi
    jcheck "search page shape" 'set(J) == {"records", "next_cursor"} and all(r["metadata"]["import_batch_id"] == "b1" for r in J["records"])'
    jval n 'len(J["records"])'
    seen=$((seen + n))
    pages=$((pages + 1))
    jval next 'J["next_cursor"]'
    if [[ -z $next || $pages -gt 10 ]]; then
        break
    fi
    cursor=(--cursor "$next")
done
equals "search found every record" "$seen" 25
equals "search pages" "$pages" 3
# The cursor depends on the query, not on how it is typed.
run "search compact" 0 "${G[@]}" search '{"import_batch_id":"b1","entity_type":"cust"}' --limit 10 &&
    jval C1 'J["next_cursor"]'
run "search spaced, other key order" 0 "${G[@]}" search '{ "entity_type" : "cust",  "import_batch_id": "b1" }' --limit 10 &&
    jval C2 'J["next_cursor"]'
equals "same cursor whatever the whitespace" "${C2:-}" "${C1:-}"
run "search: compact query's cursor with the spaced query" 0 "${G[@]}" search '{"import_batch_id": "b1", "entity_type": "cust"}' --limit 10 --cursor "${C1:-x}" &&
    jcheck "second page from the other spelling" 'len(J["records"]) == 10'
run "search: the same second page" 0 "${G[@]}" search '{"entity_type":"cust","import_batch_id":"b1"}' --limit 10 --cursor "${C2:-x}"
P2=$OUT
run "search: the same second page, spelled another way" 0 "${G[@]}" search '{"import_batch_id":"b1",  "entity_type":"cust"}' --limit 10 --cursor "${C1:-x}" &&
    equals "pages agree" "$OUT" "$P2"
run "search: a cursor of another query" 2 "${G[@]}" search '{"import_batch_id":"b2"}' --cursor "${C1:-x}" &&
    contains "cursor of another query" "$ERR" "not a cursor of this query"
run "search newest first" 0 "${G[@]}" search '{"import_batch_id":"b1"}' --limit 25 &&
    jcheck "search order" '[(r["transaction_time"], r["id"]) for r in J["records"]] == sorted(((r["transaction_time"], r["id"]) for r in J["records"]), reverse=True)'
run "search nothing" 0 "${G[@]}" search '{"import_batch_id":"none"}' && jcheck "search empty" 'J == {"records": [], "next_cursor": None}'
run "search table" 0 "${G[@]}" --format table search '{"import_batch_id":"b2"}' && contains "search table" "$OUT" "next cursor:"

# history and range: streamed without --limit; with it one page, then one
# line {"next_cursor": C}; cursors bound to their query.
gen_lines 70 pg b3 >"$TMP/70"
STDIN=$TMP/70 run "page entity" 0 "${G[@]}" insert --stdin --batch 70 --count && jcheck "70 inserted" 'J == {"inserted": 70}'
HIDS=""
if run "history streamed" 0 "${G[@]}" history pg_0; then
    jcheck "streamed oldest first" 'len(L) == 10 and [(r["transaction_time"], r["id"]) for r in L] == sorted((r["transaction_time"], r["id"]) for r in L)'
    jval HIDS '",".join(str(r["id"]) for r in L)'
fi
run "history streamed newest first" 0 "${G[@]}" history pg_0 --newest-first &&
    jcheck "newest first" '",".join(str(r["id"]) for r in reversed(L)) == "'"$HIDS"'"'
for order in "" --newest-first; do
    PIDS="" pages=0 cursor=()
    while :; do
        run "history page $order" 0 "${G[@]}" history pg_0 --limit 4 $order "${cursor[@]}" || break
        jcheck "page shape" 'set(L[-1]) == {"next_cursor"} and 1 <= len(L) <= 5 and all("id" in r for r in L[:-1])'
        jval ids '",".join(str(r["id"]) for r in L[:-1])'
        PIDS+=${PIDS:+${ids:+,}}$ids
        jval next 'L[-1]["next_cursor"] or ""'
        pages=$((pages + 1))
        [[ -n $next && $pages -lt 10 ]] || break
        cursor=(--cursor "$next")
    done
    equals "history pages $order" "$pages" 3
    if [[ -z $order ]]; then
        equals "pages are the history" "$PIDS" "$HIDS"
    else
        equals "newest-first pages are the history reversed" "$PIDS" "$(tr , '\n' <<<"$HIDS" | tac | paste -sd,)"
    fi
done
run "history last page" 0 "${G[@]}" history pg_0 --limit 10 && jcheck "full last page" 'len(L) == 11 and L[-1] == {"next_cursor": None}'
run "history page of a field" 0 "${G[@]}" history pg_0 f0 --limit 2 && jval FC 'L[-1]["next_cursor"]' &&
    jcheck "field page" 'all(r["field_name"] == "f0" for r in L[:-1]) and len(L) == 3'
run "history --cursor alone: limit 100" 0 "${G[@]}" history pg_0 f0 --cursor "${FC:-x}" &&
    jcheck "rest of the field" 'all(r["field_name"] == "f0" for r in L[:-1]) and L[-1] == {"next_cursor": None}'
run "history: a cursor of another field" 2 "${G[@]}" history pg_0 f1 --cursor "${FC:-x}" &&
    contains "cursor of another query" "$ERR" "not a cursor of this query"
run "history: a cursor of another order" 2 "${G[@]}" history pg_0 f0 --newest-first --cursor "${FC:-x}"
run "range: a history cursor" 2 "${G[@]}" range pg_0 f0 --cursor "${FC:-x}"
run "history: garbage cursor" 2 "${G[@]}" history pg_0 --cursor garbage && one_line_error "garbage cursor"
run "history: --limit 0" 2 "${G[@]}" history pg_0 --limit 0
run "history: empty --cursor" 2 "${G[@]}" history pg_0 --cursor ''
run "history page table" 0 "${G[@]}" --format table history pg_0 --limit 3 && contains "page table" "$OUT" "next cursor: p1:"
FROM3=""
run "history for range" 0 "${G[@]}" history pg_0 && jval FROM3 'L[3]["transaction_time"]' && jval TO8 'L[8]["transaction_time"]'
run "range streamed newest first" 0 "${G[@]}" range pg_0 --from "${FROM3:-any}" --to "${TO8:-any}" --newest-first &&
    jcheck "range window newest first" 'len(L) == 5 and L[0]["transaction_time"] > L[-1]["transaction_time"]'
run "range page" 0 "${G[@]}" range pg_0 --from "${FROM3:-any}" --to "${TO8:-any}" --limit 3 && jval RC 'L[-1]["next_cursor"]' &&
    jcheck "range page" 'len(L) == 4 and L[0]["transaction_time"] == "'"${FROM3:-}"'"'
run "range next page" 0 "${G[@]}" range pg_0 --from "${FROM3:-any}" --to "${TO8:-any}" --limit 3 --cursor "${RC:-x}" &&
    jcheck "range rest" 'len(L) == 3 and L[-1] == {"next_cursor": None}'
run "range: a cursor of another window" 2 "${G[@]}" range pg_0 --from "${FROM3:-any}" --limit 3 --cursor "${RC:-x}"

TOTAL=$(rows)
run "audit all" 0 "${G[@]}" audit &&
    jcheck "audit all" "len(L) == $TOTAL and [(r['transaction_time'], r['id']) for r in L] == sorted((r['transaction_time'], r['id']) for r in L)"
BULK=$(rows "source_type = 'bulk'")
run "audit source" 0 "${G[@]}" audit --source bulk --from any --to now &&
    jcheck "audit source" "len(L) == $BULK and all(r['source_type'] == 'bulk' for r in L)"
run "audit window" 0 "${G[@]}" audit --from 2000-01-01T00:00:00Z --to 2000-02-01T00:00:00Z && equals "audit empty" "$OUT" ""
run "audit table" 0 "${G[@]}" --format table audit --source api && contains "audit table" "$OUT" "TRANSACTION_TIME"

# ---------------------------------------------------------------------------
# dashboards (compared with the same aggregates in SQL)
# ---------------------------------------------------------------------------

if run "dashboard changes" 0 "${G[@]}" dashboard changes --from 2000-01-01T00:00:00Z --to now; then
    WANT=$(sql "SELECT count(*) FROM $SCHEMA.provenance_ledger WHERE transaction_time >= '2000-01-01'")
    jcheck "dashboard changes total" "isinstance(J, list) and sum(r['changes'] for r in J) == $WANT"
    WANT=$(sql "SELECT count(DISTINCT entity_id) FROM $SCHEMA.provenance_ledger
                WHERE source_type = 'bulk' AND transaction_time::date = (now() AT TIME ZONE 'UTC')::date")
    jcheck "dashboard entities" "[r['entities'] for r in J if r['source_type'] == 'bulk' and r['day'] == max(x['day'] for x in J)] == [$WANT]"
fi
run "dashboard changes by source" 0 "${G[@]}" dashboard changes --from any --to now --source bulk &&
    jcheck "dashboard source" "all(r['source_type'] == 'bulk' for r in J) and sum(r['changes'] for r in J) == $BULK"
run "dashboard allow-stale" 0 "${G[@]}" --allow-stale dashboard changes --from any --to now
# The rollup: a step adds every record; the dashboards stay equal to SQL.
if run "rollup" 0 "${G[@]}" rollup; then
    WANT=$(sql "SELECT count(*) FROM $SCHEMA.provenance_ledger")
    jcheck "rollup adds every record" "J == {'rolled': $WANT}"
fi
run "rollup again" 0 "${G[@]}" rollup && jcheck "rollup again adds none" "J == {'rolled': 0}"
bad "rollup --interval-ms without --follow" "${G[@]}" rollup --interval-ms 5
if run "dashboard changes, rolled up" 0 "${G[@]}" dashboard changes --from 2000-01-01T00:00:00Z --to now; then
    WANT=$(sql "SELECT count(*) FROM $SCHEMA.provenance_ledger WHERE transaction_time >= '2000-01-01'")
    jcheck "dashboard changes total, rolled up" "sum(r['changes'] for r in J) == $WANT"
fi
if run "dashboard corrections" 0 "${G[@]}" dashboard corrections --from any --to now; then
    WANT=$(sql "SELECT count(*) FROM $SCHEMA.provenance_ledger WHERE valid_time_start < transaction_time")
    jcheck "corrections total" "isinstance(J, list) and sum(r['corrections'] for r in J) == $WANT"
    jcheck "corrections of cust tier" "any(r['entity_type'] == 'cust' and r['field_name'] == 'tier' and r['corrections'] == 2 for r in J)"
fi
run "dashboard table" 0 "${G[@]}" --format table dashboard changes --from any --to now && contains "dashboard table" "$OUT" "SOURCE_TYPE"

# ---------------------------------------------------------------------------
# partitions, refresh, health
# ---------------------------------------------------------------------------

if run "partitions" 0 "${G[@]}" partitions; then
    jcheck "partitions list" 'isinstance(J, list) and len(J) >= 4 and all(r["attached"] is True for r in J)'
    jval NPART 'len(J)'
fi
run "partitions ensure" 0 "${G[@]}" partitions --ensure 8 && jcheck "ensure" "J['created'] == 8 + 1 - ${NPART:-0}"
run "partitions ensure again" 0 "${G[@]}" partitions --ensure 8 && jcheck "ensure idempotent" 'J == {"created": 0}'
# An old month, to archive and bring back.
sql "SELECT $SCHEMA.pl_ensure_partition('2020-01-15')" >/dev/null
run "partitions detach" 0 "${G[@]}" partitions --detach-before 2020-03-01T00:00:00Z && jcheck "detached one" 'J == {"detached": 1}'
run "partitions after detach" 0 "${G[@]}" partitions &&
    jcheck "detached listed" '[r["attached"] for r in J if r["name"] == "provenance_ledger_2020_01"] == [False]'
run "partitions attach" 0 "${G[@]}" partitions --attach provenance_ledger_2020_01 &&
    jcheck "attached" 'J == {"attached": "provenance_ledger_2020_01"}'
run "partitions attach unknown" 3 "${G[@]}" partitions --attach provenance_ledger_1999_01 && one_line_error "attach unknown"
run "partitions table" 0 "${G[@]}" --format table partitions && contains "partitions table" "$OUT" "TOTAL_BYTES"
equals "no row lost" "$(rows)" "$TOTAL"

if run "refresh" 0 "${G[@]}" refresh; then
    jcheck "refresh freshness" 'isinstance(J, list) and {r["view_name"] for r in J} >= {"provenance_latest", "provenance_daily_stats"}'
fi
# Whole UTC days, within the 90 days the daily view covers: after a refresh
# it may answer, and says so.
TOMORROW=$(date -u -d tomorrow +%Y-%m-%dT00:00:00Z)
MONTH_AGO=$(date -u -d '30 days ago' +%Y-%m-%dT00:00:00Z)
run "dashboard exact" 0 "${G[@]}" dashboard changes --from "$MONTH_AGO" --to "$TOMORROW"
EXACT=$OUT
if run "dashboard from the view" 0 "${G[@]}" --allow-stale dashboard changes --from "$MONTH_AGO" --to "$TOMORROW"; then
    contains "view answer noted" "$ERR" "answered by the materialized view, stale by up to"
    equals "view answer equals the exact one after a refresh" "$OUT" "$EXACT"
fi
run "dashboard realtime" 0 "${G[@]}" --realtime dashboard changes --from "$MONTH_AGO" --to "$TOMORROW" &&
    equals "no note for exact answers" "$ERR" ""
run "refresh status" 0 "${G[@]}" refresh --status && jcheck "status" 'all(r["last_error"] is None for r in J)'
if run "refresh schedule" 0 "${G[@]}" refresh --schedule '17 * * * *'; then
    jcheck "schedule" 'J == {"schedule": "17 * * * *"}'
    equals "pg_cron job" "$(sql "SELECT count(*) FROM cron.job WHERE schedule = '17 * * * *'")" 1
fi
run "refresh unschedule" 0 "${G[@]}" refresh --unschedule && jcheck "unschedule" 'J == {"schedule": None}'
equals "pg_cron job removed" "$(sql "SELECT count(*) FROM cron.job WHERE schedule = '17 * * * *'")" 0

run "health" 0 "${G[@]}" health && jcheck "health" 'isinstance(J, dict) and isinstance(J.get("alerts"), list)'
run "health table" 0 "${G[@]}" --format table health && contains "health indented" "$OUT" $'\n  "'

# ---------------------------------------------------------------------------
# output errors
# ---------------------------------------------------------------------------

if [[ -w /dev/full ]]; then
    "${WRAP[@]}" "$BIN" version >/dev/full 2>"$TMP/err"
    RC=$?
    equals "write error status" "$RC" 1
    contains "write error message" "$(cat "$TMP/err")" "provledger: version: cannot write"
fi

echo "check_cli.sh: $CHECKS checks passed, $FAILS failed"
[[ $FAILS -eq 0 ]]
