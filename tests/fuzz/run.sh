#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/CMakeLists.txt, with Debian's clang-14) and runs each
# one for the given number of seconds. The committed corpus is read-only seed input; new inputs
# go to a temporary directory, so a run never rewrites the repo. Committed crash reproducers are
# replayed first. Exits non-zero when any target crashes, leaks or times out.
# Usage: tests/fuzz/run.sh [seconds=60] [target...]     (targets: see ALL_TARGETS below)
# Environment: TDS_FUZZ_BUILD_DIR (default build/fuzz), TDS_FUZZ_ARGS (extra libFuzzer flags),
#              TDS_FUZZ_KEEP (a directory that receives each target's new corpus entries).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
shift || true
ALL_TARGETS=(canonical_legacy canonical_jcs page walkers resp state timestamp url)
targets=("$@")
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
build=${TDS_FUZZ_BUILD_DIR:-$root/build/fuzz}
corpus=$root/tests/fuzz/corpus
shared=${TDS_SHARED_TESTDATA:-$root/../shared/testdata}

cxx=${TDS_FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}
if [ -z "$cxx" ]; then
  echo "fuzz: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
cmake --build "$build" -j2

dict_for() {
  case $1 in
    canonical_*|page|walkers|state) echo "$root/tests/fuzz/json.dict" ;;
    resp) echo "$root/tests/fuzz/resp.dict" ;;
    url) echo "$root/tests/fuzz/url.dict" ;;
    timestamp) echo "$root/tests/fuzz/timestamp.dict" ;;
  esac
}

work=$(mktemp -d "${TMPDIR:-/tmp}/tds-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
  bin=$build/fuzz_$t
  if [ ! -x "$bin" ]; then
    echo "fuzz: unknown target '$t' (known: ${ALL_TARGETS[*]})" >&2
    exit 2
  fi
  # Inputs that once crashed this target must not crash it again.
  shopt -s nullglob
  repro=("$corpus/crashes/$t"/*)
  shopt -u nullglob
  if ((${#repro[@]})); then
    if ! "$bin" -runs=1 "${repro[@]}" >"$work/$t-replay.log" 2>&1; then
      echo "fuzz: $t: a committed crash reproducer crashes again:" >&2
      tail -n 40 "$work/$t-replay.log" >&2
      failed+=("$t(replay)")
      continue
    fi
    echo "fuzz: $t: ${#repro[@]} committed reproducers replayed cleanly"
  fi

  mkdir -p "$work/$t/new" "$work/$t/artifacts"
  seeds=("$corpus/$t")
  # The walker comparison reads JSON documents and pages: it starts from their corpora.
  [[ $t == walkers ]] && seeds=("$corpus/canonical_legacy" "$corpus/canonical_jcs" "$corpus/page")
  # The RFC 8785 vectors beside the repo, read at run time (never copied into it).
  if [[ ( $t == canonical_* || $t == walkers ) && -d $shared/jcs/input ]]; then seeds+=("$shared/jcs/input"); fi
  max_len=4096
  [[ $t == canonical_* || $t == page || $t == walkers ]] && max_len=16384
  log=$work/$t.log
  start=$(date +%s)
  # shellcheck disable=SC2086
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
      -dict="$(dict_for "$t")" -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
      ${TDS_FUZZ_ARGS:-} "$work/$t/new" "${seeds[@]}" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 || true)
    echo "fuzz: $t: ok, ${runs:-?} executions in $(($(date +%s) - start)) s, ${cov:-cov: ?}, ${ft:-ft: ?}"
  else
    mkdir -p "$build/crashes/$t"
    cp "$work/$t/artifacts/"* "$build/crashes/$t/" 2>/dev/null || true
    echo "fuzz: $t: FAILED; reproducers copied to $build/crashes/$t/" >&2
    grep -v '^#' "$log" | tail -n 60 >&2
    failed+=("$t")
  fi
  if [ -n "${TDS_FUZZ_KEEP:-}" ]; then
    mkdir -p "$TDS_FUZZ_KEEP/$t"
    cp "$work/$t/new/"* "$TDS_FUZZ_KEEP/$t/" 2>/dev/null || true
    cp "$log" "$TDS_FUZZ_KEEP/$t.log"
  fi
done

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (${#targets[@]} targets, ${seconds} s each)"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds} s each without a crash"
