#!/usr/bin/env bash
# dev.sh: build, run and test libprovledger on a Debian 12 machine. Every
# command that needs servers starts private ones (PostgreSQL 15, Redis 7,
# PgBouncer) in a temporary directory through tests/servers.sh and stops
# them afterwards. Outside the repository and that directory, only missing
# Debian packages are installed (apt-get) and, when run as root, a system
# user "provledger" is created to run the servers.
#
# Usage:
#   ./dev.sh example        install packages, build, and run the example
#                           (examples/merchant_story.c) against private servers
#   ./dev.sh test           install packages, then inside one set of private
#                           servers: every test suite in a plain -Werror build
#                           that also measures coverage (gcovr prints lib/'s
#                           line and branch coverage per file and fails below
#                           COVERAGE_FLOOR_*), the lint (below), every suite
#                           again under ASan+UBSan, the libFuzzer targets
#                           (tests/fuzz/run.sh, 10 s each), every suite again
#                           under valgrind, and the benchmark at tiny scale; the last line reads
#                           "N passed, M failed"; exit status 1 on any failure
#   ./dev.sh lint           clang-tidy (lib/.clang-tidy: bugprone, cert,
#                           clang-analyzer) and cppcheck over lib/, with
#                           build/compile_commands.json; fails on any finding
#   ./dev.sh bench [ARGS]   release build (build-release/), then the benchmark
#                           bench/provledger-bench ARGS against private servers
#   ./dev.sh deps           install the Debian packages only
#   ./dev.sh build          configure build/ when needed and compile
#   ./dev.sh coverage       gcovr's report of lib/ from what build/ has
#                           recorded so far (after tests run in a build/
#                           configured with -Db_coverage=true, as ./dev.sh test does)
#   ./dev.sh shell          an interactive shell with the servers up and
#                           PL_TEST_* / PG* set (exit the shell to stop them)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
readonly ROOT
readonly SELF=$ROOT/dev.sh
readonly SERVERS=$ROOT/tests/servers.sh

# Test names (as in tests/meson.build) left out of the valgrind run because
# they take too long under it; they still run plain and under ASan+UBSan.
# failover: a script (tests/failover.sh) around a pg_auto_failover formation
# whose minutes are spent waiting on pg_autoctl, not in our code; it runs
# plain and under ASan+UBSan.
VALGRIND_SKIP=(failover)
readonly VALGRIND_FLAGS="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --quiet"
# Only when some library outside ours needs one: tests/valgrind.supp.
readonly VALGRIND_SUPP=$ROOT/tests/valgrind.supp

# The plain build measures coverage; the coverage phase fails when lib/'s
# line or branch coverage falls below these (percent), set a little under
# what the suites reach (README "Tests", tests/COVERAGE.md) so that losing
# tests fails CI while an unlucky timing does not.
readonly COVERAGE_FLOOR_LINES=90
readonly COVERAGE_FLOOR_BRANCHES=74

log() { printf 'dev.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$SELF" >&2
    exit 2
}

# Configures build directory DIR with meson OPTIONS: a fresh setup when DIR
# has none, else a reconfigure (which also picks up newly added suites).
setup_dir() {
    local dir=$1 out
    shift
    local -a how=()
    if [[ -f $ROOT/$dir/build.ninja ]]; then
        how=(--reconfigure)
    else
        log "configuring $dir"
    fi
    if ! out=$(meson setup "${how[@]}" "$ROOT/$dir" "$ROOT" "$@" 2>&1); then
        printf '%s\n' "$out" >&2
        log "meson setup $dir failed"
        return 1
    fi
}

cmd_deps() { "$SERVERS" deps; }

# gcovr over build/: lib/ only (not the tests, the generated SQL registry or
# bench/), the per-file table of lines (with the lines never run) and of
# branches, then the totals; with FLOOR=1, exit status 2 below the floors.
coverage_report() { # coverage_report FLOOR
    local json=$ROOT/build/meson-logs/coverage.json
    local -a floor=()
    if (($1)); then
        floor=(--fail-under-line "$COVERAGE_FLOOR_LINES" --fail-under-branch "$COVERAGE_FLOOR_BRANCHES")
    fi
    (cd "$ROOT" && gcovr -j 2 -r "$ROOT" --object-directory "$ROOT/build" --filter 'lib/' \
        --exclude-unreachable-branches --json "$json" "$ROOT/build" >/dev/null) || return 1
    # (never an output of /dev/null: gcovr removes an output file it has
    # tried to open, whatever it is)
    (cd "$ROOT" && gcovr -a "$json" --txt - && gcovr -a "$json" -b --txt - &&
        gcovr -a "$json" --print-summary --txt "$ROOT/build/meson-logs/coverage.txt" "${floor[@]}")
}

