#!/usr/bin/env bash
# Checks that the library's dependencies point down only: a file of a layer
# (a folder of lib/) includes headers of its own folder or of layers below
# it, never above, and layers of one rank (log and sql; db and redis)
# never include each other. The layers, bottom up, as the README's "Internals" draws them:
#   base < {log, sql} < {db, redis} < cache < api
# Generated sql_registry.h belongs to sql; <provledger.h> to everyone.
#
# Usage: tests/check_layers.sh LIB_DIR
set -euo pipefail

(($# == 1)) || { echo "usage: $0 LIB_DIR" >&2; exit 2; }
lib=$1
[[ -d $lib/api ]] || { echo "check_layers: $lib has no api/ folder" >&2; exit 1; }

declare -A rank=([public]=-1 [base]=0 [log]=1 [sql]=1 [db]=2 [redis]=2 [cache]=3 [api]=4)
declare -A home=([sql_registry.h]=sql [provledger.h]=public)
for layer in base log sql db redis cache api; do
    for h in "$lib/$layer"/*.h; do
        [[ -e $h ]] || continue
        name=$(basename -- "$h")
        if [[ -n ${home[$name]:-} && ${home[$name]} != "$layer" ]]; then
            echo "check_layers: $name is in both $layer/ and ${home[$name]}/" >&2
            exit 1
        fi
        home[$name]=$layer
    done
done

status=0 checked=0
for layer in base log sql db redis cache api; do
    for f in "$lib/$layer"/*.[ch]; do
        [[ -e $f ]] || continue
        while IFS= read -r inc; do
            checked=$((checked + 1))
            to=${home[$inc]:-}
            if [[ -z $to ]]; then
                echo "check_layers: $layer/$(basename -- "$f") includes \"$inc\", which is no header of lib/" >&2
                status=1
            elif ((rank[$to] > rank[$layer])) || { [[ $to != "$layer" ]] && ((rank[$to] == rank[$layer])); }; then
                echo "check_layers: $layer/$(basename -- "$f") includes $to/$inc: $to is not below $layer" >&2
                status=1
            fi
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    done
done
((status == 0)) && echo "check_layers: $checked includes, every one points down"
exit $status
