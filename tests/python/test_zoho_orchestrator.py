"""The reference (uncached) ZohoSyncOrchestrator from the simulator into SQLite: full syncs land rows
equal to the simulator's records, malformed pages are reported failed while the rest is synced,
API failures leave an incomplete result, and the per-entity hooks, concurrency bound, batch slicing
and events behave as subclasses rely on.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tdscache.testing import SimulatorConfig, ZohoSimulator, client_config_for
from tdscache.zoho import (EntityType, EventBus, SyncConfig, SyncDatabase, SyncResult, UnifiedZohoClient,
                           ZohoSyncOrchestrator)
from tdscache.zoho.db import TRANSFORM_KEYS


def stored_as_served(rows: list[Any]) -> dict[str, dict[str, Any]]:
    return {r.zoho_id: {k: v for k, v in r.data.items() if k not in TRANSFORM_KEYS} for r in rows}


def served(simulator: ZohoSimulator, key: str, id_field: str) -> dict[str, dict[str, Any]]:
    return {str(r[id_field]): r for r in simulator.records(key)}


async def test_full_sync_lands_every_product_equal_to_the_simulator(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator) -> None:
    result = await ZohoSyncOrchestrator(zoho_client, database=sqlite_db).sync_entity(
        SyncConfig(EntityType.PRODUCTS))
    assert (result.total_processed, result.total_success, result.total_failed, result.total_skipped) == (
        1312, 1312, 0, 0)
    assert result.pages == 7 and result.db_writes == 1312 and result.complete
    assert result.reasons == {"uncached": 1312} and result.errors == []
    rows = await sqlite_db.fetch_all(EntityType.PRODUCTS)
    assert len(rows) == 1312
    assert stored_as_served(rows) == served(simulator, "items", "item_id")
    assert all("zoho_synced_at" in r.data for r in rows)
    first = rows[0]
    assert first.name == first.data["name"] and first.zoho_last_modified_time == first.data["last_modified_time"]


async def test_full_sync_over_real_http_lands_every_customer(
        http_zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator) -> None:
    result = await ZohoSyncOrchestrator(http_zoho_client, database=sqlite_db).sync_entity(
        SyncConfig(EntityType.CUSTOMERS))
    assert result.total_success == 2503 and result.pages == 13 and result.complete
    assert stored_as_served(await sqlite_db.fetch_all(EntityType.CUSTOMERS)) == served(
        simulator, "contacts", "contact_id")


async def test_resync_after_mutation_keeps_local_ids_and_stores_the_new_values(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator) -> None:
    orchestrator = ZohoSyncOrchestrator(zoho_client, database=sqlite_db)
    await orchestrator.sync_entity(SyncConfig(EntityType.PRODUCTS))
    ids_before = {r.zoho_id: r.local_id for r in await sqlite_db.fetch_all(EntityType.PRODUCTS)}
    simulator.mutate("items", fraction=0.05, seed=2)
    second = await orchestrator.sync_entity(SyncConfig(EntityType.PRODUCTS))
    assert second.total_success == 1312 and second.db_writes == 1312  # uncached: writes everything
    rows = await sqlite_db.fetch_all(EntityType.PRODUCTS)
    assert {r.zoho_id: r.local_id for r in rows} == ids_before
    assert stored_as_served(rows) == served(simulator, "items", "item_id")


@pytest.mark.parametrize("mode", ["truncate", "corrupt_middle"])
async def test_malformed_page_is_reported_failed_and_the_other_pages_are_synced(
        mode: str, zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator) -> None:
    simulator.set_faults({"malformed_pages": {"entity": "items", "pages": [3], "mode": mode}})
    result = await ZohoSyncOrchestrator(zoho_client, database=sqlite_db).sync_entity(
        SyncConfig(EntityType.PRODUCTS))
    assert result.failed_pages == [3]
    assert [e["page"] for e in result.errors if e["error"] == "malformed_page"] == [3]
    assert result.total_success == 1312 - 200 and result.total_skipped == 0
    assert result.reasons == {"uncached": 1112, "malformed_page": 1}
    assert result.complete
    expected = served(simulator, "items", "item_id")
    page_3_ids = list(expected)[400:600]
    stored = stored_as_served(await sqlite_db.fetch_all(EntityType.PRODUCTS))
    assert set(stored) == set(expected) - set(page_3_ids)
    assert all(stored[i] == expected[i] for i in stored)


async def test_malformed_last_page_fails_that_page_and_the_walk_still_ends(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator) -> None:
    simulator.set_faults({"malformed_pages": {"entity": "items", "pages": [7]}})
    result = await ZohoSyncOrchestrator(zoho_client, database=sqlite_db).sync_entity(
        SyncConfig(EntityType.PRODUCTS))
    assert result.failed_pages == [7] and result.total_success == 1200
    assert result.pages == 8 and result.complete  # page 8 (empty) proved the end


async def test_too_many_malformed_pages_leave_the_result_incomplete(
        sim_config: SimulatorConfig, sim_transport: httpx.ASGITransport, sqlite_db: SyncDatabase,
        simulator: ZohoSimulator) -> None:
    simulator.set_faults({"malformed_pages": {"entity": "items", "pages": [2, 3]}})
    config = client_config_for("http://zoho.sim", sim_config, max_consecutive_malformed=2)
    async with UnifiedZohoClient(config, transport=sim_transport) as client:
        result = await ZohoSyncOrchestrator(client, database=sqlite_db).sync_entity(SyncConfig(EntityType.PRODUCTS))
    assert not result.complete
    assert result.failed_pages == [2, 3] and result.total_success == 200


async def test_api_failure_mid_listing_stops_with_an_incomplete_result(
        sim_config: SimulatorConfig, sim_transport: httpx.ASGITransport, sqlite_db: SyncDatabase,
        simulator: ZohoSimulator) -> None:
    simulator.set_faults({"fail_pages": {"entity": "items", "pages": [4], "status": 503}})

    async def no_wait(_seconds: float) -> None:
        return None

    config = client_config_for("http://zoho.sim", sim_config, max_retries=2)
    async with UnifiedZohoClient(config, transport=sim_transport, sleep=no_wait) as client:
        result = await ZohoSyncOrchestrator(client, database=sqlite_db).sync_entity(SyncConfig(EntityType.PRODUCTS))
    assert not result.complete
    assert result.total_success == 600 and await sqlite_db.count(EntityType.PRODUCTS) == 600
    [error] = result.errors
    assert error["error"] == "api_error" and error["status"] == 503 and error["page"] == 4


async def test_token_expiring_mid_sync_does_not_lose_entities(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator) -> None:
    class ExpiringAfterPage2(ZohoSyncOrchestrator):
        async def _process_page(self, body: bytes, page_number: int, config: SyncConfig,
                                result: SyncResult) -> None:
            await super()._process_page(body, page_number, config, result)
            if page_number == 2:
                simulator.expire_tokens()

    result = await ExpiringAfterPage2(zoho_client, database=sqlite_db).sync_entity(SyncConfig(EntityType.PRODUCTS))
    assert result.total_success == 1312 and result.complete
    assert simulator.stats_snapshot()["unauthorized"] == 1
    assert await sqlite_db.count(EntityType.PRODUCTS) == 1312


async def test_invalid_entities_fail_and_the_rest_of_the_batch_is_saved(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase) -> None:
    orchestrator = ZohoSyncOrchestrator(zoho_client, database=sqlite_db)
    result = SyncResult(entity_type=EntityType.PRODUCTS)
    batch: list[dict[str, Any]] = [{"item_id": 1, "name": "ok"}, {"name": "no id"}, {"item_id": ""},
                                   {"item_id": True}, {"item_id": "2", "name": "string id"}]
    outcomes = await orchestrator._process_entities_batch(batch, SyncConfig(EntityType.PRODUCTS), result)
    assert [o.ok for o in outcomes] == [True, False, False, False, True]
    assert (result.total_processed, result.total_success, result.total_failed) == (5, 2, 3)
    assert result.reasons == {"uncached": 2, "invalid": 3}
    assert {r.zoho_id for r in await sqlite_db.fetch_all(EntityType.PRODUCTS)} == {"1", "2"}
    assert outcomes[0].local_id is not None and outcomes[4].local_id is not None


async def test_validation_can_be_turned_off(zoho_client: UnifiedZohoClient) -> None:
    result = SyncResult(entity_type=EntityType.PRODUCTS)
    await ZohoSyncOrchestrator(zoho_client)._process_entities_batch(
        [{"item_id": True}], SyncConfig(EntityType.PRODUCTS, enable_validation=False), result)
    assert result.total_success == 1  # no database: a dry run succeeds without a local id


async def test_a_failing_save_fails_only_that_entity(zoho_client: UnifiedZohoClient,
                                                     sqlite_db: SyncDatabase) -> None:
    class BrokenForOne(ZohoSyncOrchestrator):
        async def _save_entity(self, entity: dict[str, Any], config: SyncConfig) -> str | None:
            if entity["item_id"] == 2:
                raise RuntimeError("disk full")
            return await super()._save_entity(entity, config)

    result = SyncResult(entity_type=EntityType.PRODUCTS)
    await BrokenForOne(zoho_client, database=sqlite_db)._process_entities_batch(
        [{"item_id": i} for i in (1, 2, 3)], SyncConfig(EntityType.PRODUCTS), result)
    assert (result.total_success, result.total_failed) == (2, 1)
    assert result.errors == [{"error": "save_failed", "zoho_id": "2", "message": "RuntimeError('disk full')"}]


async def test_without_transformation_the_record_is_stored_exactly_as_served(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase, simulator: ZohoSimulator) -> None:
    await ZohoSyncOrchestrator(zoho_client, database=sqlite_db).sync_entity(
        SyncConfig(EntityType.INVOICES, enable_transformation=False))
    rows = await sqlite_db.fetch_all(EntityType.INVOICES)
    assert {r.zoho_id: r.data for r in rows} == served(simulator, "invoices", "invoice_id")


async def test_entities_run_concurrently_up_to_max_concurrent(zoho_client: UnifiedZohoClient) -> None:
    class Tracking(ZohoSyncOrchestrator):
        active = 0
        peak = 0

        async def _save_entity(self, entity: dict[str, Any], config: SyncConfig) -> str | None:
            Tracking.active += 1
            Tracking.peak = max(Tracking.peak, Tracking.active)
            await asyncio.sleep(0)  # yield so other entities can start: what a real write does
            Tracking.active -= 1
            return None

    await Tracking(zoho_client).sync_entity(SyncConfig(EntityType.PRODUCTS, max_concurrent=4))
    assert Tracking.peak == 4


async def test_pages_are_processed_in_batch_size_slices(zoho_client: UnifiedZohoClient) -> None:
    class Recording(ZohoSyncOrchestrator):
        sizes: list[int] = []

        async def _process_entities_batch(self, entities: list[dict[str, Any]], config: SyncConfig,
                                          result: SyncResult) -> Any:
            Recording.sizes.append(len(entities))
            return await super()._process_entities_batch(entities, config, result)

    result = await Recording(zoho_client).sync_entity(SyncConfig(EntityType.PRODUCTS, batch_size=64))
    assert Recording.sizes == ([64, 64, 64, 8] * 6) + [64, 48]
    assert result.total_success == 1312


async def test_events_are_published_and_a_failing_handler_does_not_fail_the_sync(
        zoho_client: UnifiedZohoClient) -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe("*", lambda event, payload: seen.append(event))

    async def broken(event: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe("entity.synced", broken)
    result = await ZohoSyncOrchestrator(zoho_client, event_bus=bus).sync_entity(SyncConfig(EntityType.BILLS))
    assert result.total_success == 100
    assert seen[0] == "sync.started" and seen[-1] == "sync.completed"
    assert seen.count("entity.synced") == 100


async def test_a_hook_failing_mid_page_fails_that_page_and_the_sync_goes_on(
        zoho_client: UnifiedZohoClient, sqlite_db: SyncDatabase) -> None:
    class FailingPage2(ZohoSyncOrchestrator):
        async def _process_page(self, body: bytes, page_number: int, config: SyncConfig,
                                result: SyncResult) -> None:
            if page_number == 2:
                raise ConnectionError("cache went away")
            await super()._process_page(body, page_number, config, result)

    result = await FailingPage2(zoho_client, database=sqlite_db).sync_entity(SyncConfig(EntityType.PRODUCTS))
    assert result.failed_pages == [2] and result.reasons["page_failed"] == 1
    assert result.total_success == 1112


async def test_sync_result_serializes_to_json(zoho_client: UnifiedZohoClient) -> None:
    result = await ZohoSyncOrchestrator(zoho_client).sync_entity(SyncConfig("purchaseorders"))  # type: ignore[arg-type]
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["entity_type"] == "purchaseorders" and payload["total_success"] == 100
    assert payload["duration_s"] >= 0 and payload["finished_at"]
