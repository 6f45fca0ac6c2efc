#!/usr/bin/env bash
# Interoperability with independent implementations of the standards the
# log follows: Go's golang.org/x/mod/sumdb/note verifies our checkpoints
# (C2SP signed-note) with the verifier key `provledger checkpoint
# --verifier-key` prints, and Go's sumdb/tlog verifies the inclusion and
# consistency proofs `provledger prove` prints (RFC 9162 hashing), for
# every tree size 1..SIZES; a tampered note and a tampered proof must fail.
#
# Environment: PL_TEST_PG (skip 77 without), PROVLEDGER_BIN. Skips (77)
# when Go or the x/mod sources (Debian golang-golang-x-mod-dev) are missing.
set -uo pipefail

if [[ -z ${PL_TEST_PG:-} ]]; then
    echo "check_interop_tlog.sh: PL_TEST_PG is not set: run under tests/servers.sh (skipping)" >&2
    exit 77
fi
GOSRC=/usr/share/gocode
if ! command -v go >/dev/null || [[ ! -d $GOSRC/src/golang.org/x/mod/sumdb/tlog ]]; then
    echo "check_interop_tlog.sh: go or golang.org/x/mod (golang-golang-x-mod-dev) missing (skipping)" >&2
    exit 77
fi
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
BIN=${PROVLEDGER_BIN:?set PROVLEDGER_BIN}
SIZES=${PL_INTEROP_SIZES:-100}
TMP=$(mktemp -d)
S=interop_test_$$
cleanup() {
    "${PL_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}/psql" "$PL_TEST_PG" -XAtq \
        -c "DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null 2>&1
    rm -rf -- "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Offline, from Debian's sources: no module download.
for tool in notecheck tlogcheck; do
    (cd "$HERE/interop/$tool" && GO111MODULE=off GOPATH=$GOSRC GOCACHE=$TMP/gocache GOFLAGS= \
        go build -o "$TMP/$tool" .) || fail "building $tool"
done

pl() { "$BIN" --pg "$PL_TEST_PG" --schema "$S" "$@"; }
openssl genpkey -algorithm ed25519 -out "$TMP/key.pem" 2>/dev/null
openssl pkey -in "$TMP/key.pem" -pubout -out "$TMP/pub.pem" 2>/dev/null
pl migrate >/dev/null || fail migrate
mkdir "$TMP/cp"
for n in $(seq 1 "$SIZES"); do
    pl insert --entity "e$((n % 7))" --field f --value "{\"n\": $n}" --source interop >/dev/null || fail insert
    pl seal --key "$TMP/key.pem" --origin interop.example/log >"$TMP/cp/$n" || fail "seal $n"
done
VKEY=$(pl checkpoint --verifier-key --pub "$TMP/pub.pem") || fail "verifier key"
"$TMP/notecheck" "$VKEY" "$TMP"/cp/* || fail "Go's note package refused our checkpoints"
# The key id and signature are base64 after the key name: change its first character.
sed 's/^\(\xe2\x80\x94 [^ ]* \)A/\1B/; t; s/^\(\xe2\x80\x94 [^ ]* \)./\1A/' "$TMP/cp/$SIZES" >"$TMP/bad"
cmp -s "$TMP/bad" "$TMP/cp/$SIZES" && fail "the note was not changed"
if "$TMP/notecheck" "$VKEY" "$TMP/bad" >/dev/null; then fail "a tampered signature verified"; fi

for n in $(seq 1 "$SIZES"); do
    for i in 1 $(((n + 1) / 2)) "$n"; do pl prove "$i" --checkpoint "$TMP/cp/$n"; done
    for m in 1 $(((n + 1) / 2)) "$n"; do pl prove --consistency "$m" --checkpoint "$TMP/cp/$n"; done
done >"$TMP/proofs" || fail prove
"$TMP/tlogcheck" <"$TMP/proofs" || fail "Go's tlog package refused our proofs"
# One changed digit of one proof hash must fail there too.
jq -c 'select(.proof | length > 0) | .proof[0] |= (if startswith("0") then "1" else "0" end) + .[1:]' \
    "$TMP/proofs" | head -1 >"$TMP/badproof"
[[ -s $TMP/badproof ]] || fail "no proof to tamper with"
if "$TMP/tlogcheck" <"$TMP/badproof" >/dev/null; then fail "a tampered proof verified"; fi
echo "check_interop_tlog: $SIZES checkpoints verified by Go's note, $(wc -l <"$TMP/proofs") proofs by Go's tlog"
