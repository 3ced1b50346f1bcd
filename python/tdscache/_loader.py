"""Loads the private native module on first use, so that the pure-Python parts of the package
(tdscache.zoho, tdscache.testing) import even where the extension was not built."""

from __future__ import annotations

from types import ModuleType
from typing import Optional

_module: Optional[ModuleType] = None


def native() -> ModuleType:
    global _module
    if _module is None:
        try:
            from . import _native
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "tdscache's native module (tdscache._native) is not available: "
                f"{exc}. Build it with `pip install .` from the repository (needs a C++20 "
                "compiler, libsimdjson-dev, libhiredis-dev and libssl-dev), or run scripts/setup.sh."
            ) from exc
        _module = _native
    return _module
