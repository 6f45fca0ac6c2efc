#!/usr/bin/env bash
# The example programs end to end, as a developer who copies them would
# build them: the library is installed into a temporary prefix, and each of
# examples/{ledger_service,bulk_import,audit_export,offline_audit}.c is
# compiled against it with `cc $(pkg-config --cflags --libs provledger ...)`
# and -std=c11 -pedantic -Wall -Wextra -Werror, then run against the
# servers of tests/servers.sh, in a schema of its own:
#
#   bash tests/servers.sh run --no-replica -- meson test -C build examples
#
#   service   8 concurrent POSTs with distinct Idempotency-Keys and 8 GETs at
#             once; statuses and bodies; a repeated POST appends nothing;
#             400, 404, 409; history paging; SIGTERM exits 0
#   import    20,000 JSON lines, SIGKILLed past 30%, run again: every record
#             exactly once (compared with the input through psql); a CSV
#             with quoted commas, quotes and line breaks
#   export    the CSV of a period equals PostgreSQL's COPY ... CSV of the
#             same query, byte for byte
#   offline   seal, checkpoint, export and prove with the CLI; the audit
#             passes with no database in reach, and fails (exit 1) after one
#             byte of a value in the export is changed
#
# Usage: tests/check_examples.sh SOURCE_ROOT PROVLEDGER_BIN
# Environment: EXAMPLES_DIR (default SOURCE_ROOT/examples) to test other
# copies of the examples (for showing that a broken one fails).
# Exits 77 (skip) when PL_TEST_PG is not set, 1 when a check failed.
set -uo pipefail