cmd_coverage() {
    compgen -G "$ROOT/build/lib/*.p/*.gcno" >/dev/null ||
        die "build/ has no coverage data: configure it with -Db_coverage=true and run tests (./dev.sh test does)"
    coverage_report 0
}

# clang-tidy (checks in lib/.clang-tidy, two at a time) and cppcheck over
# the library's own sources in build/compile_commands.json (the generated
# build/lib/sql_registry.c is left out). Prints the findings; returns 1 on any.
lint() {
    local db=$ROOT/build/compile_commands.json rc=0 out
    [[ -f $db ]] || { log "lint: $db is missing (./dev.sh build)"; return 1; }
    log "== lint: clang-tidy over lib/"
    # clang-tidy's "N warnings generated." (system headers) go to /dev/null
    if ! out=$(cd "$ROOT" && find lib -name '*.c' | sort |
        xargs -P 2 -n 4 clang-tidy -p "$ROOT/build" --quiet 2>/dev/null); then
        rc=1
    fi
    [[ -z $out ]] || printf '%s\n' "$out"
    ((rc == 0)) || log "lint: clang-tidy reported findings (above)"
    log "== lint: cppcheck over lib/"
    if ! (cd "$ROOT" && cppcheck --project=build/compile_commands.json --file-filter='lib/*' --std=c11 --library=posix \
        --enable=warning,portability,performance --inline-suppr --error-exitcode=1 -j 2 --quiet); then
        log "lint: cppcheck reported findings (above)"
        rc=1
    fi
    return "$rc"
}

cmd_lint() {
    cmd_build lib/sql_registry.h
    lint
}

# Configures build/ when it has not been, and compiles TARGETS (default: all).
cmd_build() {
    if [[ ! -f $ROOT/build/build.ninja ]]; then
        setup_dir build --buildtype=debugoptimized
    fi
    ninja -C "$ROOT/build" "$@"
}

cmd_example() {
    cmd_deps
    cmd_build examples/merchant_story
    "$SERVERS" run --no-replica -- "$SELF" __example
}

# Inside the servers: the example gets the primary and Redis as arguments.
in_example() {
    exec "$ROOT/build/examples/merchant_story" "$PL_TEST_PG" "$PL_TEST_REDIS"
}

cmd_bench() {
    cmd_deps
    setup_dir build-release --buildtype=release -Dtests=false
    ninja -C "$ROOT/build-release"
    local bench=$ROOT/build-release/bench/provledger-bench
    [[ -x $bench ]] || die "$bench was not built (is bench/ in place?)"
    # the benchmark never reads the replica: no WAL replay competing for the cores
    "$SERVERS" run --bench --no-replica -- "$bench" "$@"
}

cmd_shell() {
    log "starting the servers; PL_TEST_PG, PL_TEST_REDIS, PGHOST... are set in the shell; exit it to stop them"
    "$SERVERS" run -- bash -i
}

# ---------------------------------------------------------------------------
# ./dev.sh test
# ---------------------------------------------------------------------------

cmd_test() {
    cmd_deps
    "$SERVERS" run -- "$SELF" __test
}

PASSED=0
FAILED=0
SUMMARY=()

