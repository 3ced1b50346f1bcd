"""The typed facade stays typed: mypy --strict over the package, and stubtest comparing the
hand-written _native.pyi with the compiled module (stubs drift; this catches it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tdscache

ROOT = Path(__file__).resolve().parents[2]


def test_package_passes_mypy_strict() -> None:
    run = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(ROOT / "python" / "tdscache")],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_native_stubs_match_the_module(tmp_path: Path) -> None:
    allowlist = Path(__file__).with_name("stubtest_allowlist.txt")
    run = subprocess.run([sys.executable, "-m", "mypy.stubtest", "tdscache._native", "--allowlist", str(allowlist)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_package_ships_py_typed_and_stubs() -> None:
    package = Path(tdscache.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_native.pyi").exists()