(($# == 2)) || { echo "usage: $0 SOURCE_ROOT PROVLEDGER_BIN" >&2; exit 2; }
if [[ -z ${PL_TEST_PG:-} ]]; then
    echo "check_examples: PL_TEST_PG is not set: run under tests/servers.sh (skipping)" >&2
    exit 77
fi
src=$(cd -- "$1" && pwd)
BIN=$2
EX=${EXAMPLES_DIR:-$src/examples}
cc=${CC:-cc}
PSQL=${PL_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}/psql
SCHEMA=ex_test_$$
export PROVLEDGER_SCHEMA=$SCHEMA

tmp=$(mktemp -d)
SVC_PID=""
cleanup() {
    [[ -z $SVC_PID ]] || kill -KILL "$SVC_PID" 2>/dev/null
    "$PSQL" "$PL_TEST_PG" -qAtX -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1
    rm -rf -- "$tmp"
}
trap cleanup EXIT

FAILS=0
ok() { echo "ok    $*"; }
bad() { echo "FAIL  $*" >&2; FAILS=$((FAILS + 1)); }
expect() { # expect DESCRIPTION GOT WANT
    if [[ $2 == "$3" ]]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi
}
sql() { "$PSQL" "$PL_TEST_PG" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
cli() { "$BIN" --pg "$PL_TEST_PG" --schema "$SCHEMA" "$@"; }

# ---------------------------------------------------------------------------
# 1. Install the library, build the examples against the prefix
# ---------------------------------------------------------------------------
prefix=$tmp/prefix
{ meson setup "$tmp/build" "$src" --prefix="$prefix" -Dtests=false &&
    ninja -C "$tmp/build" && meson install -C "$tmp/build" --no-rebuild; } >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; echo "check_examples: FAIL: installing the library" >&2; exit 1; }
pc=$(find "$prefix" -name provledger.pc -print -quit)
export PKG_CONFIG_PATH=$(dirname -- "$pc")
libdir=$(dirname -- "$PKG_CONFIG_PATH")
export LD_LIBRARY_PATH=$libdir

build() { # build NAME PKG...
    local name=$1
    shift
    # shellcheck disable=SC2046 # the flags are words
    if "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -o "$tmp/$name" "$EX/$name.c" \
        $(pkg-config --cflags --libs provledger "$@") 2>"$tmp/$name.cc.log"; then
        ok "$name builds against the installed library with pkg-config"
    else
        cat "$tmp/$name.cc.log" >&2
        bad "$name does not build"
        return 1
    fi
}
build bulk_import jansson
build audit_export
build offline_audit jansson
have_mhd=0
if pkg-config --exists libmicrohttpd; then
    build ledger_service jansson libmicrohttpd && have_mhd=1
else
    echo "skip  ledger_service: libmicrohttpd is not installed (Debian: libmicrohttpd-dev)"
fi
"$BIN" --pg "$PL_TEST_PG" --schema "$SCHEMA" migrate >/dev/null || { echo "migrate failed" >&2; exit 1; }

# ---------------------------------------------------------------------------
# 2. ledger_service
# ---------------------------------------------------------------------------
test_service() {
    "$tmp/ledger_service" 0 "$PL_TEST_PG" "${PL_TEST_REDIS:-}" >"$tmp/svc.out" 2>"$tmp/svc.err" &
    SVC_PID=$!
    local url="" i
    for ((i = 0; i < 100; i++)); do
        url=$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$tmp/svc.out")
        [[ -n $url ]] && break
        sleep 0.1
    done
    [[ -n $url ]] || { cat "$tmp/svc.err" >&2; bad "the service did not start"; return; }
    ok "service listening on $url"

    # post KEY FILE OUT -> prints the HTTP status
    post() { curl -sS -o "$3" -w '%{http_code}' -X POST -H "Idempotency-Key: $1" \
        --data-binary @"$2" "$url/changes"; }
    get() { curl -sS -o "$2" -w '%{http_code}' "$url$1"; }

    printf '{"entity_id":"svc_seed","field_name":"name","new_value":"Seed, \\"one\\"","source_type":"api"}\n' \
        >"$tmp/seed.jsonl"
    expect "POST seed" "$(post seed "$tmp/seed.jsonl" "$tmp/seed.out")" 200
    local seed_tt
    seed_tt=$(jq -r '.receipts[0].transaction_time' "$tmp/seed.out")

    # 8 POSTs of 5 changes each and 8 GETs, all at once.
    local -a pids=()
    for i in 1 2 3 4 5 6 7 8; do
        for f in 1 2 3 4 5; do
            printf '{"entity_id":"svc_e%d","field_name":"f%d","new_value":{"n":%d},"source_type":"api"}\n' \
                "$i" "$f" "$((i * 10 + f))"
        done >"$tmp/body$i.jsonl"
        (post "k$i" "$tmp/body$i.jsonl" "$tmp/post$i.out" >"$tmp/post$i.code") &
        pids+=($!)
        (get /entities/svc_seed/fields/name "$tmp/get$i.out" >"$tmp/get$i.code") &
        pids+=($!)
    done
    wait "${pids[@]}"
    local bad_posts=0 bad_gets=0
    for i in 1 2 3 4 5 6 7 8; do
        [[ $(cat "$tmp/post$i.code") == 200 && $(jq '.receipts | length' "$tmp/post$i.out") == 5 ]] ||
            bad_posts=$((bad_posts + 1))
        [[ $(cat "$tmp/get$i.code") == 200 && $(jq -r .new_value "$tmp/get$i.out") == 'Seed, "one"' ]] ||
            bad_gets=$((bad_gets + 1))
    done
    expect "8 concurrent POSTs: 200 with 5 receipts each" "$bad_posts failed" "0 failed"
    expect "8 concurrent GETs: 200 with the value" "$bad_gets failed" "0 failed"
    expect "records after the POSTs" "$(sql "SELECT count(*) FROM $SCHEMA.provenance_ledger WHERE entity_id LIKE 'svc_%'")" 41

    # The same request again: the same receipts, nothing appended.
    expect "repeated POST k3" "$(post k3 "$tmp/body3.jsonl" "$tmp/again.out")" 200
    expect "repeated POST returns the original receipts" "$(jq -c '[.receipts[].id]' "$tmp/again.out")" \
        "$(jq -c '[.receipts[].id]' "$tmp/post3.out")"
    expect "records after the repeated POST" "$(sql "SELECT count(*) FROM $SCHEMA.provenance_ledger WHERE entity_id LIKE 'svc_%'")" 41
    # The same key for other content is a conflict, and writes nothing.
    expect "POST k3 with another body is 409" "$(post k3 "$tmp/body4.jsonl" "$tmp/c.out")" 409
    expect "409 body names the error" "$(jq -r .code "$tmp/c.out")" -7

    # Bad input is 400 with the library's message; nothing written.
    printf '{"entity_id":"svc_bad","field_name":"f","new_value":1,"source_type":"api"}\n{"entity_id":"svc_bad","field_name":"f","source_type":"api"}\n' \
        >"$tmp/bad.jsonl"
    expect "POST with a change lacking new_value is 400" "$(post kb "$tmp/bad.jsonl" "$tmp/b.out")" 400
    expect "400 body has pl_errmsg(): $(jq -r .message "$tmp/b.out")" "$(jq -r '.message | test("^line 2: changes\\[1\\]\\.new_value")' "$tmp/b.out")" true
    printf 'not json\n' >"$tmp/bad2.jsonl"
    expect "POST of a line that is not JSON is 400" "$(post kb2 "$tmp/bad2.jsonl" "$tmp/b2.out")" 400
    expect "POST without Idempotency-Key is 400" \
        "$(curl -sS -o /dev/null -w '%{http_code}' --data-binary @"$tmp/seed.jsonl" "$url/changes")" 400
    expect "nothing of the bad batch was written" "$(sql "SELECT count(*) FROM $SCHEMA.provenance_ledger WHERE entity_id = 'svc_bad'")" 0
    expect "GET with a bad as_of is 400" "$(get '/entities/svc_seed/fields/name?as_of=yesterday' "$tmp/g.out")" 400

    # 404: unknown entity, unknown field, no answer at that time.
    expect "GET of an unknown entity is 404" "$(get /entities/nobody/fields/name "$tmp/g.out")" 404
    expect "404 body" "$(jq -r .error "$tmp/g.out" | grep -c .)" 1
    expect "history of an unknown entity is 404" "$(get /entities/nobody/history "$tmp/g.out")" 404
    expect "as_of before the seed is 404" \
        "$(get '/entities/svc_seed/fields/name?as_of=2000-01-01T00:00:00Z' "$tmp/g.out")" 404
    expect "as_of the seed's time, valid_at any" \
        "$(get "/entities/svc_seed/fields/name?as_of=$seed_tt&valid_at=any" "$tmp/g.out")" 200

    # History in pages of 2: 5 records in 3 pages, the last cursor null.
    local cursor="" pages=0 seen=0 q
    while :; do
        q="limit=2${cursor:+&cursor=$(jq -rn --arg c "$cursor" '$c|@uri')}"
        [[ $(get "/entities/svc_e2/history?$q" "$tmp/h.out") == 200 ]] || break
        pages=$((pages + 1))
        seen=$((seen + $(jq '.records | length' "$tmp/h.out")))
        cursor=$(jq -r '.next_cursor // empty' "$tmp/h.out")
        [[ -n $cursor && $pages -lt 10 ]] || break
    done
    expect "history pages of 2: pages, records" "$pages, $seen" "3, 5"
    expect "a forged cursor is 400" "$(get '/entities/svc_e2/history?cursor=p1:1:2:abc' "$tmp/g.out")" 400

    kill -TERM "$SVC_PID"
    local rc=0
    wait "$SVC_PID" || rc=$?
    SVC_PID=""
    expect "SIGTERM: the service exits 0" "$rc" 0
}
if ((have_mhd)); then test_service; fi

# ---------------------------------------------------------------------------
# 3. bulk_import: SIGKILL half way, run again, every record exactly once
# ---------------------------------------------------------------------------
test_import() {
    local n=20000 input=$tmp/records.jsonl
    awk -v n=$n 'BEGIN { for (i = 1; i <= n; i++)
        printf "{\"entity_id\":\"imp_%d\",\"field_name\":\"f%d\",\"new_value\":%d,\"source_type\":\"bulk\"}\n", i % 200, i % 5, i }' \
        >"$input"
    "$tmp/bulk_import" -b 250 "$input" "$PL_TEST_PG" >"$tmp/imp1.out" 2>"$tmp/imp1.err" &
    local pid=$! pct=0 i
    for ((i = 0; i < 1200; i++)); do
        pct=$(tr '\r' '\n' <"$tmp/imp1.err" | sed -n 's/.*] *\([0-9]*\)%.*/\1/p' | tail -n 1)
        [[ -n $pct && $pct -gt 30 ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    local partial
    partial=$(sql "SELECT count(*) FROM $SCHEMA.provenance_ledger WHERE source_type = 'bulk'")
    if ((partial > 0 && partial < n)); then
        ok "import SIGKILLed at ${pct}% with $partial of $n records in"
    else
        bad "import was not killed half way ($partial of $n records in; progress ${pct:-?}%)"
    fi
    if "$tmp/bulk_import" -b 250 "$input" "$PL_TEST_PG" >"$tmp/imp2.out" 2>"$tmp/imp2.err"; then
        ok "import rerun: $(cat "$tmp/imp2.out")"
    else
        cat "$tmp/imp2.err" >&2
        bad "the rerun of the import failed"
    fi
    expect "the rerun appended what was missing" "$(cat "$tmp/imp2.out")" \
        "$n records: $((n - partial)) appended, $partial already in the ledger"
    # Every input record exactly once: the multiset of (entity, field, value).
    sed 's/.*"entity_id":"\([^"]*\)","field_name":"\([^"]*\)","new_value":\([0-9]*\).*/\1|\2|\3/' "$input" |
        sort >"$tmp/want.txt"
    sql "SELECT entity_id || '|' || field_name || '|' || new_value::text FROM $SCHEMA.provenance_ledger
         WHERE source_type = 'bulk'" | sort >"$tmp/got.txt"
    if cmp -s "$tmp/want.txt" "$tmp/got.txt"; then
        ok "the ledger holds each of the $n input records exactly once"
    else
        bad "the ledger differs from the input: $(wc -l <"$tmp/got.txt") rows for $n records, $(sort "$tmp/got.txt" | uniq -d | wc -l) doubled"
    fi
    expect "a third run appends nothing" "$("$tmp/bulk_import" "$input" "$PL_TEST_PG" 2>/dev/null)" \
        "$n records: 0 appended, $n already in the ledger"

    # CSV: quoted commas, doubled quotes, a line break inside quotes.
    printf 'entity_id,field_name,new_value,source_type\r\ncsv_1,name,"""Smith, J. \\""Jr\\""""",csv\r\n"csv_1",note,"[""two"",\n""lines""]",csv\ncsv_2,n,42,csv\n' \
        >"$tmp/people.csv"
    if "$tmp/bulk_import" "$tmp/people.csv" "$PL_TEST_PG" >"$tmp/csv.out" 2>"$tmp/csv.err"; then
        expect "CSV import" "$(cat "$tmp/csv.out")" "3 records: 3 appended, 0 already in the ledger"
    else
        cat "$tmp/csv.err" >&2
        bad "the CSV import failed"
    fi
    expect "CSV values" "$(sql "SELECT string_agg(entity_id || ' ' || field_name || ' ' || new_value::text, ' | ' ORDER BY id)
        FROM $SCHEMA.provenance_ledger WHERE source_type = 'csv'")" \
        'csv_1 name "Smith, J. \"Jr\"" | csv_1 note ["two", "lines"] | csv_2 n 42'
    expect "CSV keys are file:line" "$(sql "SELECT string_agg(idempotency_key, ' ' ORDER BY id)
        FROM $SCHEMA.provenance_ledger WHERE source_type = 'csv'" 2>/dev/null || echo '?')" \
        'people.csv:2 people.csv:3 people.csv:5'
}
test_import

# ---------------------------------------------------------------------------
# 4. audit_export: the CSV equals COPY ... CSV of the same query
# ---------------------------------------------------------------------------
test_export() {
    # A record whose reason needs every kind of quoting, and an empty one.
    cli insert --entity exp_1 --field f --value '"x"' --source api \
        --reason $'a, "b"\nc' >/dev/null || bad "CLI insert"
    cli insert --entity exp_1 --field f --value '""' --source api --reason '' >/dev/null || bad "CLI insert"
    local from to
    from=$(sql "SELECT to_char(transaction_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                FROM $SCHEMA.provenance_ledger ORDER BY transaction_time, id OFFSET 100 LIMIT 1")
    to=now
    fmt() { echo "to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"; }
    local q="SELECT id, entity_id, field_name, $(fmt transaction_time) AS transaction_time,
        $(fmt valid_time_start) AS valid_from,
        CASE WHEN valid_time_end = 'infinity' THEN 'infinity' ELSE $(fmt valid_time_end) END AS valid_to,
        source_type, change_reason, old_value::text AS old_value, new_value::text AS new_value,
        metadata::text AS metadata
        FROM $SCHEMA.provenance_ledger
        WHERE transaction_time >= '$from' AND transaction_time < now()
        ORDER BY transaction_time, id"
    sql "COPY ($q) TO STDOUT WITH (FORMAT csv, HEADER)" >"$tmp/want.csv"
    if "$tmp/audit_export" "$from" "$to" "$PL_TEST_PG" >"$tmp/got.csv" 2>"$tmp/export.err"; then
        ok "audit_export: $(cat "$tmp/export.err")"
    else
        cat "$tmp/export.err" >&2
        bad "audit_export failed"
    fi
    local rows
    rows=$(($(wc -l <"$tmp/want.csv") - 1))
    if ((rows > 19000)) && cmp -s "$tmp/want.csv" "$tmp/got.csv"; then
        ok "the export of [$from, now) equals COPY ... CSV ($rows rows, same order, same bytes)"
    else
        bad "the export differs from COPY ... CSV ($rows rows): $(diff "$tmp/want.csv" "$tmp/got.csv" | head -n 5)"
    fi
}
test_export

# ---------------------------------------------------------------------------
# 5. offline_audit: no database, then one byte changed
# ---------------------------------------------------------------------------
test_offline() {
    openssl genpkey -algorithm ed25519 -out "$tmp/log.key" 2>/dev/null &&
        openssl pkey -in "$tmp/log.key" -pubout -out "$tmp/log.pub" 2>/dev/null ||
        { bad "openssl could not make a key"; return; }
    cli seal --key "$tmp/log.key" --origin example.com/ex >/dev/null || { bad "CLI seal"; return; }
    cli checkpoint >"$tmp/checkpoint" || { bad "CLI checkpoint"; return; }
    # Records written after the checkpoint: the export extends it.
    cli insert --entity off_1 --field f --value 1 --source api >/dev/null
    cli seal --key "$tmp/log.key" >/dev/null || { bad "CLI seal"; return; }
    cli export --out "$tmp/export" >/dev/null || { bad "CLI export"; return; }
    local id
    id=$(sql "SELECT id FROM $SCHEMA.provenance_ledger WHERE entity_id = 'imp_7' ORDER BY id LIMIT 1")
    cli prove "$id" --checkpoint "$tmp/checkpoint" >"$tmp/proof.json" || { bad "CLI prove"; return; }

    # No database in reach: an environment of PATH and the library only.
    local rc=0
    env -i PATH="$PATH" LD_LIBRARY_PATH="$libdir" "$tmp/offline_audit" "$tmp/log.pub" \
        "$tmp/checkpoint" "$tmp/export" "$id" "$tmp/proof.json" >"$tmp/audit.out" 2>&1 || rc=$?
    expect "offline_audit of the intact export exits 0" "$rc" 0
    ((rc == 0)) || cat "$tmp/audit.out" >&2

    # One byte of one value changed: 'new_value":"1234"' becomes ...1235.
    cp -r "$tmp/export" "$tmp/tampered"
    local victim
    victim=$(sql "SELECT id FROM $SCHEMA.provenance_ledger WHERE entity_id = 'imp_9' ORDER BY id LIMIT 1")
    python3 - "$tmp/tampered/records.jsonl" "$victim" <<'EOF'
import json, sys
path, victim = sys.argv[1], int(sys.argv[2])
lines = open(path, encoding="utf-8").read().split("\n")
for i, line in enumerate(lines):
    if line and json.loads(line)["id"] == victim:
        key = '"new_value":"'
        at = line.index(key) + len(key)
        c = line[at]
        lines[i] = line[:at] + ("1" if c != "1" else "2") + line[at + 1:]
        break
else:
    sys.exit("victim not found")
open(path, "w", encoding="utf-8").write("\n".join(lines))
EOF
    rc=0
    env -i PATH="$PATH" LD_LIBRARY_PATH="$libdir" "$tmp/offline_audit" "$tmp/log.pub" \
        "$tmp/checkpoint" "$tmp/tampered" "$id" "$tmp/proof.json" >"$tmp/audit2.out" 2>&1 || rc=$?
    expect "offline_audit of an export with one byte changed exits 1" "$rc" 1
    expect "and names the record ALTERED" "$(grep -c "finding ALTERED: record $victim," "$tmp/audit2.out")" 1

    # A proof with one sibling hash changed, and someone else's key.
    jq -c '.proof[0] |= (if .[0:1] == "0" then "1" else "0" end) + .[1:]' "$tmp/proof.json" >"$tmp/bad_proof.json"
    rc=0
    "$tmp/offline_audit" "$tmp/log.pub" "$tmp/checkpoint" "$tmp/export" "$id" "$tmp/bad_proof.json" \
        >"$tmp/audit3.out" 2>&1 || rc=$?
    expect "offline_audit with a forged proof exits 1" "$rc" 1
    openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkey -pubout -out "$tmp/other.pub" 2>/dev/null
    rc=0
    "$tmp/offline_audit" "$tmp/other.pub" "$tmp/checkpoint" "$tmp/export" "$id" "$tmp/proof.json" \
        >"$tmp/audit4.out" 2>&1 || rc=$?
    expect "offline_audit with another key exits 1" "$rc" 1
}
test_offline

if ((FAILS)); then
    echo "check_examples: $FAILS check(s) failed" >&2
    exit 1
fi
echo "check_examples: all checks passed"
