"""ZohoSyncOrchestrator, the reference (uncached) sync: every entity on every page is validated,
transformed, written to the database and announced on an event bus. Subclasses (the cached one)
override the page and batch hooks; the HTTP client and the database live in their own modules.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Union

from .client import UnifiedZohoClient, ZohoAPIError, ZohoMalformedPageError, parse_page_records
from .db import SyncDatabase
from .types import SyncConfig, SyncResult

log = logging.getLogger("tdscache.zoho")

EventHandler = Callable[[str, dict[str, Any]], Union[Awaitable[None], None]]


class EventBus:
    """In-memory publish/subscribe. Handlers may be sync or async; a failing handler is logged and
    never fails the sync (an event is a notification, the database write already happened)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[EventHandler]] = {}

    def subscribe(self, event_type: str, handler: EventHandler) -> None:
        """`event_type` "*" receives every event."""
        self._handlers.setdefault(event_type, []).append(handler)

    async def publish(self, event_type: str, payload: dict[str, Any]) -> None:
        for handler in self._handlers.get(event_type, []) + self._handlers.get("*", []):
            try:
                outcome = handler(event_type, payload)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("event handler for %s failed", event_type)


@dataclass(frozen=True)
class EntityOutcome:
    """What happened to one entity in a batch; `local_id` is set when it was written."""

    zoho_id: str | None
    ok: bool
    reason: str
    local_id: str | None = None


