#!/usr/bin/env bash
# README command #1: set up, build, and run the main job (`tdscache demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
exec .venv/bin/tdscache demo "$@"
