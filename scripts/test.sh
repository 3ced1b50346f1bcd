#!/usr/bin/env bash
# README command #2: set up, build, and run every test suite: ctest (C++ and C), then pytest.
# Each suite starts its own redis-server processes; nothing here needs a running server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build/cmake --output-on-failure
# The ctypes test loads the C ABI from the build tree.
export TDS_SHARED_LIBRARY="$PWD/build/cmake/libtdscache.so"
.venv/bin/python -m pytest -q -rs tests/python "$@"
