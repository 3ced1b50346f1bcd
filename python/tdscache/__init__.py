"""tdscache: skip records that haven't changed when syncing a SaaS API into your database.

Canonical JSON digests (the production service's legacy form, or RFC 8785) and batched Redis
decisions, computed natively. The native module is private (tdscache._native); this facade is
the API. It imports without the native module, which loads on first use with a clear message
if it was not built.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

from ._errors import (AuthError, CacheTimeoutError, CacheUnavailableError, ConfigError, Error,
                      InputError, InternalError, PageError, ServerError, TLSError)
from .cache import (DEFAULT_REDIS_URL, ID_FIELDS, AsyncCache, Cache, CheckReport, CommitReport,
                    PageCheck, id_field_for)
from .hashing import Hasher, PageRecords, canonical_json, hash_entity
from .orchestrator import CachedSyncMixin, cached_orchestrator
from .service import TDSCacheService, check_should_sync, configure, get_cache, invalidate_cache


def _version() -> str:
    try:
        return _metadata.version("tdscache")
    except _metadata.PackageNotFoundError:  # running from a source tree
        from pathlib import Path
        version_file = Path(__file__).resolve().parents[2] / "VERSION"
        return version_file.read_text().strip() if version_file.exists() else "0+unknown"


__version__ = _version()

#: The ten decision reasons, in the order the rules apply.
REASONS = ("forced_sync", "no_id", "cache_check_error", "no_cache_entry", "cache_entry_corrupt",
           "hash_scheme_changed", "content_changed", "cache_expired", "timestamp_newer", "unchanged")


def __getattr__(name: str) -> Any:
    # The Zoho reference orchestrator with the cache in front: imported on demand, because it
    # pulls in httpx and SQLAlchemy, which pure hashing users don't need.
    if name == "CachedZohoSyncOrchestrator":
        from .zoho.cached import CachedZohoSyncOrchestrator
        return CachedZohoSyncOrchestrator
    raise AttributeError(f"module 'tdscache' has no attribute {name!r}")


__all__ = [
    "__version__", "REASONS", "DEFAULT_REDIS_URL", "ID_FIELDS",
    "Error", "InputError", "PageError", "ConfigError", "CacheUnavailableError", "CacheTimeoutError",
    "TLSError", "AuthError", "ServerError", "InternalError",
    "Hasher", "PageRecords", "hash_entity", "canonical_json",
    "Cache", "AsyncCache", "CheckReport", "CommitReport", "PageCheck", "id_field_for",
    "TDSCacheService", "configure", "get_cache", "check_should_sync", "invalidate_cache",
    "CachedSyncMixin", "cached_orchestrator", "CachedZohoSyncOrchestrator",
]
