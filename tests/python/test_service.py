"""TDSCacheService keeps the old service's surface (names, arguments, return shapes) and is
compatible with it both ways on a real redis-server; the Cache/AsyncCache facade's operations;
round trips asserted with INFO commandstats."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis as redis_py

import tdscache
from legacy_reference import LegacyService, legacy_hash, state_key
from tdscache.testing import RedisServer


def products(n: int, *, offset: int = 0) -> list[dict[str, Any]]:
    return [{"item_id": 2646610000000113574 + i, "name": f"زيت Oil {i}", "rate": 12.5 + i,
             "last_modified_time": "2025-11-13T08:30:00+0300", "created_at": "2024-01-01T00:00:00",
             "locations": [{"location_id": 1, "stock": i}]} for i in range(offset, offset + n)]


@pytest.fixture
def service(fresh_redis: RedisServer) -> RedisServer:
    tdscache.configure(fresh_redis.url)
    return fresh_redis


async def test_should_sync_then_mark_then_skip(service: RedisServer) -> None:
    item = products(1)[0]
    item_id = str(item["item_id"])
    assert await tdscache.TDSCacheService.should_sync_entity("product", item_id, item) == (True, "no_cache_entry")
    assert await tdscache.TDSCacheService.mark_entity_synced("product", item_id, item, local_id=42) is True
    assert await tdscache.TDSCacheService.should_sync_entity("product", item_id, item) == (False, "unchanged")
    assert await tdscache.TDSCacheService.should_sync_entity("product", item_id, item, force=True) == (True, "forced_sync")
    changed = dict(item, rate=99.0)
    assert await tdscache.TDSCacheService.should_sync_entity("product", item_id, changed) == (True, "content_changed")
    state = await tdscache.TDSCacheService.get_entity_sync_state("product", item_id)
    assert state is not None
    assert state["local_id"] == "42" and state["sync_count"] == 1 and state["content_hash"] == legacy_hash(item)
    assert await tdscache.check_should_sync("product", item_id, item) == (False, "unchanged")


async def test_bulk_check_returns_entities_to_sync_and_stats(service: RedisServer) -> None:
    items = products(10)
    for item in items[:4]:
        await tdscache.TDSCacheService.mark_entity_synced("product", str(item["item_id"]), item)
    to_sync, stats = await tdscache.TDSCacheService.bulk_check_should_sync("product", items)
    assert to_sync == items[4:]
    assert stats == {"total": 10, "to_sync": 6, "skipped": 4, "reasons": {"no_cache_entry": 6, "unchanged": 4}}


async def test_a_bulk_check_of_1312_entities_is_two_mgets(service: RedisServer) -> None:
    await tdscache.TDSCacheService.bulk_check_should_sync("product", products(1312))
    stats = service.info_commandstats()
    assert stats["mget"]["calls"] == 2
    assert "get" not in stats


async def test_invalidate_warm_batches_and_statistics(service: RedisServer) -> None:
    items = products(20)
    warmed = await tdscache.TDSCacheService.warm_cache_from_db("product", [dict(i, local_id=n) for n, i in enumerate(items)])
    assert warmed == 20
    _, stats = await tdscache.TDSCacheService.bulk_check_should_sync("product", items)
    assert stats["skipped"] == 20
    assert await tdscache.TDSCacheService.invalidate_entity_cache("product", str(items[0]["item_id"])) == 1
    assert await tdscache.invalidate_cache("product") == 19
    assert await tdscache.TDSCacheService.was_batch_synced_recently("product") is False
    assert await tdscache.TDSCacheService.mark_batch_sync_complete("product", "b1", {"synced": 20}) is True
    assert await tdscache.TDSCacheService.was_batch_synced_recently("product", within_minutes=5) is True
    raw = service.command("GET", "tds:batch:sync:product:b1")
    assert isinstance(raw, bytes) and json.loads(raw) == {"synced": 20}
    statistics = await tdscache.TDSCacheService.get_sync_statistics()
    assert statistics["checked"] >= 20 and "hit_rate" in statistics and "redis_url" in statistics


def test_entries_written_by_the_legacy_service_are_hits_and_vice_versa(fresh_redis: RedisServer) -> None:
    r = redis_py.Redis.from_url(fresh_redis.url)
    legacy = LegacyService(r)
    cache = tdscache.Cache(fresh_redis.url)
    items = products(50)
    for item in items:
        legacy.mark_entity_synced("product", str(item["item_id"]), item, local_id="7")
    report = cache.check_entities("product", items)
    assert report.reasons == ["unchanged"] * 50

    others = products(50, offset=100)
    report = cache.check_entities("product", others)
    assert cache.commit(report, report.indices_to_sync(), ["9"] * 50).written == 50
    for item in others:
        assert legacy.should_sync_entity("product", str(item["item_id"]), item) == (False, "unchanged")
        value = json.loads(r.get(state_key("product", str(item["item_id"]))))
        assert value["sync_count"] == 1 and value["local_id"] == "9"
    # A legacy write after ours keeps counting from our sync_count.
    legacy.mark_entity_synced("product", str(others[0]["item_id"]), others[0])
    assert cache.get_state("product", others[0]["item_id"])["sync_count"] == 2  # type: ignore[index]


def test_redis_down_means_sync_everything_without_raising() -> None:
    with RedisServer() as server:
        url = server.url
    cache = tdscache.Cache(url, connect_timeout_ms=200, command_timeout_ms=200)
    report = cache.check_entities("product", products(30))
    assert report.reasons == ["cache_check_error"] * 30
    assert report.error is not None


async def test_async_check_keeps_the_event_loop_responsive(fresh_redis: RedisServer) -> None:
    cache = tdscache.AsyncCache(fresh_redis.url)
    items = products(100_000)
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    report = await cache.check_entities("product", items)
    elapsed = time.perf_counter() - started
    done.set()
    await task
    assert report.to_sync == 100_000
    during = [t for t in ticks if started <= t <= started + elapsed]
    # A blocked loop could not tick at all while the check ran.
    assert len(during) >= 3, (len(during), elapsed)


def test_cache_rejects_a_bad_url_with_a_clear_error() -> None:
    with pytest.raises(tdscache.ConfigError) as info:
        tdscache.Cache("http://nope")
    assert info.value.status_name == "url_invalid"
