#!/usr/bin/env bash
# Sanitizer builds: ASan+UBSan (build/asan) and TSan (build/tsan) of the library and its C++ and
# C test suites, each run through ctest with the sanitizers set to stop at the first report.
# A third, `scalar` (build/scalar), is ASan+UBSan with __SSE2__ undefined: the portable loops
# that stand in for the SSE2 ones on other CPUs (aarch64, say) otherwise never run on x86-64.
# Fails on any report, even one in a process that exited 0. Usage: scripts/sanitize.sh [asan|tsan|scalar|all]
# Prints the time each mode took and a closing line; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
case $mode in
  asan|tsan|scalar|all) ;;
  *) echo "usage: $0 [asan|tsan|scalar|all]" >&2; exit 2 ;;
esac
jobs=${TDS_SANITIZE_JOBS:-2}

# Tests left out of a mode, as a GoogleTest negative filter, each entry with its reason. None
# is needed today: every test, the timing bounds included, passes under both. (valgrind, install
# and ctypes tests are left out by tests/c/CMakeLists.txt in any sanitizer build.)
declare -A EXCLUDED=(
  [asan]=""
  [tsan]=""
  [scalar]=""
)

# Reports that end a run. halt_on_error/abort_on_error make the first report fatal; the log is
# searched as well, because a report in a child process or after main() may not set the status.
REPORT_PATTERN='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer|ERROR: ThreadSanitizer|SUMMARY: (Address|Undefined|Thread)Sanitizer'

summary=()
failed=0

run_mode() {
  local name=$1 sanitizers=$2 cxx_flags=${3:-} build=build/$1 start log rc=0
  start=$(date +%s)
  echo "sanitize: $name: configuring $build with -fsanitize=$sanitizers${cxx_flags:+ $cxx_flags}"
  # RelWithDebInfo: -O2 keeps the 100 MB and 10^6-key catalogue cases fast under the
  # sanitizers, and -g keeps their reports readable. Benchmarks and the Python module are off.
  cmake -S . -B "$build" -G Ninja -DTDS_SANITIZE="$sanitizers" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTDS_BUILD_BENCH=OFF -DTDS_BUILD_PYTHON=OFF -DCMAKE_CXX_FLAGS="$cxx_flags" >/dev/null
  cmake --build "$build" -j"$jobs"
  log=$build/sanitize-test.log
  local filter=${EXCLUDED[$name]}
  echo "sanitize: $name: running the C++ and C suites${filter:+ (excluded: $filter)}"
  # GTEST_FILTER only when there is something to leave out: set but empty, it runs nothing.
  local env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
             UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
             "TSAN_OPTIONS=halt_on_error=1 second_deadlock_stack=1")
  [ -n "$filter" ] && env+=("GTEST_FILTER=*:-$filter")
  # -V: every test's output goes to the log, where reports are searched for.
  env "${env[@]}" ctest --test-dir "$build" -V --timeout 1800 -O "$log" >/dev/null || rc=$?
  # The C++ suite must have run its tests, not an empty selection.
  if ! grep -Eq '\[  PASSED  \] [1-9][0-9]* tests?' "$log"; then
    echo "sanitize: $name: the C++ suite reported no passing tests" >&2
    rc=1
  fi
  if grep -Eq "$REPORT_PATTERN" "$log"; then
    echo "sanitize: $name: sanitizer reports in $log:" >&2
    grep -E -B2 -A25 "$REPORT_PATTERN" "$log" | head -n 120 >&2
    rc=1
  fi
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    failed=1
  fi
  local took=$(( $(date +%s) - start ))
  summary+=("$name $([ "$rc" -eq 0 ] && echo ok || echo FAILED) in ${took} s")
  echo "sanitize: $name: $([ "$rc" -eq 0 ] && echo ok || echo FAILED) in ${took} s ($(grep -E '^[0-9]+% tests passed' "$log" || echo 'no ctest summary'))"
}

total_start=$(date +%s)
if [ "$mode" = asan ] || [ "$mode" = all ]; then run_mode asan address,undefined; fi
if [ "$mode" = tsan ] || [ "$mode" = all ]; then run_mode tsan thread; fi
# GCC accepts -U for a predefined macro; every SIMD block in src/ is under #if defined(__SSE2__).
if [ "$mode" = scalar ] || [ "$mode" = all ]; then run_mode scalar address,undefined -U__SSE2__; fi

verdict=$([ "$failed" -eq 0 ] && echo "passed" || echo "FAILED")
echo "sanitize: $verdict: ${summary[*]}; total $(( $(date +%s) - total_start )) s"
exit "$failed"
