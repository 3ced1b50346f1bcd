"""tdscache.fastapi.router through httpx's ASGI transport: bulk-sync counts, force and batch size,
the cache endpoints (stats, inspect, invalidate one or a type), Zoho failing part way (502), Redis
down (bulk-sync still syncs everything, stats still answers) and the app wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import tdscache
from tdscache.fastapi import MAX_REPORTED_ERRORS, configure_router, create_app, get_orchestrator, router
from tdscache.testing import RedisServer, SimulatorConfig, ZohoSimulator, client_config_for
from tdscache.zoho import EntityType, SyncDatabase, UnifiedZohoClient
from tdscache.zoho.cached import CachedZohoSyncOrchestrator

SYNC = "/api/zoho/bulk-sync/products"
# Three pages (200, 200, 50): enough for every paging path, and quick to write to SQLite. The exact
# 1,312-product scenario is test_e2e.py's.
N = 450


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(seed=7, item_count=N, contact_count=250)


@pytest.fixture
def orchestrator(zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase,
                 fresh_redis: RedisServer) -> CachedZohoSyncOrchestrator:
    # Short deadlines: the Redis-down tests must not wait on the library's default timeouts.
    cache = tdscache.AsyncCache(fresh_redis.url, connect_timeout_ms=300, command_timeout_ms=300)
    return CachedZohoSyncOrchestrator(zoho_client, database=sqlite_db, cache=cache)


@pytest.fixture
async def api(orchestrator: CachedZohoSyncOrchestrator) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(orchestrator=orchestrator)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


def counts(answer: dict[str, Any]) -> tuple[int, int, int]:
    return answer["synced"], answer["skipped"], answer["failed"]


async def test_bulk_sync_answers_the_documented_fields_and_skips_on_the_second_call(
        api: httpx.AsyncClient, sqlite_db: SyncDatabase) -> None:
    first = await api.post(SYNC)
    assert first.status_code == 200
    body = first.json()
    assert {"synced", "skipped", "failed", "duration_s", "reasons"} <= body.keys()
    assert counts(body) == (N, 0, 0) and body["reasons"] == {"no_cache_entry": N}
    assert body["complete"] and body["db_writes"] == N and body["duration_s"] > 0
    assert await sqlite_db.count(EntityType.PRODUCTS) == N

    second = (await api.post(SYNC, json={})).json()
    assert counts(second) == (0, N, 0) and second["reasons"] == {"unchanged": N}
    assert second["db_writes"] == 0


async def test_force_writes_every_entity_even_when_cached(api: httpx.AsyncClient) -> None:
    await api.post(SYNC)
    forced = (await api.post(SYNC, json={"force": True})).json()
    assert counts(forced) == (N, 0, 0) and forced["reasons"] == {"forced_sync": N}


async def test_batch_size_is_accepted_and_bad_bodies_are_refused(api: httpx.AsyncClient) -> None:
    small = await api.post(SYNC, json={"batch_size": 7})
    assert small.status_code == 200 and counts(small.json()) == (N, 0, 0)
    for bad in ({"batch_size": 0}, {"batch_size": "many"}, {"force": True, "colour": "red"}):
        answer = await api.post(SYNC, json=bad)
        assert answer.status_code == 422, bad


async def test_other_entity_names_resolve_and_unknown_ones_are_404(api: httpx.AsyncClient,
                                                                    sqlite_db: SyncDatabase) -> None:
    customers = (await api.post("/api/zoho/bulk-sync/customers")).json()
    assert counts(customers) == (250, 0, 0) and customers["entity_type"] == "customers"
    assert await sqlite_db.count(EntityType.CUSTOMERS) == 250
    unknown = await api.post("/api/zoho/bulk-sync/widgets")
    assert unknown.status_code == 404 and "unknown entity type 'widgets'" in unknown.json()["detail"]


async def test_inspect_returns_the_state_the_sync_committed(api: httpx.AsyncClient, simulator: ZohoSimulator,
                                                            sqlite_db: SyncDatabase) -> None:
    await api.post(SYNC)
    record = simulator.records("items")[5]
    item_id = str(record["item_id"])
    for name in ("products", "product", "items"):
        answer = await api.get(f"/api/zoho/cache/{name}/{item_id}")
        assert answer.status_code == 200
        body = answer.json()
        assert body["found"] and body["entity_type"] == "product" and body["entity_id"] == item_id
        assert body["state"]["content_hash"] == tdscache.hash_entity(record)
        assert body["state"]["local_id"] == (await sqlite_db.get(EntityType.PRODUCTS, item_id)).local_id
    missing = await api.get("/api/zoho/cache/products/1")
    assert missing.status_code == 404 and missing.json() == {
        "entity_type": "product", "entity_id": "1", "found": False, "state": None}


async def test_inspect_reports_a_corrupt_state_without_failing(api: httpx.AsyncClient,
                                                               fresh_redis: RedisServer) -> None:
    fresh_redis.command("SET", "tds:entity:state:product:42", "{not json")
    answer = await api.get("/api/zoho/cache/products/42")
    assert answer.status_code == 200
    assert answer.json()["found"] is True and "unreadable" in answer.json()["error"]


async def test_deleting_one_state_resyncs_exactly_that_entity(api: httpx.AsyncClient,
                                                              simulator: ZohoSimulator) -> None:
    await api.post(SYNC)
    item_id = str(simulator.records("items")[100]["item_id"])
    deleted = await api.delete(f"/api/zoho/cache/products/{item_id}")
    assert deleted.status_code == 200 and deleted.json() == {
        "entity_type": "product", "entity_id": item_id, "deleted": 1}
    assert (await api.get(f"/api/zoho/cache/products/{item_id}")).status_code == 404
    again = (await api.post(SYNC)).json()
    assert counts(again) == (1, N - 1, 0) and again["reasons"] == {"no_cache_entry": 1, "unchanged": N - 1}


async def test_deleting_a_type_resyncs_everything_of_that_type(api: httpx.AsyncClient,
                                                               fresh_redis: RedisServer) -> None:
    await api.post(SYNC)
    fresh_redis.command("SET", "tds:entity:state:customer:7", "{}")  # another type must survive
    deleted = await api.delete("/api/zoho/cache/products")
    assert deleted.json() == {"entity_type": "product", "entity_id": None, "deleted": N}
    assert fresh_redis.command("EXISTS", "tds:entity:state:customer:7") == 1
    assert counts((await api.post(SYNC)).json()) == (N, 0, 0)


async def test_stats_report_redis_and_the_counts_of_the_syncs(api: httpx.AsyncClient) -> None:
    await api.post(SYNC)
    await api.post(SYNC)
    answer = await api.get("/api/zoho/cache/stats")
    assert answer.status_code == 200
    body = answer.json()
    assert body["redis"]["available"] is True and body["redis"]["ping_ms"] >= 0 and "error" not in body
    assert body["engine"]["checked"] == 2 * N and body["engine"]["skipped"] == N
    assert body["sync"]["total_checked"] == 2 * N and body["sync"]["cache_enabled"] is True


async def test_with_redis_down_bulk_sync_still_syncs_everything_and_cache_endpoints_answer(
        api: httpx.AsyncClient, fresh_redis: RedisServer, sqlite_db: SyncDatabase, simulator: ZohoSimulator) -> None:
    await api.post(SYNC)
    simulator.mutate("items", count=10, seed=3)
    fresh_redis.stop()

    answer = await api.post(SYNC)
    assert answer.status_code == 200
    body = answer.json()
    assert counts(body) == (N, 0, 0) and body["reasons"] == {"cache_check_error": N}
    stored = {r.zoho_id: r.data["rate"] for r in await sqlite_db.fetch_all(EntityType.PRODUCTS)}
    assert stored == {str(r["item_id"]): r["rate"] for r in simulator.records("items")}

    stats = await api.get("/api/zoho/cache/stats")
    assert stats.status_code == 200
    assert stats.json()["redis"]["available"] is False and "Redis unavailable" in stats.json()["error"]
    inspect = await api.get("/api/zoho/cache/products/1")
    assert inspect.status_code == 503 and inspect.json()["found"] is None and inspect.json()["error"]
    for path in ("/api/zoho/cache/products", "/api/zoho/cache/products/1"):
        delete = await api.delete(path)
        assert delete.status_code == 503 and delete.json()["deleted"] is None and delete.json()["error"]


async def test_zoho_failing_part_way_answers_502_with_the_partial_counts(
        sim_config: SimulatorConfig, sim_transport: httpx.ASGITransport, simulator: ZohoSimulator,
        sqlite_db: SyncDatabase, fresh_redis: RedisServer) -> None:
    async def no_wait(_seconds: float) -> None:
        return None

    simulator.set_faults({"fail_pages": {"entity": "items", "pages": [3], "status": 503}})
    config = client_config_for("http://zoho.sim", sim_config, max_retries=1)
    async with UnifiedZohoClient(config, transport=sim_transport, sleep=no_wait) as client:
        app = create_app(orchestrator=CachedZohoSyncOrchestrator(
            client, database=sqlite_db, cache=tdscache.AsyncCache(fresh_redis.url)))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
            answer = await api.post(SYNC)
    assert answer.status_code == 502
    body = answer.json()
    assert body["complete"] is False and counts(body) == (400, 0, 0)
    assert body["errors"][0]["error"] == "api_error" and body["errors"][0]["status"] == 503


async def test_malformed_page_is_reported_in_failed_pages(api: httpx.AsyncClient, simulator: ZohoSimulator) -> None:
    simulator.set_faults({"malformed_pages": {"entity": "items", "pages": [2], "mode": "corrupt_middle"}})
    body = (await api.post(SYNC)).json()
    assert body["failed_pages"] == [2] and body["synced"] == N - 200 and body["complete"] is True
    assert body["reasons"]["malformed_page"] == 1


async def test_error_lists_are_capped(orchestrator: CachedZohoSyncOrchestrator, api: httpx.AsyncClient) -> None:
    async def refuse(entity: dict[str, Any], config: Any) -> str:
        raise RuntimeError("database refused")

    orchestrator._save_entity = refuse  # type: ignore[method-assign]
    body = (await api.post(SYNC)).json()
    assert counts(body) == (0, 0, N)
    assert len(body["errors"]) == MAX_REPORTED_ERRORS and body["errors_omitted"] == N - MAX_REPORTED_ERRORS


async def test_an_app_can_include_the_router_and_override_the_orchestrator(
        orchestrator: CachedZohoSyncOrchestrator) -> None:
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_orchestrator] = lambda: orchestrator
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        assert counts((await api.post(SYNC)).json()) == (N, 0, 0)


async def test_an_unconfigured_router_says_how_to_configure_zoho(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "ZOHO_ORGANIZATION_ID"):
        monkeypatch.delenv(name, raising=False)
    app = FastAPI()
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        answer = await api.post(SYNC)
    assert answer.status_code == 503
    assert "ZOHO_CLIENT_ID" in answer.json()["detail"] and "configure_router" in answer.json()["detail"]


async def test_configure_router_with_a_separate_cache_serves_the_cache_endpoints_from_it(
        orchestrator: CachedZohoSyncOrchestrator, fresh_redis: RedisServer) -> None:
    other = tdscache.AsyncCache(fresh_redis.url, key_prefix="other:state")
    await other.warm("product", ["9"], [b"\x01" * 32])
    app = FastAPI()
    app.include_router(router)
    configure_router(app, orchestrator=orchestrator, cache=other)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        answer = await api.get("/api/zoho/cache/products/9")
    assert answer.status_code == 200 and answer.json()["state"]["content_hash"] == "01" * 32
