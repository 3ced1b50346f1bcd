"""End to end: the Zoho simulator (real HTTP through uvicorn, or httpx's ASGI transport), the cached
orchestrator, a real redis-server and SQLite (PostgreSQL when one is reachable). After every run the
database must hold exactly what the simulator serves: nothing lost, nothing stale."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import httpx
import pytest

import tdscache
from tdscache.testing import RedisServer, SimulatorConfig, ZohoSimulator, client_config_for, create_app, get_simulator
from tdscache.zoho import EntityType, SyncConfig, SyncDatabase, SyncResult, UnifiedZohoClient
from tdscache.zoho.cached import CachedZohoSyncOrchestrator
from test_zoho_client import FakeTime  # a clock the client's sleeps move: a Retry-After costs no real time
from test_zoho_db import postgres_db  # noqa: F401  (a fixture: a throwaway schema, or a skip with the reason)

PRODUCTS = SyncConfig(EntityType.PRODUCTS)
STATE_KEY = "tds:entity:state:product:{}"


class RecordingOrchestrator(CachedZohoSyncOrchestrator):
    """Remembers which products each run wrote, and can act after a given page."""

    def __init__(self, *args: Any, after_page: Optional[Callable[[int], None]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.written: list[str] = []
        self.after_page = after_page

    async def sync_entity(self, config: Any) -> SyncResult:
        self.written = []
        result: SyncResult = await super().sync_entity(config)
        return result

    async def _save_entity(self, entity: dict[str, Any], config: Any) -> Any:
        local_id = await super()._save_entity(entity, config)
        self.written.append(str(entity["item_id"]))
        return local_id

    async def _process_page(self, body: bytes, page_number: int, config: Any, result: Any) -> None:
        await super()._process_page(body, page_number, config, result)
        if self.after_page is not None:
            self.after_page(page_number)


def outcome(result: SyncResult) -> tuple[int, int, int]:
    return result.total_success, result.total_skipped, result.total_failed


async def assert_database_equals_simulator(db: SyncDatabase, simulator: ZohoSimulator,
                                           without: frozenset[str] = frozenset()) -> None:
    served = {str(r["item_id"]): r for r in simulator.records("items")}
    stored = {row.zoho_id: row.data for row in await db.rows_for_warm(EntityType.PRODUCTS)}
    assert stored.keys() == served.keys() - without
    stale = [i for i in stored if stored[i] != served[i]]
    assert stale == []


def product_ids(simulator: ZohoSimulator) -> list[str]:
    return [str(r["item_id"]) for r in simulator.records("items")]


async def three_runs(orchestrator: RecordingOrchestrator, db: SyncDatabase, simulator: ZohoSimulator,
                     redis: RedisServer) -> None:
    """The scenario of the README: 1312/0, 0/1312, then exactly the 66 changed products."""
    first = await orchestrator.sync_entity(PRODUCTS)
    assert outcome(first) == (1312, 0, 0) and first.complete and first.db_writes == 1312
    assert first.reasons == {"no_cache_entry": 1312}
    await assert_database_equals_simulator(db, simulator)
    assert redis.command("DBSIZE") == 1312

    second = await orchestrator.sync_entity(PRODUCTS)
    assert outcome(second) == (0, 1312, 0) and second.db_writes == 0 and orchestrator.written == []
    await assert_database_equals_simulator(db, simulator)

    changed = simulator.mutate("items", fraction=0.05, seed=1)
    changed_ids = {str(i) for i in changed["changed_ids"]}
    assert len(changed_ids) == 66
    third = await orchestrator.sync_entity(PRODUCTS)
    assert outcome(third) == (66, 1246, 0) and third.db_writes == 66
    assert sorted(orchestrator.written) == sorted(changed_ids)
    assert third.reasons == {"content_changed": 66, "unchanged": 1246}
    await assert_database_equals_simulator(db, simulator)
    served = {str(r["item_id"]): r for r in simulator.records("items")}
    some_changed = sorted(changed_ids)[0]
    state = await orchestrator.cache.get_state("product", some_changed)
    assert state is not None and state["content_hash"] == tdscache.hash_entity(served[some_changed])
    assert state["last_modified_time"] == changed["last_modified_time"] and state["sync_count"] == 2


async def test_three_runs_over_real_http_write_all_then_nothing_then_exactly_the_changed(
        http_zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator,
        fresh_redis: RedisServer) -> None:
    orchestrator = RecordingOrchestrator(http_zoho_client, database=sqlite_db,
                                         cache=tdscache.AsyncCache(fresh_redis.url))
    await three_runs(orchestrator, sqlite_db, simulator, fresh_redis)
    assert simulator.stats_snapshot()["api_requests"] == 3 * 7


async def test_three_runs_into_postgresql(zoho_client: UnifiedZohoClient, postgres_db: SyncDatabase,  # noqa: F811
                                          simulator: ZohoSimulator, fresh_redis: RedisServer) -> None:
    orchestrator = RecordingOrchestrator(zoho_client, database=postgres_db,
                                         cache=tdscache.AsyncCache(fresh_redis.url))
    await three_runs(orchestrator, postgres_db, simulator, fresh_redis)


async def test_a_token_that_expires_mid_sync_is_refreshed_and_nothing_is_lost(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator,
        fresh_redis: RedisServer) -> None:
    def expire_after_page_2(page: int) -> None:
        if page == 2:
            simulator.expire_tokens()

    orchestrator = RecordingOrchestrator(zoho_client, database=sqlite_db, cache=tdscache.AsyncCache(fresh_redis.url),
                                         after_page=expire_after_page_2)
    result = await orchestrator.sync_entity(PRODUCTS)
    assert outcome(result) == (1312, 0, 0) and result.complete
    stats = simulator.stats_snapshot()
    assert stats["unauthorized"] == 1 and stats["tokens_issued"] == 2 and zoho_client.token_refreshes == 2
    await assert_database_equals_simulator(sqlite_db, simulator)
    again = await orchestrator.sync_entity(PRODUCTS)  # and the states written across the refresh hold
    assert outcome(again) == (0, 1312, 0)


async def test_429_answers_are_waited_out_as_retry_after_asks(sqlite_db: SyncDatabase,
                                                              fresh_redis: RedisServer) -> None:
    time = FakeTime()
    config = SimulatorConfig(seed=7, rate_limit_per_minute=3, clock=time)
    app = create_app(config)
    simulator = get_simulator(app)
    client_config = client_config_for("http://zoho.sim", config)
    async with UnifiedZohoClient(client_config, transport=httpx.ASGITransport(app=app), sleep=time.sleep,
                                 clock=time) as client:
        orchestrator = RecordingOrchestrator(client, database=sqlite_db, cache=tdscache.AsyncCache(fresh_redis.url))
        result = await orchestrator.sync_entity(PRODUCTS)
    assert outcome(result) == (1312, 0, 0) and result.complete
    rate_limited = simulator.stats_snapshot()["rate_limited"]
    assert rate_limited >= 2 and client.retries == rate_limited
    # Retry-After values are whole seconds; the client's own backoff would be fractional (jitter).
    assert len(time.sleeps) == rate_limited and all(s >= 1 and s == int(s) for s in time.sleeps)
    assert sum(time.sleeps) >= 60  # 7 pages at 3 per minute need at least two more windows
    await assert_database_equals_simulator(sqlite_db, simulator)


@pytest.mark.parametrize("mode", ["truncate", "corrupt_middle"])
async def test_a_malformed_page_fails_its_entities_caches_none_of_them_and_syncs_the_rest(
        mode: str, zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator,
        fresh_redis: RedisServer) -> None:
    page_3 = frozenset(product_ids(simulator)[400:600])
    simulator.set_faults({"malformed_pages": {"entity": "items", "pages": [3], "mode": mode}})
    orchestrator = RecordingOrchestrator(zoho_client, database=sqlite_db, cache=tdscache.AsyncCache(fresh_redis.url))
    result = await orchestrator.sync_entity(PRODUCTS)
    assert result.failed_pages == [3] and result.complete
    assert [e["page"] for e in result.errors if e["error"] == "malformed_page"] == [3]
    assert outcome(result) == (1112, 0, 0) and result.reasons == {"no_cache_entry": 1112, "malformed_page": 1}
    await assert_database_equals_simulator(sqlite_db, simulator, without=page_3)
    assert not any(fresh_redis.command("EXISTS", STATE_KEY.format(i)) for i in page_3)
    assert fresh_redis.command("DBSIZE") == 1112

    simulator.set_faults({"clear": True})
    healed = await orchestrator.sync_entity(PRODUCTS)
    assert outcome(healed) == (200, 1112, 0) and set(orchestrator.written) == page_3
    await assert_database_equals_simulator(sqlite_db, simulator)


async def test_redis_dying_mid_run_turns_the_rest_of_the_run_into_syncs(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator,
        fresh_redis: RedisServer) -> None:
    cache = tdscache.AsyncCache(fresh_redis.url, connect_timeout_ms=300, command_timeout_ms=300)
    orchestrator = RecordingOrchestrator(zoho_client, database=sqlite_db, cache=cache)
    await orchestrator.sync_entity(PRODUCTS)
    changed = {str(i) for i in simulator.mutate("items", fraction=0.05, seed=4)["changed_ids"]}

    def kill_after_page_2(page: int) -> None:
        if page == 2:
            fresh_redis.kill()

    orchestrator.after_page = kill_after_page_2
    result = await orchestrator.sync_entity(PRODUCTS)
    ids = product_ids(simulator)
    checked_before_the_kill = set(ids[:400])
    # Pages 1-2 were decided by the cache; every product after them could not be checked: synced.
    expected_written = (changed & checked_before_the_kill) | set(ids[400:])
    assert set(orchestrator.written) == expected_written and result.total_failed == 0
    assert result.total_skipped == len(checked_before_the_kill - changed)
    assert result.reasons["cache_check_error"] == 1312 - 400
    await assert_database_equals_simulator(sqlite_db, simulator)

    fresh_redis.start()  # back, and empty: every product syncs once more, none is skipped
    orchestrator.after_page = None
    after = await orchestrator.sync_entity(PRODUCTS)
    assert outcome(after) == (1312, 0, 0)
    await assert_database_equals_simulator(sqlite_db, simulator)


async def test_without_the_cache_every_run_writes_every_product(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator,
        fresh_redis: RedisServer) -> None:
    orchestrator = RecordingOrchestrator(zoho_client, database=sqlite_db, cache=tdscache.AsyncCache(fresh_redis.url))
    orchestrator.disable_caching()
    for _ in range(2):
        result = await orchestrator.sync_entity(PRODUCTS)
        assert outcome(result) == (1312, 0, 0) and result.db_writes == 1312
        await assert_database_equals_simulator(sqlite_db, simulator)
    assert fresh_redis.command("DBSIZE") == 0