elapsed() { # elapsed SECONDS -> "3m05s"
    printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# note PHASE PASSED FAILED START_SECONDS [DETAIL]
note() {
    PASSED=$((PASSED + $2))
    FAILED=$((FAILED + $3))
    SUMMARY+=("$(printf '%-9s %3d passed, %3d failed  %7s  %s' "$1" "$2" "$3" \
        "$(elapsed $((SECONDS - $4)))" "${5:-}")")
}

# Configures and compiles build directory DIR with meson OPTIONS. When the
# build fails, builds whatever else still can be built and returns 1: the
# tests whose programs did not build then count as failed, the others run.
build_dir() {
    local dir=$1
    shift
    setup_dir "$dir" "$@" || return 1
    ninja -C "$ROOT/$dir" && return 0
    log "$dir: the build failed; building what still can be built"
    ninja -C "$ROOT/$dir" -k 0 >/dev/null 2>&1 || true
    return 1
}

# True when build output PATH (relative to build directory DIR) is up to date.
built() { # built DIR PATH
    [[ $(ninja -C "$ROOT/$1" -n "$2" 2>/dev/null) == *"no work to do"* ]]
}

# Lists the tests of build directory DIR, one per line: "run NAME" when
# every program the test needs is built and up to date, "broken NAME" when
# not. PACKAGING=0 leaves out the packaging suite; PROGRAMS=1 leaves out
# tests that do not run a program of this project directly (scripts);
# further arguments are test names to leave out.
list_tests() { # list_tests DIR PACKAGING PROGRAMS [SKIP...]
    python3 - "$ROOT/$1" "${@:2}" <<'EOF'
import json, os, subprocess, sys
d, packaging, programs = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
skip = set(sys.argv[4:])
def introspect(what):
    return json.loads(subprocess.run(["meson", "introspect", d, what], check=True,
                                     capture_output=True, text=True).stdout)
files = {t["id"]: t["filename"] for t in introspect("--targets")}
built_programs = {f for fs in files.values() for f in fs}
def fresh(path):
    r = subprocess.run(["ninja", "-C", d, "-n", os.path.relpath(path, d)],
                       capture_output=True, text=True)
    return r.returncode == 0 and "no work to do" in r.stdout
for t in introspect("--tests"):
    if t["name"] in skip or (not packaging and any(s.endswith(":packaging") for s in t["suite"])):
        continue
    if programs and t["cmd"][0] not in built_programs:
        print("script", t["name"])
        continue
    needs = [f for i in t.get("depends", []) for f in files.get(i, [])]
    print("run" if all(fresh(f) for f in needs) else "broken", t["name"])
EOF
}

# Counts the results in a meson test log (one JSON object per line) and
# prints "PASSED FAILED NAMES": OK and EXPECTEDFAIL pass; every other result
# fails, SKIP included, because the servers are always up here.
count_results() {
    python3 - "$1" <<'EOF'
import json, sys
passed, failed = 0, []
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        if not line.strip():
            continue
        t = json.loads(line)
        if t["result"] in ("OK", "EXPECTEDFAIL"):
            passed += 1
        else:
            failed.append("%s(%s)" % (t["name"].split(" / ")[-1], t["result"]))
print(passed, len(failed), " ".join(failed))
EOF
}

# test_phase PHASE DIR PACKAGING START BUILD_OK [MESON TEST ARGS...]
# Runs the tests of DIR that are built and notes the results under PHASE.
# The valgrind phase runs only the project's own test programs (a script
# would put bash under valgrind), without VALGRIND_SKIP.
test_phase() {
    local phase=$1 dir=$2 packaging=$3 start=$4 build_ok=$5 programs=0
    shift 5
    local -a skip=() run=() broken=() scripts=()
    if [[ $phase == valgrind ]]; then
        skip=("${VALGRIND_SKIP[@]}")
        programs=1
    fi
    local state name
    while read -r state name; do
        case $state in
        run) run+=("$name") ;;
        script) scripts+=("$name") ;;
        *) broken+=("$name") ;;
        esac
    done < <(list_tests "$dir" "$packaging" "$programs" "${skip[@]}")
    ((${#skip[@]} == 0)) || log "$phase: leaving out ${skip[*]} (VALGRIND_SKIP)"
    ((${#scripts[@]} == 0)) || log "$phase: leaving out the scripts ${scripts[*]}"

    local p=0 f=0 detail=""
    if ((!build_ok)); then
        f=1
        detail="build failed; "
    fi
    if ((${#broken[@]})); then
        f=$((f + ${#broken[@]}))
        detail+="not built: ${broken[*]}; "
    fi
    if ((${#run[@]})); then
        local logs=$ROOT/$dir/meson-logs json tp tf names
        # meson appends a wrapper's name to the log's: valgrind-valgrind.json
        rm -f -- "$logs/$phase".json "$logs/$phase"-*.json
        log "== $phase: meson test -C $dir $*"
        meson test -C "$ROOT/$dir" --no-rebuild --logbase "$phase" --print-errorlogs \
            "$@" "${run[@]}" || true
        json=$(find "$logs" -maxdepth 1 -name "$phase*.json" -print -quit 2>/dev/null)
        if [[ -n $json ]] && read -r tp tf names < <(count_results "$json"); then
            p=$tp
            f=$((f + tf))
            [[ -z $names ]] || detail+="failed: $names"
        else
            f=$((f + 1))
            detail+="meson test did not run"
        fi
    fi
    note "$phase" "$p" "$f" "$start" "${detail%; }"
}

phase_plain() {
    local start=$SECONDS ok=1
    log "== plain: build/ (debugoptimized, -Werror, coverage)"
    build_dir build --buildtype=debugoptimized -Dwerror=true -Db_sanitize=none -Db_coverage=true || ok=0
    # the counts of this run only
    find "$ROOT/build" -name '*.gcda' -delete
    test_phase plain build 1 "$start" "$ok"
}

# What the plain phase ran of lib/ (gcovr); one test in the tally, failed
# below COVERAGE_FLOOR_*.
phase_coverage() {
    local start=$SECONDS out rc=0 lines branches
    log "== coverage: gcovr over build/, lib/ only (floors: lines $COVERAGE_FLOOR_LINES%, branches $COVERAGE_FLOOR_BRANCHES%)"
    out=$(coverage_report 1 2>&1) || rc=$?
    printf '%s\n' "$out" >&2
    lines=$(sed -n 's/^lines: \([0-9.]*%\).*/\1/p' <<<"$out")
    branches=$(sed -n 's/^branches: \([0-9.]*%\).*/\1/p' <<<"$out")
    if ((rc == 0)); then
        note coverage 1 0 "$start" "lib/: lines $lines, branches $branches"
    elif [[ -n $lines ]]; then
        note coverage 0 1 "$start" "lib/: lines $lines, branches $branches: under the floor"
    else
        note coverage 0 1 "$start" "gcovr failed (exit $rc)"
    fi
}

phase_lint() {
    local start=$SECONDS
    if lint; then
        note lint 1 0 "$start" "clang-tidy, cppcheck: lib/ clean"
    else
        note lint 0 1 "$start" "findings in lib/ (above)"
    fi
}

phase_asan() {
    local start=$SECONDS ok=1
    log "== asan: build-asan/ (-fsanitize=address,undefined)"
    build_dir build-asan --buildtype=debugoptimized -Dwerror=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Dc_args=-fno-sanitize-recover=all || ok=0
    ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:print_summary=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:print_summary=1 \
        CK_TIMEOUT_MULTIPLIER=2 \
        test_phase asan build-asan 0 "$start" "$ok" --timeout-multiplier 2
}

# The libFuzzer targets (tests/fuzz/run.sh): each target is one test in
# the tally; 10 s each (longer runs by hand: README "Allocation failure and fuzzing").
phase_fuzz() {
    local start=$SECONDS out rc=0 n=0 bad=0
    log "== fuzz: tests/fuzz/run.sh 10 (clang, libFuzzer + ASan + UBSan, build-fuzz/)"
    out=$("$ROOT/tests/fuzz/run.sh" 10 2>&1) || rc=$?
    printf '%s\n' "$out" >&2
    if ((rc == 77)); then
        note fuzz 0 1 "$start" "clang with libFuzzer is missing (./dev.sh deps installs it)"
        return
    fi
    if [[ $out =~ fuzz:\ ([0-9]+)\ targets,\ ([0-9]+)\ failed ]]; then
        n=${BASH_REMATCH[1]}
        bad=${BASH_REMATCH[2]}
        note fuzz $((n - bad)) "$bad" "$start" "$(grep -o 'fuzz_[a-z_]*: FAILED' <<<"$out" | tr '\n' ' ')"
    else
        note fuzz 0 1 "$start" "tests/fuzz/run.sh did not finish (exit $rc)"
    fi
}

phase_valgrind() {
    local start=$SECONDS wrap=$VALGRIND_FLAGS
    if [[ -f $VALGRIND_SUPP ]]; then wrap+=" --suppressions=$VALGRIND_SUPP"; fi
    # The plain build's programs (its build problems were counted there).
    # No fork: valgrind sees every test of a suite in one process.
    CK_FORK=no test_phase valgrind build 0 "$start" 1 --wrap "$wrap" --timeout-multiplier 3
}

phase_bench() {
    local start=$SECONDS
    local bench=$ROOT/build/bench/provledger-bench
    if [[ ! -e $bench ]] && ! grep -q provledger-bench "$ROOT/bench/meson.build" 2>/dev/null; then
        log "bench: bench/ has no provledger-bench (yet): skipped"
        SUMMARY+=("$(printf '%-9s %s' bench "not in the build: skipped")")
        return
    fi
    if ! built build bench/provledger-bench; then
        note bench 0 1 "$start" "provledger-bench did not build"
        return
    fi
    log "== bench: provledger-bench --scale tiny"
    if "$bench" --scale tiny; then
        note bench 1 0 "$start"
    else
        note bench 0 1 "$start" "provledger-bench --scale tiny failed"
    fi
}

# Inside the servers: every phase, then the summary.
in_test() {
    cd "$ROOT"
    # the failover suite fails, never skips, when pg_autoctl is missing here
    export PL_FAILOVER_REQUIRED=1
    local start=$SECONDS
    phase_plain
    phase_coverage
    phase_lint
    phase_asan
    phase_fuzz
    phase_valgrind
    phase_bench
    log "== summary ($(elapsed $((SECONDS - start))) with the servers up)"
    local line
    for line in "${SUMMARY[@]}"; do
        log "  $line"
    done
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

# ---------------------------------------------------------------------------

main() {
    (($#)) || usage
    local sub=$1
    shift
    case $sub in
    example) cmd_example ;;
    test) cmd_test ;;
    bench) cmd_bench "$@" ;;
    deps) cmd_deps ;;
    build) cmd_build ;;
    lint) cmd_lint ;;
    coverage) cmd_coverage ;;
    shell) cmd_shell ;;
    __example) in_example ;;
    __test) in_test ;;
    -h | --help | help) usage ;;
    *) usage ;;
    esac
}

main "$@"
