"""CachedSyncMixin and cached_orchestrator(): put the digest cache in front of an existing
sync orchestrator, so only new or changed entities reach the database.

    from tdscache import cached_orchestrator
    CachedZohoSyncOrchestrator = cached_orchestrator(ZohoSyncOrchestrator)

The mixin overrides _process_entities_batch (dicts) and _process_page (raw page bytes, when the
host has that hook) and drives the host's own _validate_entity, _transform_entity, _save_entity
and _publish_event. The digest committed for an entity is the one its check computed on the
raw entity, never on the transformed copy. Cache trouble never fails a sync: it syncs more.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from ._errors import InputError
from .cache import AsyncCache, CheckReport, id_field_for
from .service import get_cache

logger = logging.getLogger("tdscache.orchestrator")

#: Entity type names of Zoho sync configs mapped to the legacy cache types.
CACHE_TYPES: dict[str, str] = {
    "products": "product", "product": "product", "items": "product", "inventory": "product",
    "customers": "customer", "customer": "customer", "contacts": "customer", "contact": "customer",
    "invoices": "invoice", "invoice": "invoice",
    "orders": "order", "order": "order", "salesorders": "order", "salesorder": "order",
    "bills": "bill", "bill": "bill",
    "creditnotes": "creditnote", "creditnote": "creditnote",
    "purchaseorders": "purchaseorder", "purchaseorder": "purchaseorder",
}


def cache_type_of(entity_type: Any) -> str:
    """The cache's entity type for a config's entity_type (an Enum, or a string)."""
    cache_type = getattr(entity_type, "cache_type", None)
    if isinstance(cache_type, str):
        return cache_type
    name = getattr(entity_type, "value", entity_type)
    name = str(name).lower()
    return CACHE_TYPES.get(name, name)


@dataclass(frozen=True)
class CachedOutcome:
    """One entity that went through the host's hooks."""

    zoho_id: Optional[str]
    ok: bool
    reason: str
    local_id: Optional[str] = None


def _local_id_of(saved: Any) -> Optional[str]:
    if saved is None or isinstance(saved, bool):
        return None
    if isinstance(saved, (str, int)):
        return str(saved)
    if isinstance(saved, Mapping):
        for key in ("local_id", "id"):
            if saved.get(key) is not None:
                return str(saved[key])
        return None
    value = getattr(saved, "id", None)
    return None if value is None else str(value)


