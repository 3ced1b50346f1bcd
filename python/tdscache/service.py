"""TDSCacheService: the method names, arguments and return shapes the backend already calls,
served by the native engine. A drop-in for the old Python service:

    from tdscache import TDSCacheService
    should, reason = await TDSCacheService.should_sync_entity("product", item_id, item)

Configuration comes from REDIS_URL (default redis://localhost:6379/0) or configure(...).
Unlike the old service, checks are batched (one round trip per call), timestamps compare as
instants across UTC offsets, sync_count increments atomically, and Redis failures mean sync.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from .cache import AsyncCache, id_field_for

logger = logging.getLogger("tdscache.service")

_lock = threading.Lock()
_cache: Optional[AsyncCache] = None
_settings: dict[str, Any] = {}


def configure(url: Optional[str] = None, *, scheme: str = "legacy", **options: Any) -> AsyncCache:
    """Sets the process-wide cache (URL, hash scheme, client options) and returns it."""
    global _cache
    with _lock:
        _settings.clear()
        _settings.update(url=url, scheme=scheme, **options)
        _cache = AsyncCache(url, scheme=scheme, **options)
        return _cache


def get_cache() -> AsyncCache:
    """The process-wide cache, created from REDIS_URL on first use."""
    global _cache
    with _lock:
        if _cache is None:
            _cache = AsyncCache(_settings.get("url"), scheme=_settings.get("scheme", "legacy"),
                                **{k: v for k, v in _settings.items() if k not in ("url", "scheme")})
        return _cache


def _entity_id(entity: Mapping[str, Any], entity_type: str) -> str:
    value = entity.get(id_field_for(entity_type))
    return "" if value is None else str(value)


class TDSCacheService:
    """All methods are async static methods, as in the service this replaces."""

    @staticmethod
    async def should_sync_entity(entity_type: str, entity_id: Any, new_data: Mapping[str, Any],
                                 force: bool = False) -> tuple[bool, str]:
        cache = get_cache()
        try:
            digest = cache.hasher.digest(new_data)
        except Exception as exc:  # a value we cannot hash: sync it, never skip it
            logger.warning("cannot hash %s %s (%s): syncing it", entity_type, entity_id, exc)
            return True, "cache_check_error"
        report = await cache.check(entity_type, ["" if entity_id is None else str(entity_id)], [digest],
                                   [_modified(new_data)], force=force)
        return report.sync[0], report.reasons[0]

    @staticmethod
    async def mark_entity_synced(entity_type: str, entity_id: Any, entity_data: Mapping[str, Any],
                                 local_id: Optional[Any] = None) -> bool:
        """Records entity_data as synced. Pass the raw entity as fetched (what should_sync_entity
        saw), not a transformed copy, or later checks will miss."""
        cache = get_cache()
        try:
            digest = cache.hasher.digest(entity_data)
            result = await cache.commit_unconditional(
                entity_type, [str(entity_id)], [digest], [_modified(entity_data)],
                [None if local_id is None else str(local_id)])
        except Exception as exc:
            logger.warning("could not mark %s %s as synced: %s", entity_type, entity_id, exc)
            return False
        return result.written == 1

    @staticmethod
    async def bulk_check_should_sync(entity_type: str, entities: Sequence[Mapping[str, Any]]
                                     ) -> tuple[list[Mapping[str, Any]], dict[str, Any]]:
        cache = get_cache()
        entities = list(entities)
        if not entities:
            return [], {"total": 0, "to_sync": 0, "skipped": 0, "reasons": {}}
        try:
            report = await cache.check_entities(entity_type, entities)
        except Exception as exc:  # unhashable input: everything syncs
            logger.warning("bulk check of %d %s entities failed (%s): syncing all", len(entities), entity_type, exc)
            return entities, {"total": len(entities), "to_sync": len(entities), "skipped": 0,
                              "reasons": {"cache_check_error": len(entities)}}
        to_sync = [e for e, s in zip(entities, report.sync) if s]
        return to_sync, {"total": len(entities), "to_sync": report.to_sync, "skipped": report.skipped,
                         "reasons": dict(report.by_reason)}

    @staticmethod
    async def get_entity_sync_state(entity_type: str, entity_id: Any) -> Optional[dict[str, Any]]:
        try:
            return await get_cache().get_state(entity_type, entity_id)
        except Exception as exc:
            logger.warning("could not read the state of %s %s: %s", entity_type, entity_id, exc)
            return None

    @staticmethod
    async def invalidate_entity_cache(entity_type: str, entity_id: Optional[Any] = None) -> int:
        try:
            return await get_cache().invalidate(entity_type, entity_id)
        except Exception as exc:
            logger.warning("could not invalidate %s %s: %s", entity_type, entity_id, exc)
            return 0

    @staticmethod
    async def get_sync_statistics() -> dict[str, Any]:
        cache = get_cache()
        stats = cache.stats()
        stats["redis_url"] = redact_url(cache.sync.url)
        stats["hash_scheme"] = cache.scheme
        return stats

    @staticmethod
    async def warm_cache_from_db(entity_type: str, entities_from_db: Sequence[Any]) -> int:
        """Writes states for entities already in the database. Each item is the entity's data as
        Zoho served it (a mapping with its id field), optionally with "local_id", or a pair
        (entity_data, local_id). Returns the number of states written."""
        cache = get_cache()
        ids: list[str] = []
        digests: list[bytes] = []
        modified: list[Optional[str]] = []
        local_ids: list[Optional[str]] = []
        for item in entities_from_db:
            if isinstance(item, tuple):
                data, local_id = item
            else:
                data = dict(item)
                local_id = data.pop("local_id", None)
            entity_id = _entity_id(data, entity_type)
            if not entity_id:
                continue
            try:
                digests.append(cache.hasher.digest(data))
            except Exception as exc:
                logger.warning("not warming %s %s: %s", entity_type, entity_id, exc)
                continue
            ids.append(entity_id)
            modified.append(_modified(data))
            local_ids.append(None if local_id is None else str(local_id))
        if not ids:
            return 0
        try:
            result = await cache.warm(entity_type, ids, digests, modified, local_ids)
        except Exception as exc:
            logger.warning("cache warm of %s failed: %s", entity_type, exc)
            return 0
        return result.written

    @staticmethod
    async def mark_batch_sync_complete(entity_type: str, batch_id: str, stats: Mapping[str, Any]) -> bool:
        try:
            await get_cache().mark_batch_complete(entity_type, batch_id, stats)
            return True
        except Exception as exc:
            logger.warning("could not mark batch %s of %s complete: %s", batch_id, entity_type, exc)
            return False

    @staticmethod
    async def was_batch_synced_recently(entity_type: str, within_minutes: int = 60) -> bool:
        """Whether a batch of this type completed within the window. On a cache failure the
        answer is False: the caller syncs."""
        try:
            return await get_cache().was_batch_synced_recently(entity_type, int(within_minutes * 60))
        except Exception as exc:
            logger.warning("could not read batch markers of %s: %s", entity_type, exc)
            return False


async def check_should_sync(entity_type: str, entity_id: Any, data: Mapping[str, Any],
                            force: bool = False) -> tuple[bool, str]:
    return await TDSCacheService.should_sync_entity(entity_type, entity_id, data, force)


async def invalidate_cache(entity_type: str, entity_id: Optional[Any] = None) -> int:
    return await TDSCacheService.invalidate_entity_cache(entity_type, entity_id)


def _modified(data: Mapping[str, Any]) -> Optional[str]:
    value = data.get("last_modified_time")
    return None if value is None else str(value)


def redact_url(url: str) -> str:
    """The URL with any credentials masked: never echo a password into statistics or logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


__all__ = ["TDSCacheService", "configure", "get_cache", "check_should_sync", "invalidate_cache", "redact_url"]

# Silence "coroutine never awaited" style surprises for sync callers: expose a helper.
def run_sync(coro: Any) -> Any:
    """Runs one of the async methods from synchronous code (no running loop)."""
    return asyncio.run(coro)
