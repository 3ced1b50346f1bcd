#!/usr/bin/env bash
# Builds the C/C++ core, tests and benchmarks into build/cmake, and installs the Python package
# (with its native module) into .venv. Incremental: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
cmake -S . -B build/cmake -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >/dev/null
cmake --build build/cmake -j"$(nproc)"
if [ -f python/CMakeLists.txt ]; then
  .venv/bin/python -m pip install -q --no-build-isolation --no-deps .
fi
