#!/bin/sh
# The install test: `cmake --install` the build tree into a temp prefix, check what landed, then
# build and run downstream consumers: C++ with find_package(tdscache CONFIG) and C with pkg-config.
# Usage: install_test.sh BUILD_DIR CONSUMERS_DIR SOVERSION [CMAKE] [GENERATOR]
set -eu
build_dir=$1
consumers=$2
major=$3
cmake=${4:-cmake}
generator=${5:-Ninja}
cc=${CC:-cc}

work=$(mktemp -d "${TMPDIR:-/tmp}/tds-install-XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

fail() {
  echo "install test: $*" >&2
  exit 1
}

"$cmake" --install "$build_dir" --prefix "$prefix" >"$work/install.log" || {
  cat "$work/install.log"
  fail "cmake --install failed"
}

so=$(find "$prefix" -name 'libtdscache.so.[0-9]*' -type f | head -n 1)
[ -n "$so" ] || fail "no versioned libtdscache.so.* installed"
libdir=$(dirname "$so")
for f in "$prefix/include/tdscache.h" "$prefix/include/tdscache/canonical.hpp" \
         "$prefix/include/tdscache/client.hpp" "$libdir/libtdscache.a" "$libdir/libtdscache.so" \
         "$libdir/libtdscache.so.$major" "$libdir/cmake/tdscache/tdscacheConfig.cmake" \
         "$libdir/cmake/tdscache/tdscacheConfigVersion.cmake" "$libdir/pkgconfig/tdscache.pc"; do
  [ -e "$f" ] || fail "missing after install: ${f#"$prefix"/}"
done
soname=$(objdump -p "$so" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = "libtdscache.so.$major" ] || fail "SONAME is '$soname', expected libtdscache.so.$major"

# C++ consumer, find_package. CMAKE_PREFIX_PATH is the only way it can find tdscache.
"$cmake" -S "$consumers/cxx" -B "$work/cxx" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/cxx-configure.log" 2>&1 || {
  cat "$work/cxx-configure.log"
  fail "find_package(tdscache CONFIG) consumer did not configure"
}
"$cmake" --build "$work/cxx" >"$work/cxx-build.log" 2>&1 || {
  cat "$work/cxx-build.log"
  fail "find_package(tdscache CONFIG) consumer did not build"
}
"$work/cxx/cxx_consumer"
"$work/cxx/c_abi_consumer"

# C consumer, pkg-config, against the shared library.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cflags=$(pkg-config --cflags tdscache)
libs=$(pkg-config --libs tdscache)
# shellcheck disable=SC2086 # the flags are words
"$cc" -std=c99 -Wall -Wextra -pedantic -Werror $cflags "$consumers/c/main.c" $libs -o "$work/c_consumer"
LD_LIBRARY_PATH="$libdir" "$work/c_consumer"
LD_LIBRARY_PATH="$libdir" ldd "$work/c_consumer" | grep -q "$libdir/libtdscache.so.$major" ||
  fail "the pkg-config consumer did not load the installed libtdscache.so.$major"

echo "install: ok ($prefix: headers, libtdscache.a, $soname, CMake package, pkg-config)"