class CachedSyncMixin:
    """Mix in before the host orchestrator class: class Cached(CachedSyncMixin, Host)."""

    cache_enabled: bool

    def __init__(self, *args: Any, cache: Optional[AsyncCache] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tds_cache = cache
        self.cache_enabled = True
        self.cache_stats: dict[str, int] = {}
        self.reset_cache_stats()
        self._cache_outage = False
        self._hook_arity: dict[str, int] = {}

    # ---- controls and statistics -----------------------------------------------------------

    @property
    def cache(self) -> AsyncCache:
        if self._tds_cache is None:
            self._tds_cache = get_cache()
        return self._tds_cache

    def enable_caching(self) -> None:
        self.cache_enabled = True

    def disable_caching(self) -> None:
        self.cache_enabled = False

    def reset_cache_stats(self) -> None:
        self.cache_stats = {"total_checked": 0, "cache_hits": 0, "cache_misses": 0, "skipped": 0, "synced": 0}

    def get_cache_statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = dict(self.cache_stats)
        checked = stats["total_checked"]
        stats["hit_rate"] = (stats["cache_hits"] / checked * 100.0) if checked else 0.0
        stats["cache_enabled"] = self.cache_enabled
        try:
            stats["engine"] = self.cache.stats()
        except Exception as exc:  # statistics must not fail because the cache is unusable
            stats["engine_error"] = str(exc)
        return stats

    async def clear_entity_cache(self, entity_type: Any, entity_id: Optional[Any] = None) -> int:
        try:
            return await self.cache.invalidate(cache_type_of(entity_type), entity_id)
        except Exception as exc:
            logger.warning("could not clear the cache of %s: %s", entity_type, exc)
            return 0

    # ---- the sync ----------------------------------------------------------------------------

    async def sync_entity(self, config: Any) -> Any:
        before = dict(self.cache_stats)
        result = await super().sync_entity(config)  # type: ignore[misc]
        if self.cache_enabled:
            checked = self.cache_stats["total_checked"] - before["total_checked"]
            skipped = self.cache_stats["skipped"] - before["skipped"]
            synced = self.cache_stats["synced"] - before["synced"]
            hit_rate = (skipped / checked * 100.0) if checked else 0.0
            logger.info("Cache Statistics: Hit Rate: %.1f%%, Total Checked: %d, Skipped: %d, Synced: %d",
                        hit_rate, checked, skipped, synced)
        return result

    async def _process_entities_batch(self, entities: list[dict[str, Any]], config: Any, result: Any) -> list[Any]:
        if not self.cache_enabled:
            return list(await super()._process_entities_batch(entities, config, result) or [])  # type: ignore[misc]
        cache_type = cache_type_of(config.entity_type)
        logger.info("Processing %d entities with cache checking (cache_enabled: %s)", len(entities), True)
        report = await self._check_entities(cache_type, entities, config, result)
        return await self._sync_checked(cache_type, entities, list(range(len(entities))), report, config, result)

    async def _process_page(self, body: bytes, page_number: int, config: Any, result: Any) -> None:
        """The raw-bytes path: the page is hashed natively and only the entities to sync are
        parsed into dicts."""
        if not self.cache_enabled:
            await super()._process_page(body, page_number, config, result)  # type: ignore[misc]
            return
        cache_type = cache_type_of(config.entity_type)
        entity_type = config.entity_type
        items_key = getattr(entity_type, "list_key", "items")
        id_field = getattr(entity_type, "id_field", None) or id_field_for(cache_type)
        try:
            page = await self.cache.check_page(cache_type, body, items_key=items_key, id_field=id_field,
                                               force=bool(getattr(config, "force", False)))
        except InputError as exc:
            from .zoho.client import ZohoMalformedPageError  # the host reports the page failed
            raise ZohoMalformedPageError(entity_type, page_number, body, str(exc)) from exc
        records, report = page.records, page.report
        logger.info("Processing %d entities with cache checking (cache_enabled: %s)", len(records), True)
        self._note_check(report, result)
        batch_size = max(1, int(getattr(config, "batch_size", 200)))
        for start in range(0, len(records), batch_size):
            indices = range(start, min(start + batch_size, len(records)))
            entities: list[dict[str, Any]] = []
            positions: list[int] = []
            for i in indices:
                if not report.sync[i] and records.errors[i] is None:
                    continue
                try:
                    entity = json.loads(records.item_bytes(i))
                except ValueError as exc:
                    self._count_failure(result, records.ids[i] or None, "unparseable_item", str(exc))
                    continue
                entities.append(entity)
                # Items the native hasher rejected have no digest: sync them, never cache them.
                positions.append(i if records.errors[i] is None else -1)
            await self._sync_checked(cache_type, entities, positions, report, config, result,
                                     counted_skips=sum(1 for i in indices if not report.sync[i] and records.errors[i] is None))

    # ---- internals ---------------------------------------------------------------------------

    async def _check_entities(self, cache_type: str, entities: Sequence[Mapping[str, Any]], config: Any,
                              result: Any) -> Optional[CheckReport]:
        """One bulk check. None means the check itself could not run: everything syncs."""
        id_field = getattr(config.entity_type, "id_field", None) or id_field_for(cache_type)
        try:
            report = await self.cache.check_entities(cache_type, entities, id_field=id_field,
                                                     force=bool(getattr(config, "force", False)))
        except Exception as exc:
            if not self._cache_outage:
                logger.warning("Cache check failed (%s): syncing every entity", exc)
                self._cache_outage = True
            return None
        self._note_check(report, result)
        return report

    def _note_check(self, report: CheckReport, result: Any) -> None:
        reasons = getattr(result, "reasons", None)
        if isinstance(reasons, dict):
            for name, count in report.by_reason.items():
                reasons[name] = reasons.get(name, 0) + count
        total = report.total
        self.cache_stats["total_checked"] += total
        self.cache_stats["cache_hits"] += report.skipped
        self.cache_stats["cache_misses"] += report.to_sync
        self.cache_stats["skipped"] += report.skipped
        logger.info("Cache check complete: %d total, %d to sync, %d skipped", total, report.to_sync, report.skipped)
        if report.error is not None and report.cache_errors:
            if not self._cache_outage:
                logger.warning("Redis unavailable (%s): syncing every entity until it is back", report.error[1])
            self._cache_outage = True
        elif self._cache_outage:
            logger.info("Redis is available again: cache checks resumed")
            self._cache_outage = False

    async def _sync_checked(self, cache_type: str, entities: list[dict[str, Any]], positions: list[int],
                            report: Optional[CheckReport], config: Any, result: Any,
                            counted_skips: Optional[int] = None) -> list[Any]:
        """Runs the host's hooks for the entities that must sync, then commits the ones saved.
        positions[i] is entities[i]'s index in the report (-1: not cacheable)."""
        if report is None:
            chosen = list(range(len(entities)))
            skipped = 0
        elif counted_skips is None:
            chosen = [i for i, p in enumerate(positions) if p < 0 or report.sync[p]]
            skipped = len(entities) - len(chosen)
        else:
            chosen = list(range(len(entities)))
            skipped = counted_skips
        result.total_skipped += skipped

        limit = asyncio.Semaphore(max(1, int(getattr(config, "max_concurrent", 10))))

        async def bounded(entity: dict[str, Any]) -> CachedOutcome:
            async with limit:
                return await self._sync_one(entity, config, result)

        outcomes = list(await asyncio.gather(*(bounded(entities[i]) for i in chosen)))
        self.cache_stats["synced"] += sum(1 for o in outcomes if o.ok)

        if report is not None:
            commit_at = [positions[i] for i, o in zip(chosen, outcomes) if o.ok and positions[i] >= 0]
            local_ids = [o.local_id for i, o in zip(chosen, outcomes) if o.ok and positions[i] >= 0]
            if commit_at:
                try:
                    committed = await self.cache.commit(report, commit_at, local_ids)
                    if committed.errors:
                        logger.warning("Cache commit: %d of %d states not written (%s); they will sync again",
                                       committed.errors, len(commit_at), committed.error)
                except Exception as exc:
                    logger.warning("Cache commit failed (%s): those entities will sync again", exc)
        return outcomes

    async def _sync_one(self, entity: dict[str, Any], config: Any, result: Any) -> CachedOutcome:
        cache_type = cache_type_of(config.entity_type)
        id_field = getattr(config.entity_type, "id_field", None) or id_field_for(cache_type)
        raw_id = entity.get(id_field) if isinstance(entity, Mapping) else None
        zoho_id = None if raw_id is None else str(raw_id)
        result.total_processed += 1
        stage = "validate"
        try:
            if getattr(config, "enable_validation", True):
                if not await self._call_hook("_validate_entity", entity, config):
                    return self._count_failure(result, zoho_id, "invalid", "entity failed validation")
            record = entity
            if getattr(config, "enable_transformation", True):
                stage = "transform"
                record = await self._call_hook("_transform_entity", entity, config)
            stage = "save"
            saved = await self._call_hook("_save_entity", record, config)
        except Exception as exc:  # one entity's failure is counted, never cached, never raised
            return self._count_failure(result, zoho_id, f"{stage}_failed", repr(exc))
        result.total_success += 1
        local_id = _local_id_of(saved)
        try:
            await self._call_hook_event("entity.synced", {"entity_type": cache_type, "zoho_id": zoho_id,
                                                          "local_id": local_id})
        except Exception:
            logger.exception("publishing entity.synced failed")
        return CachedOutcome(zoho_id, True, "synced", local_id)

    def _count_failure(self, result: Any, zoho_id: Optional[str], reason: str, message: str) -> CachedOutcome:
        result.total_failed += 1
        errors = getattr(result, "errors", None)
        if isinstance(errors, list):
            errors.append({"error": reason, "zoho_id": zoho_id, "message": message})
        return CachedOutcome(zoho_id, False, reason)

    async def _call_hook(self, name: str, entity: Any, config: Any) -> Any:
        """Calls a host hook with (entity, config) or (entity), sync or async."""
        hook = getattr(self, name)
        arity = self._hook_arity.get(name)
        if arity is None:
            try:
                params = [p for p in inspect.signature(hook).parameters.values()
                          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
                has_var = any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(hook).parameters.values())
                arity = 2 if has_var or len(params) >= 2 else 1
            except (TypeError, ValueError):
                arity = 2
            self._hook_arity[name] = arity
        out = hook(entity, config) if arity == 2 else hook(entity)
        if inspect.isawaitable(out):
            out = await out
        return out

    async def _call_hook_event(self, event_type: str, payload: dict[str, Any]) -> None:
        publish = getattr(self, "_publish_event", None)
        if publish is None:
            return
        out = publish(event_type, payload)
        if inspect.isawaitable(out):
            await out


def cached_orchestrator(base: type) -> type:
    """A subclass of the host's own orchestrator class with the cache in front of it."""
    return type(f"Cached{base.__name__}", (CachedSyncMixin, base), {"__module__": base.__module__})


__all__ = ["CachedSyncMixin", "cached_orchestrator", "cache_type_of"]