class ZohoSyncOrchestrator:
    """Lists an entity type page by page and pushes every entity through the per-entity hooks.

    Hooks, in call order: _process_page (one raw page body), _process_entities_batch (a slice of
    config.batch_size parsed entities), _process_entity (one entity), and inside it
    _validate_entity, _transform_entity, _save_entity and _publish_event. All are async and meant
    to be overridden. One instance may run several syncs one after another; a SyncResult is per run.
    """

    def __init__(self, zoho_client: UnifiedZohoClient, event_bus: EventBus | None = None,
                 database: SyncDatabase | None = None) -> None:
        self.zoho_client = zoho_client
        self.event_bus = event_bus
        self.database = database

    async def sync_entity(self, config: SyncConfig) -> SyncResult:
        result = SyncResult(entity_type=config.entity_type)
        started = time.perf_counter()
        writes_before = self.database.write_count if self.database is not None else 0
        await self._publish_event("sync.started", {"sync_id": result.sync_id,
                                                   "entity_type": config.entity_type.value})
        outcomes = self.zoho_client.iter_page_outcomes(config.entity_type)
        last_malformed = False
        try:
            async for outcome in outcomes:
                result.pages += 1
                if isinstance(outcome, ZohoMalformedPageError):
                    last_malformed = True
                    self._record_malformed_page(outcome, result)
                    continue
                last_malformed = False
                try:
                    await self._process_page(outcome.body, outcome.page, config, result)
                except ZohoMalformedPageError as exc:
                    self._record_malformed_page(exc, result)
                except Exception as exc:
                    # A hook failing mid-page (a subclass's cache or database): report the page and
                    # go on; its entities were not all written and will be synced again next run.
                    log.exception("%s page %d failed", config.entity_type.value, outcome.page)
                    self._record_failed_page(result, outcome.page, "page_failed", repr(exc))
            if last_malformed:
                # The walk gave up after too many malformed pages: later pages were never seen.
                result.complete = False
        except ZohoAPIError as exc:
            result.complete = False
            result.errors.append({"error": "api_error", "message": str(exc), "status": exc.status,
                                  "code": exc.code, "page": result.pages + 1})
            log.error("%s sync %s stopped: %s", config.entity_type.value, result.sync_id, exc)
        finally:
            await outcomes.aclose()
            result.finished_at = datetime.now(timezone.utc)
            result.duration_s = time.perf_counter() - started
            if self.database is not None:
                result.db_writes = self.database.write_count - writes_before
        await self._publish_event("sync.completed", result.to_dict())
        return result

    def _record_malformed_page(self, error: ZohoMalformedPageError, result: SyncResult) -> None:
        log.warning("%s", error)
        self._record_failed_page(result, error.page, "malformed_page", error.reason, body_bytes=len(error.body))

    def _record_failed_page(self, result: SyncResult, page: int, reason: str, message: str,
                            **details: Any) -> None:
        # The page's entity count is unknown, so it is recorded per page, never as skips.
        result.failed_pages.append(page)
        result.count_reason(reason)
        result.errors.append({"error": reason, "page": page, "message": message, **details})

    # -- hooks -------------------------------------------------------------------------------------

    async def _process_page(self, body: bytes, page_number: int, config: SyncConfig,
                            result: SyncResult) -> None:
        """Parse one raw page and process it in batch_size slices. Raises ZohoMalformedPageError
        when the body is not a JSON page; sync_entity then reports the page failed."""
        entities = parse_page_records(config.entity_type, page_number, body)
        for start in range(0, len(entities), config.batch_size):
            await self._process_entities_batch(entities[start:start + config.batch_size], config, result)

    async def _process_entities_batch(self, entities: list[dict[str, Any]], config: SyncConfig,
                                      result: SyncResult) -> list[EntityOutcome]:
        """Process entities concurrently, at most config.max_concurrent at a time; outcomes in input
        order (a subclass reads local ids from them)."""
        limit = asyncio.Semaphore(config.max_concurrent)

        async def bounded(entity: dict[str, Any]) -> EntityOutcome:
            async with limit:
                return await self._process_entity(entity, config, result)

        return list(await asyncio.gather(*(bounded(entity) for entity in entities)))

    async def _process_entity(self, entity: dict[str, Any], config: SyncConfig,
                              result: SyncResult) -> EntityOutcome:
        """Validate, transform, save, announce one entity; every failure is counted, none raised."""
        result.total_processed += 1
        raw_id = entity.get(config.entity_type.id_field) if isinstance(entity, dict) else None
        zoho_id = None if raw_id is None else str(raw_id)
        stage = "validate"
        try:
            if config.enable_validation and not await self._validate_entity(entity, config):
                return await self._fail(result, zoho_id, "invalid", "entity failed validation", config)
            stage = "transform"
            record = await self._transform_entity(entity, config) if config.enable_transformation else entity
            stage = "save"
            local_id = await self._save_entity(record, config)
        except Exception as exc:  # one bad entity must not stop the batch
            return await self._fail(result, zoho_id, f"{stage}_failed", repr(exc), config)
        result.total_success += 1
        result.count_reason("uncached")
        await self._publish_event("entity.synced", {
            "entity_type": config.entity_type.value, "zoho_id": zoho_id, "local_id": local_id})
        return EntityOutcome(zoho_id, True, "uncached", local_id)

    async def _fail(self, result: SyncResult, zoho_id: str | None, reason: str, message: str,
                    config: SyncConfig) -> EntityOutcome:
        result.total_failed += 1
        result.count_reason(reason)
        result.errors.append({"error": reason, "zoho_id": zoho_id, "message": message})
        await self._publish_event("entity.failed", {
            "entity_type": config.entity_type.value, "zoho_id": zoho_id, "reason": reason})
        return EntityOutcome(zoho_id, False, reason)

    async def _validate_entity(self, entity: dict[str, Any], config: SyncConfig) -> bool:
        """An entity needs its id (a non-negative integer or a non-empty string) to be stored."""
        if not isinstance(entity, dict):
            return False
        entity_id = entity.get(config.entity_type.id_field)
        if isinstance(entity_id, bool):
            return False
        if isinstance(entity_id, int):
            return entity_id >= 0
        return isinstance(entity_id, str) and bool(entity_id.strip())

    async def _transform_entity(self, entity: dict[str, Any], config: SyncConfig) -> dict[str, Any]:
        """The record to store: Zoho's fields unchanged plus `zoho_synced_at` (UTC, ISO 8601)."""
        record = dict(entity)
        record["zoho_synced_at"] = datetime.now(timezone.utc).isoformat()
        return record

    async def _save_entity(self, entity: dict[str, Any], config: SyncConfig) -> str | None:
        """Upsert into the database; returns the local id (None without a database: a dry run)."""
        if self.database is None:
            return None
        zoho_id = str(entity[config.entity_type.id_field])
        return await self.database.upsert(config.entity_type, zoho_id, entity)

    async def _publish_event(self, event_type: str, payload: dict[str, Any]) -> None:
        if self.event_bus is not None:
            await self.event_bus.publish(event_type, payload)
