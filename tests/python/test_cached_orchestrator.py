"""cached_orchestrator() over a host orchestrator written here with the backend's shape: the
three runs, transformation, save failures, Redis dying mid-run, the logs, and the controls."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Optional

import pytest

import tdscache
from legacy_reference import legacy_hash
from tdscache.testing import RedisServer


@dataclass
class HostResult:
    sync_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    total_processed: int = 0
    total_success: int = 0
    total_failed: int = 0
    total_skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


class HostOrchestrator:
    """The host's own orchestrator: it owns fetching, validation, transformation and saving."""

    def __init__(self, zoho_client: Any = None, event_bus: Any = None) -> None:
        self.zoho_client = zoho_client
        self.event_bus = event_bus
        self.source: list[dict[str, Any]] = []
        self.db: dict[str, dict[str, Any]] = {}
        self.saved_ids: list[str] = []
        self.fail_ids: set[str] = set()
        self.events: list[str] = []
        self.on_save: Optional[Any] = None

    async def sync_entity(self, config: Any) -> HostResult:
        result = HostResult()
        self.saved_ids = []
        for start in range(0, len(self.source), config.batch_size):
            await self._process_entities_batch([dict(e) for e in self.source[start:start + config.batch_size]],
                                               config, result)
        return result

    async def _process_entities_batch(self, entities: list[dict[str, Any]], config: Any, result: HostResult) -> None:
        for entity in entities:  # the uncached path: everything is written
            result.total_processed += 1
            await self._save_entity(self._transform_entity(entity), config)
            result.total_success += 1

    async def _validate_entity(self, entity: dict[str, Any]) -> bool:
        return "item_id" in entity

    def _transform_entity(self, entity: dict[str, Any]) -> dict[str, Any]:  # a sync hook, on purpose
        return {**entity, "name": str(entity.get("name", "")).upper(), "transformed": True}

    async def _save_entity(self, entity: dict[str, Any], config: Any) -> str:
        zoho_id = str(entity["item_id"])
        if self.on_save is not None:
            self.on_save(len(self.saved_ids))
        if zoho_id in self.fail_ids:
            raise RuntimeError(f"database rejected {zoho_id}")
        self.db[zoho_id] = entity
        self.saved_ids.append(zoho_id)
        return str(len(self.db))

    async def _publish_event(self, event_type: str, payload: dict[str, Any]) -> None:
        self.events.append(event_type)


CachedHost = tdscache.cached_orchestrator(HostOrchestrator)


def make_products(n: int) -> list[dict[str, Any]]:
    return [{"item_id": 2646610000000113574 + i, "name": f"Olive Oil {i} زيت", "rate": 10.0 + i,
             "last_modified_time": "2025-11-13T08:30:00+0300",
             "custom_fields": [{"label": "Origin", "value": "SA"}]} for i in range(n)]


def config(**overrides: Any) -> SimpleNamespace:
    values: dict[str, Any] = dict(entity_type="products", batch_size=500, max_concurrent=10,
                                  enable_validation=True, enable_transformation=True)
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture
def orchestrator(fresh_redis: RedisServer) -> Any:
    host = CachedHost(zoho_client=None, event_bus=None, cache=tdscache.AsyncCache(fresh_redis.url))
    host.source = make_products(1312)
    return host


def mutate(source: list[dict[str, Any]], fraction: float, seed: int = 1) -> set[str]:
    rng = random.Random(seed)
    chosen = rng.sample(range(len(source)), round(len(source) * fraction))
    for i in chosen:
        source[i]["rate"] += 1
        source[i]["last_modified_time"] = "2025-11-14T09:00:00+0300"
    return {str(source[i]["item_id"]) for i in chosen}


