#!/usr/bin/env bash
# Checks installation and use from outside the source tree: a fresh build of
# the source installs into a temporary prefix; the installed header tree,
# shared library (soname) and pkg-config file are what the README promises;
# examples/merchant_story.c builds against the prefix with pkg-config alone
# and links the installed library (and runs when PL_TEST_PG is set, i.e.
# inside ./dev.sh test); and a meson project can use the library as a
# subproject through dependency('provledger').
#
# Usage: tests/check_install.sh SOURCE_ROOT
set -euo pipefail

(($# == 1)) || { echo "usage: $0 SOURCE_ROOT" >&2; exit 2; }
src=$(cd -- "$1" && pwd)
cc=${CC:-cc}

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
prefix=$tmp/prefix

fail() { echo "check_install: FAIL: $*" >&2; exit 1; }
run() { printf '+ %s\n' "$*"; "$@"; }

# 1. Build and install a fresh copy (the tests are not needed for that).
run meson setup "$tmp/build" "$src" --prefix="$prefix" -Dtests=false >"$tmp/setup.log" ||
    { cat "$tmp/setup.log"; fail "meson setup"; }
run ninja -C "$tmp/build" >"$tmp/ninja.log" || { cat "$tmp/ninja.log"; fail "ninja"; }
run meson install -C "$tmp/build" --no-rebuild >"$tmp/install.log" ||
    { cat "$tmp/install.log"; fail "meson install"; }

# 2. The installed tree: exactly the public headers, the library and its
#    links, the pkg-config file.
[[ -f $prefix/include/provledger.h ]] || fail "no include/provledger.h"
[[ -f $prefix/include/provledger/version.h ]] || fail "no include/provledger/version.h"
headers=$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')
[[ $headers == "./provledger.h ./provledger/version.h " ]] ||
    fail "installed headers are '$headers', expected provledger.h and provledger/version.h"
pc=$(find "$prefix" -name provledger.pc -print -quit)
[[ -n $pc ]] || fail "no provledger.pc under $prefix"
pcdir=$(dirname -- "$pc")
libdir=$(dirname -- "$pcdir")
real=$(find "$libdir" -maxdepth 1 -type f -name 'libprovledger.so.*' -print -quit)
[[ -n $real ]] || fail "no libprovledger.so.* in $libdir"
soname=$(LC_ALL=C readelf -d "$real" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[[ $soname == libprovledger.so.1 ]] || fail "soname of $real is '$soname', expected libprovledger.so.1"
[[ -L $libdir/libprovledger.so.1 && -e $libdir/libprovledger.so.1 ]] || fail "no libprovledger.so.1 link"
[[ -L $libdir/libprovledger.so && -e $libdir/libprovledger.so ]] || fail "no libprovledger.so link"
if find "$prefix" -name '*.a' | grep -q .; then
    fail "a static library was installed: $(find "$prefix" -name '*.a')"
fi
echo "installed: $headers$(basename -- "$real") (soname $soname), $(basename -- "$pc")"

# 3. pkg-config knows the library, at the version of the installed header.
export PKG_CONFIG_PATH=$pcdir
version=$(sed -n 's/^#define PL_VERSION_STRING "\(.*\)"$/\1/p' "$prefix/include/provledger/version.h")
[[ $(pkg-config --modversion provledger) == "$version" ]] ||
    fail "pkg-config --modversion provledger is not $version"
read -r -a flags <<<"$(pkg-config --cflags --libs provledger)"
echo "pkg-config --cflags --libs provledger: ${flags[*]}"

# 4. The example, built against the prefix with the pkg-config flags only.
run "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -o "$tmp/merchant_story" \
    "$src/examples/merchant_story.c" "${flags[@]}"
resolved=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/merchant_story" | awk '$1 == "libprovledger.so.1" { print $3 }')
[[ $resolved == "$libdir/libprovledger.so.1" ]] ||
    fail "merchant_story resolves libprovledger.so.1 to '$resolved', not the installed $libdir"
if [[ -n ${PL_TEST_PG:-} ]]; then
    run env LD_LIBRARY_PATH="$libdir" "$tmp/merchant_story" "$PL_TEST_PG" "${PL_TEST_REDIS:-}" \
        >"$tmp/story.log" 2>&1 || { cat "$tmp/story.log"; fail "the installed example failed"; }
    tail -n 1 "$tmp/story.log"
else
    echo "PL_TEST_PG is not set: built the example, not running it"
fi

# 5. Use as a meson subproject: dependency('provledger') with a fallback.
mkdir -p "$tmp/consumer/subprojects"
ln -s "$src" "$tmp/consumer/subprojects/provledger"
cat >"$tmp/consumer/meson.build" <<'MESON'
project('consumer', 'c', default_options : ['c_std=c11'])
provledger = dependency('provledger', fallback : 'provledger',
                        default_options : ['tests=false'])
executable('merchant_story', 'merchant_story.c', dependencies : provledger)
MESON
cp "$src/examples/merchant_story.c" "$tmp/consumer/"
unset PKG_CONFIG_PATH
run meson setup "$tmp/consumer/build" "$tmp/consumer" >"$tmp/sub.log" ||
    { cat "$tmp/sub.log"; fail "meson setup of a project using provledger as a subproject"; }
grep -q 'Dependency provledger from subproject' "$tmp/sub.log" || grep -q 'Executing subproject provledger' "$tmp/sub.log" ||
    { cat "$tmp/sub.log"; fail "the consumer did not use the subproject"; }
run ninja -C "$tmp/consumer/build" >"$tmp/subninja.log" || { cat "$tmp/subninja.log"; fail "subproject build"; }
echo "check_install: install, pkg-config and subproject use work"
