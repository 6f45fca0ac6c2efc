#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ in build-fuzz/ (clang,
# -fsanitize=fuzzer + ASan + UBSan over the whole library) and runs each for
# a bounded time on its seed corpus (tests/fuzz/corpus/<target>/). Fails on
# any crash, leak, timeout or sanitizer report. Exits 77 when clang cannot
# build a libFuzzer program.
#
# Usage: tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   default 25 s each; PL_FUZZ_JOBS=N runs N targets at once (default 1).
# Longer runs (README "Tests"): tests/fuzz/run.sh 3600 fuzz_cache_codec
# New inputs found are kept in build-fuzz/corpus/<target>/, never in the
# repository's seeds.
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/../.." && pwd)
SECS=${1:-25}
shift || true
BUILD=$ROOT/build-fuzz
log() { printf 'fuzz: %s\n' "$*" >&2; }

CC=${CC_FUZZ:-clang}
if ! command -v "$CC" >/dev/null; then
    log "no $CC: skipped"
    exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf -- "$probe"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>/dev/null; then
    log "$CC cannot build libFuzzer programs (libclang-rt-dev missing?): skipped"
    exit 77
fi

san=address,undefined
if [[ ! -f $BUILD/build.ninja ]]; then
    CC=$CC meson setup "$BUILD" "$ROOT" --buildtype=debugoptimized -Dtests=false -Dfuzz=true \
        -Db_sanitize=$san -Db_lundef=false -Dwerror=false \
        -Dc_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all" >/dev/null
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
    for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
        targets+=("$(basename "$src" .c)")
    done
fi
# Only the targets (and the library objects they link): -Werror is the gcc
# builds' gate; clang here only has to build what it fuzzes.
if ! out=$(ninja -C "$BUILD" "${targets[@]/#/tests/fuzz/}" 2>&1); then
    printf '%s\n' "$out" | tail -30 >&2
    log "the build failed"
    exit 1
fi
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

run_one() {
    local t=$1 seeds=$ROOT/tests/fuzz/corpus/$1 work=$BUILD/corpus/$1 out=$BUILD/$1.log
    mkdir -p "$work" "$BUILD/artifacts/$t"
    # libFuzzer: -max_total_time bounds the run; any crash, leak or
    # sanitizer report ends it with a non-zero status and the input saved.
    if "$BUILD/tests/fuzz/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t/" "$work" "$seeds" >"$out" 2>&1; then
        local cov execs rate
        cov=$(grep -o 'cov: [0-9]*' "$out" | tail -1)
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out")
        local first
        first=$(grep -m1 -o 'INITED cov: [0-9]*' "$out" || true)
        log "$t: ok in ${SECS}s, ${execs:-?} execs (${rate:-?}/s), ${first:-INITED ?} -> ${cov:-?}"
        return 0
    fi
    log "$t: FAILED (log: $out)"
    grep -E 'ERROR|SUMMARY|property failed|Test unit written' "$out" | head -8 >&2 || true
    return 1
}

failed=0
for t in "${targets[@]}"; do
    run_one "$t" || failed=$((failed + 1))
done
log "${#targets[@]} targets, $failed failed"
((failed == 0))