async def test_three_runs_sync_all_then_nothing_then_exactly_the_changed(orchestrator: Any,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tdscache")
    first = await orchestrator.sync_entity(config())
    assert (first.total_success, first.total_skipped, len(orchestrator.saved_ids)) == (1312, 0, 1312)

    second = await orchestrator.sync_entity(config())
    assert (second.total_success, second.total_skipped, orchestrator.saved_ids) == (0, 1312, [])

    changed = mutate(orchestrator.source, 0.05)
    third = await orchestrator.sync_entity(config())
    assert set(orchestrator.saved_ids) == changed and len(changed) == 66
    assert third.total_skipped == 1312 - 66
    assert orchestrator.db == {str(e["item_id"]): orchestrator._transform_entity(e) for e in orchestrator.source}

    messages = [r.getMessage() for r in caplog.records]
    assert "Processing 1312 entities with cache checking (cache_enabled: True)" not in messages  # batches of 500
    assert "Processing 500 entities with cache checking (cache_enabled: True)" in messages
    assert "Cache check complete: 500 total, 0 to sync, 500 skipped" in messages
    assert "Cache Statistics: Hit Rate: 100.0%, Total Checked: 1312, Skipped: 1312, Synced: 0" in messages
    stats = orchestrator.get_cache_statistics()
    assert stats["total_checked"] == 3 * 1312 and stats["skipped"] == 1312 + 1312 - 66
    assert stats["synced"] == 1312 + 66


async def test_one_bulk_check_per_batch_call(orchestrator: Any, fresh_redis: RedisServer) -> None:
    orchestrator.source = make_products(1312)
    await orchestrator.sync_entity(config(batch_size=1312))
    stats = fresh_redis.info_commandstats()
    assert stats["mget"]["calls"] == 2
    # Commits are pipelined scripts (several entities per call), never one command per entity.
    assert 0 < stats["evalsha"]["calls"] < 1312


async def test_transformation_does_not_defeat_the_cache(orchestrator: Any) -> None:
    await orchestrator.sync_entity(config(enable_transformation=True))
    second = await orchestrator.sync_entity(config(enable_transformation=True))
    assert second.total_skipped == 1312
    # The committed digest is the raw entity's, not the transformed copy's.
    state = orchestrator.cache.sync.get_state("product", orchestrator.source[0]["item_id"])
    assert state["content_hash"] == legacy_hash(orchestrator.source[0])


async def test_failed_saves_are_not_committed_and_retry_next_run(orchestrator: Any) -> None:
    failing = {str(e["item_id"]) for e in orchestrator.source[:25]}
    orchestrator.fail_ids = set(failing)
    first = await orchestrator.sync_entity(config())
    assert first.total_failed == 25 and first.total_success == 1312 - 25
    assert all(e["error"] == "save_failed" for e in first.errors)
    orchestrator.fail_ids = set()
    second = await orchestrator.sync_entity(config())
    assert set(orchestrator.saved_ids) == failing and second.total_skipped == 1312 - 25


async def test_redis_killed_mid_run_syncs_everything_without_raising(fresh_redis: RedisServer,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    host = CachedHost(cache=tdscache.AsyncCache(fresh_redis.url, connect_timeout_ms=300, command_timeout_ms=300))
    host.source = make_products(1312)
    await host.sync_entity(config())
    caplog.set_level(logging.WARNING, logger="tdscache")

    def kill_at_first_save(n: int) -> None:
        if n == 0:
            fresh_redis.kill()

    # Run 2: the first batch is checked, then Redis dies; later batches cannot be checked.
    host.source = make_products(1312)
    for e in host.source[:600]:
        e["rate"] += 1  # changed, so batch 1 has saves and the kill happens inside the run
    host.on_save = kill_at_first_save
    result = await host.sync_entity(config())
    assert result.total_failed == 0
    assert set(host.saved_ids) == {str(e["item_id"]) for e in host.source}  # everything after the kill synced
    outage_warnings = [r for r in caplog.records if "unavailable" in r.getMessage() or "failed" in r.getMessage()]
    assert len([r for r in outage_warnings if "Redis unavailable" in r.getMessage()]) == 1


async def test_disable_caching_passes_through_to_the_host(orchestrator: Any) -> None:
    orchestrator.disable_caching()
    assert orchestrator.cache_enabled is False
    result = await orchestrator.sync_entity(config())
    assert result.total_success == 1312 and result.total_skipped == 0
    orchestrator.enable_caching()
    await orchestrator.sync_entity(config())
    again = await orchestrator.sync_entity(config())
    assert again.total_skipped == 1312
    assert await orchestrator.clear_entity_cache("products", orchestrator.source[0]["item_id"]) == 1
    assert await orchestrator.clear_entity_cache("products") == 1311
    orchestrator.reset_cache_stats()
    assert orchestrator.cache_stats == {"total_checked": 0, "cache_hits": 0, "cache_misses": 0, "skipped": 0, "synced": 0}


def test_cached_orchestrator_subclasses_the_host() -> None:
    assert issubclass(CachedHost, HostOrchestrator) and issubclass(CachedHost, tdscache.CachedSyncMixin)
    assert CachedHost.__name__ == "CachedHostOrchestrator"
