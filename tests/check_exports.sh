#!/usr/bin/env bash
# Checks that the shared library exports exactly the public API: the
# PL_EXTERN functions of the header, the global section of the version
# script and the dynamic symbols of the built library are the same set,
# and nothing else is exported.
#
# Usage: tests/check_exports.sh HEADER VERSION_SCRIPT SHARED_LIBRARY
#   e.g. tests/check_exports.sh include/provledger.h lib/provledger.map \
#            build/lib/libprovledger.so
set -euo pipefail

(($# == 3)) || { echo "usage: $0 HEADER VERSION_SCRIPT SHARED_LIBRARY" >&2; exit 2; }
header=$1 map=$2 lib=$3
for f in "$header" "$map" "$lib"; do
    [[ -r $f ]] || { echo "check_exports: cannot read $f" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

# Header: every declaration that starts with PL_EXTERN, up to its '(' (a
# declaration may span lines); the identifier before the '(' is the name.
awk '
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*PL_EXTERN[[:space:]]/ { decl = ""; on = 1 }
    on {
        decl = decl " " $0
        if (index(decl, "(")) {
            sub(/\(.*/, "", decl)
            n = split(decl, w, /[^A-Za-z0-9_]+/)
            while (n > 0 && w[n] == "") n--
            print w[n]
            on = 0
        }
    }
' "$header" | sort >"$tmp/header"

# Version script: the names between "global:" and "local:", comments removed.
sed -e 's#/\*.*\*/##g' "$map" | awk '
    /global:/ { on = 1; next }
    /local:/ { on = 0 }
    on { gsub(/[[:space:];]/, ""); if ($0 != "") print }
' | sort >"$tmp/map"

# Binary: defined dynamic symbols, without their version suffix, leaving out
# the version node names themselves (absolute symbols named after a node).
nm -D --defined-only "$lib" | awk '
    $2 == "A" && $3 ~ /^PROVLEDGER_/ { next }
    { name = $NF; sub(/@.*/, "", name); print name }
' | sort >"$tmp/binary"

status=0
if [[ ! -s $tmp/header ]]; then
    echo "check_exports: no PL_EXTERN declaration found in $header" >&2
    status=1
fi
if [[ -n $(uniq -d "$tmp/header") ]]; then
    echo "check_exports: declared twice in $header: $(uniq -d "$tmp/header" | tr '\n' ' ')" >&2
    status=1
fi
if ! diff -u --label "PL_EXTERN in $header" --label "global: in $map" "$tmp/header" "$tmp/map"; then
    echo "check_exports: the version script and the header disagree (see the diff above)" >&2
    status=1
fi
if ! diff -u --label "PL_EXTERN in $header" --label "exported by $lib" "$tmp/header" "$tmp/binary"; then
    echo "check_exports: the library exports other symbols than the header declares" >&2
    status=1
fi
if ((status == 0)); then
    echo "check_exports: $(wc -l <"$tmp/header") functions: header, version script and library agree"
fi
exit "$status"
