#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine: installs the Debian packages that are
# missing, creates the project virtualenv (.venv) and installs the Python dependencies into it.
# Run again, it checks and does nothing. Everything else (build, tests, demo) calls this first.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(build-essential cmake ninja-build pkg-config libhiredis-dev libsimdjson-dev
  libssl-dev libgtest-dev libbenchmark-dev redis-server redis-tools python3-venv python3-dev
  openssl clang libclang-rt-14-dev valgrind)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  $PY -m venv .venv
fi

# Re-install the Python dependencies only when pyproject.toml changed.
stamp=.venv/.tdscache-deps
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  # Build requirements too: the package is built without isolation, against these.
  deps=$(.venv/bin/python - <<'PY'
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))
reqs = p["build-system"]["requires"] + p["project"]["dependencies"]
for extra in p["project"]["optional-dependencies"].values():
    reqs += extra
print("\n".join(reqs))
PY
)
  mapfile -t deplist <<<"$deps"
  .venv/bin/python -m pip install -q "${deplist[@]}"
  echo "$want" > "$stamp"
fi
