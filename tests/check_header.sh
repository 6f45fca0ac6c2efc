#!/usr/bin/env bash
# Checks that <provledger.h> is a clean public header: it compiles on its
# own as strict C11 and C99 and as C++11 with -pedantic and warnings as
# errors, and programs in both languages link against the library and run.
#
# Usage: tests/check_header.sh SRC_INCLUDE_DIR BUILD_INCLUDE_DIR SHARED_LIBRARY
#   SRC_INCLUDE_DIR holds provledger.h, BUILD_INCLUDE_DIR the generated
#   provledger/version.h, SHARED_LIBRARY is the built libprovledger.so*.
#   CC and CXX choose the compilers (default cc and c++).
set -euo pipefail

(($# == 3)) || { echo "usage: $0 SRC_INCLUDE_DIR BUILD_INCLUDE_DIR SHARED_LIBRARY" >&2; exit 2; }
src_inc=$1 build_inc=$2 lib=$3
cc=${CC:-cc} cxx=${CXX:-c++}
[[ -r $src_inc/provledger.h ]] || { echo "check_header: no $src_inc/provledger.h" >&2; exit 1; }
[[ -r $build_inc/provledger/version.h ]] || { echo "check_header: no $build_inc/provledger/version.h" >&2; exit 1; }
[[ -r $lib ]] || { echo "check_header: no $lib" >&2; exit 1; }
libdir=$(cd -- "$(dirname -- "$lib")" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

# The header first and alone: it must include what it needs.
cat >"$tmp/header_c.c" <<'C'
#include <provledger.h>

#include <stdio.h>
#include <string.h>

static int check(int ok, const char *what)
{
    if (!ok)
        fprintf(stderr, "header_c: %s\n", what);
    return ok ? 0 : 1;
}

int main(void)
{
    int bad = 0;
    pl_config cfg;
    pl_change change = PL_CHANGE_INIT;
    pl_receipt receipt = {0, 0};
    pl_time t = 0;
    char buf[PL_TIME_BUFSIZE];
    pl_config_init(&cfg);
    bad += check(cfg.version == PL_CONFIG_VERSION, "pl_config_init sets the version");
    bad += check(change.valid_from == PL_TIME_NOW && change.valid_to == PL_TIME_INFINITY &&
                     change.entity_id == NULL,
                 "PL_CHANGE_INIT");
    bad += check(strcmp(pl_version(), PL_VERSION_STRING) == 0, "pl_version() == PL_VERSION_STRING");
    bad += check(pl_version_number() == PL_VERSION_NUMBER, "pl_version_number()");
    bad += check(pl_strerror(PL_EINVAL) != NULL && pl_errmsg() != NULL, "pl_strerror, pl_errmsg");
    bad += check(pl_time_parse(&t, "2025-01-20T10:30:00.5+01:00") == PL_OK, "pl_time_parse");
    bad += check(pl_time_format(buf, sizeof buf, t) == PL_TIME_BUFSIZE - 1 &&
                     strcmp(buf, "2025-01-20T09:30:00.500000Z") == 0,
                 "pl_time_format");
    bad += check(pl_result_count(NULL) == 0 && pl_result_get(NULL, 0) == NULL, "NULL results");
    pl_result_free(NULL);
    pl_close(NULL);
    (void)receipt;
    return bad ? 1 : 0;
}
C

cat >"$tmp/header_cpp.cpp" <<'CPP'
#include <provledger.h>

#include <cstdio>
#include <cstring>

int main()
{
    pl_config cfg;
    pl_config_init(&cfg);
    pl_change change = PL_CHANGE_INIT;
    pl_time t = 0;
    char buf[PL_TIME_BUFSIZE];
    pl_result *none = nullptr;
    int bad = 0;
    if (cfg.version != PL_CONFIG_VERSION || change.valid_to != PL_TIME_INFINITY)
        bad++;
    if (std::strcmp(pl_version(), PL_VERSION_STRING) != 0)
        bad++;
    if (pl_time_parse(&t, "infinity") != PL_OK || t != PL_TIME_INFINITY)
        bad++;
    if (pl_time_format(buf, sizeof buf, 0) != PL_TIME_BUFSIZE - 1 ||
        std::strcmp(buf, "1970-01-01T00:00:00.000000Z") != 0)
        bad++;
    if (pl_open(nullptr, &cfg) != PL_EINVAL || std::strlen(pl_errmsg()) == 0)
        bad++;
    pl_result_free(none);
    if (bad)
        std::fprintf(stderr, "header_cpp: %d checks failed\n", bad);
    return bad ? 1 : 0;
}
CPP

warn=(-pedantic -Wall -Wextra -Werror -Wshadow -Wundef)
inc=(-I "$src_inc" -I "$build_inc")
run() { printf '+ %s\n' "$*"; "$@"; }

for std in c11 c99; do
    run "$cc" -std="$std" "${warn[@]}" -Wstrict-prototypes -Wmissing-prototypes "${inc[@]}" \
        -o "$tmp/header_$std" "$tmp/header_c.c" "$lib"
    run env LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/header_$std"
done
run "$cxx" -std=c++11 "${warn[@]}" -Wold-style-cast "${inc[@]}" \
    -o "$tmp/header_cpp" "$tmp/header_cpp.cpp" "$lib"
run env LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/header_cpp"
echo "check_header: C11, C99 and C++11 compile, link and run"
