"""The Zoho simulator as an HTTP API: deterministic bytes, pagination, Zoho-shaped records, mutations
and the faults (rate limit, expired tokens, malformed and failing pages). Driven through httpx on
the ASGI app, so what is tested is what a client sees.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tdscache.testing import SimulatorConfig, ZohoSimulator, create_app

ORG = {"organization_id": "10234695"}
LAST_MODIFIED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0300$")
ARABIC = re.compile(r"[\u0600-\u06FF]")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def token_for(http: httpx.AsyncClient) -> str:
    response = await http.post("/oauth/v2/token", data={
        "grant_type": "refresh_token", "refresh_token": SimulatorConfig.refresh_token,
        "client_id": SimulatorConfig.client_id, "client_secret": SimulatorConfig.client_secret})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return token


async def get_page(http: httpx.AsyncClient, token: str, path: str, page: int, **params: Any) -> httpx.Response:
    return await http.get(path, params={**ORG, "page": page, "per_page": 200, **params},
                          headers={"Authorization": f"Zoho-oauthtoken {token}"})


async def all_pages(http: httpx.AsyncClient, path: str = "/inventory/v1/items") -> list[bytes]:
    token = await token_for(http)
    bodies = []
    for page in range(1, 100):
        response = await get_page(http, token, path, page)
        assert response.status_code == 200
        bodies.append(response.content)
        if not response.json()["page_context"]["has_more_page"]:
            return bodies
    raise AssertionError("has_more_page never became false")


async def test_same_seed_serves_identical_bytes_and_another_seed_does_not() -> None:
    async def pages_for(seed: int) -> list[bytes]:
        transport = httpx.ASGITransport(app=create_app(SimulatorConfig(seed=seed)))
        async with httpx.AsyncClient(transport=transport, base_url="http://zoho.sim") as http:
            return await all_pages(http)

    first, again, other = await pages_for(11), await pages_for(11), await pages_for(12)
    assert first == again
    assert len(first) == len(other) == 7
    assert all(a != b for a, b in zip(first, other))


async def test_repeated_requests_for_a_page_return_the_same_bytes(sim_http: httpx.AsyncClient) -> None:
    token = await token_for(sim_http)
    first = (await get_page(sim_http, token, "/inventory/v1/items", 4)).content
    assert (await get_page(sim_http, token, "/inventory/v1/items", 4)).content == first


async def test_1312_items_paginate_into_seven_pages_and_the_last_says_no_more(sim_http: httpx.AsyncClient) -> None:
    token = await token_for(sim_http)
    sizes, ids = [], []
    for page in range(1, 8):
        payload = (await get_page(sim_http, token, "/inventory/v1/items", page)).json()
        context = payload["page_context"]
        assert context["page"] == page and context["per_page"] == 200
        assert context["has_more_page"] is (page < 7)
        assert context["report_name"] == "Items"
        assert payload["code"] == 0 and payload["message"] == "success"
        sizes.append(len(payload["items"]))
        ids += [item["item_id"] for item in payload["items"]]
    assert sizes == [200] * 6 + [112]
    assert len(set(ids)) == 1312
    past_end = (await get_page(sim_http, token, "/inventory/v1/items", 8)).json()
    assert past_end["items"] == [] and past_end["page_context"]["has_more_page"] is False


async def test_per_page_is_capped_at_200(sim_http: httpx.AsyncClient) -> None:
    token = await token_for(sim_http)
    payload = (await get_page(sim_http, token, "/inventory/v1/items", 1, per_page=500)).json()
    assert len(payload["items"]) == 200 and payload["page_context"]["per_page"] == 200


async def test_contacts_default_to_2503_over_thirteen_pages(sim_http: httpx.AsyncClient) -> None:
    pages = await all_pages(sim_http, "/books/v3/contacts")
    assert len(pages) == 13
    assert sum(len(json.loads(p)["contacts"]) for p in pages) == 2503


async def test_ids_are_19_digit_json_numbers(sim_http: httpx.AsyncClient) -> None:
    token = await token_for(sim_http)
    body = (await get_page(sim_http, token, "/inventory/v1/items", 1)).content
    raw_ids = re.findall(rb'"item_id":(\d+)[,}]', body)
    assert len(raw_ids) == 200
    assert all(len(raw) == 19 for raw in raw_ids)
    parsed = [item["item_id"] for item in json.loads(body)["items"]]
    assert parsed == [int(raw) for raw in raw_ids]
    # Above 2**53: a float-based JSON reader would corrupt these ids.
    assert all(isinstance(i, int) and i > 2**53 for i in parsed)


async def test_items_have_the_field_set_of_real_zoho_items(simulator: ZohoSimulator) -> None:
    items = simulator.records("items")
    expected = {"item_id", "name", "sku", "rate", "purchase_rate", "unit", "status", "description",
                "stock_on_hand", "available_stock", "actual_available_stock", "tax_id", "tax_name",
                "tax_percentage", "brand", "manufacturer", "category_name", "is_taxable", "product_type",
                "created_time", "last_modified_time", "locations", "custom_fields"}
    assert all(expected <= item.keys() for item in items)
    assert all(LAST_MODIFIED.match(i["last_modified_time"]) and LAST_MODIFIED.match(i["created_time"])
               for i in items)
    assert all(i["last_modified_time"] >= i["created_time"] for i in items)
    assert any(ARABIC.search(i["name"]) and re.search("[A-Za-z]", i["name"]) for i in items)
    assert any(not ARABIC.search(i["name"]) for i in items)
    assert all(isinstance(i["rate"], float) for i in items)
    assert any(i["brand"] is None for i in items) and any(i["upc"] is None for i in items)
    for item in items:
        assert item["locations"] and all({"location_id", "location_name", "location_stock_on_hand"}
                                         <= loc.keys() for loc in item["locations"])
        assert item["stock_on_hand"] == sum(loc["location_stock_on_hand"] for loc in item["locations"])
        assert all({"customfield_id", "label", "value"} <= cf.keys() for cf in item["custom_fields"])


async def test_contacts_and_documents_carry_their_zoho_fields(simulator: ZohoSimulator) -> None:
    contact = simulator.records("contacts")[0]
    assert {"contact_id", "contact_name", "company_name", "email", "phone", "billing_address",
            "currency_code", "outstanding_receivable_amount", "last_modified_time"} <= contact.keys()
    assert {"city", "country", "zip"} <= contact["billing_address"].keys()
    for key, id_field in (("invoices", "invoice_id"), ("salesorders", "salesorder_id"),
                          ("bills", "bill_id"), ("purchaseorders", "purchaseorder_id")):
        record = simulator.records(key)[0]
        assert isinstance(record[id_field], int) and len(str(record[id_field])) == 19
        assert record["line_items"] and all("item_id" in li and "quantity" in li for li in record["line_items"])
        assert record["total"] == pytest.approx(record["sub_total"] + record["tax_total"], abs=0.011)


async def test_books_and_inventory_share_one_data_set(sim_http: httpx.AsyncClient) -> None:
    token = await token_for(sim_http)
    for path in ("items", "contacts", "salesorders"):
        books = (await get_page(sim_http, token, f"/books/v3/{path}", 2)).content
        inventory = (await get_page(sim_http, token, f"/inventory/v1/{path}", 2)).content
        assert books == inventory


async def test_sim_records_returns_every_record_as_paged(sim_http: httpx.AsyncClient) -> None:
    paged = [item for body in await all_pages(sim_http) for item in json.loads(body)["items"]]
    payload = (await sim_http.get("/__sim/records/items")).json()
    assert payload["count"] == 1312 and payload["records"] == paged


async def test_mutate_changes_exactly_the_requested_fraction_and_bumps_last_modified(
        sim_http: httpx.AsyncClient, simulator: ZohoSimulator) -> None:
    before = {r["item_id"]: r for r in simulator.records("items")}
    latest_before = max(r["last_modified_time"] for r in before.values())
    response = await sim_http.post("/__sim/mutate", json={"entity": "items", "fraction": 0.05, "seed": 1})
    assert response.status_code == 200
    result = response.json()
    assert result["count"] == round(0.05 * 1312) == 66
    changed = set(result["changed_ids"])
    assert len(changed) == 66
    after = {r["item_id"]: r for r in simulator.records("items")}
    differing = {i for i in before if before[i] != after[i]}
    assert differing == changed
    for item_id in changed:
        assert after[item_id]["rate"] != before[item_id]["rate"]
        assert after[item_id]["last_modified_time"] > latest_before
        assert LAST_MODIFIED.match(after[item_id]["last_modified_time"])


async def test_mutate_is_deterministic_per_seed_and_can_add_records(simulator: ZohoSimulator) -> None:
    twin = ZohoSimulator(SimulatorConfig(seed=7))
    assert simulator.mutate("items", count=10, seed=3) == twin.mutate("items", count=10, seed=3)
    added = simulator.mutate("items", count=0, add=2)["added_ids"]
    items = simulator.records("items")
    assert len(items) == 1314 and [i["item_id"] for i in items[-2:]] == added
    assert min(added) > max(i["item_id"] for i in items[:-2])


async def test_mutate_rejects_unknown_entities_and_bad_fractions(sim_http: httpx.AsyncClient) -> None:
    assert (await sim_http.post("/__sim/mutate", json={"entity": "widgets", "fraction": 0.1})).status_code == 400
    assert (await sim_http.post("/__sim/mutate", json={"entity": "items", "fraction": 1.5})).status_code == 400


async def test_reset_restores_the_generated_bytes(sim_http: httpx.AsyncClient) -> None:
    original = await all_pages(sim_http)
    await sim_http.post("/__sim/mutate", json={"entity": "items", "fraction": 0.5})
    assert await all_pages(sim_http) != original
    await sim_http.post("/__sim/reset")
    assert await all_pages(sim_http) == original


async def test_bad_refresh_token_is_refused_with_invalid_code(sim_http: httpx.AsyncClient) -> None:
    response = await sim_http.post("/oauth/v2/token", data={
        "grant_type": "refresh_token", "refresh_token": "nope",
        "client_id": SimulatorConfig.client_id, "client_secret": SimulatorConfig.client_secret})
    assert response.status_code == 400 and response.json() == {"error": "invalid_code"}


async def test_token_response_has_zoho_fields(sim_http: httpx.AsyncClient) -> None:
    response = await sim_http.post("/oauth/v2/token", params={
        "grant_type": "refresh_token", "refresh_token": SimulatorConfig.refresh_token,
        "client_id": SimulatorConfig.client_id, "client_secret": SimulatorConfig.client_secret})
    payload = response.json()
    assert payload["token_type"] == "Bearer" and payload["expires_in"] == 3600
    assert payload["access_token"].startswith("1000.") and payload["api_domain"]


async def test_missing_or_invalid_token_is_401_code_57(sim_http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Zoho-oauthtoken 1000.forged"}):
        response = await sim_http.get("/books/v3/items", params=ORG, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == 57


async def test_token_expires_after_its_lifetime() -> None:
    clock = FakeClock()
    app = create_app(SimulatorConfig(token_lifetime_s=100, clock=clock))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zoho.sim") as http:
        token = await token_for(http)
        clock.now += 99
        assert (await get_page(http, token, "/books/v3/items", 1)).status_code == 200
        clock.now += 1
        response = await get_page(http, token, "/books/v3/items", 1)
        assert response.status_code == 401 and response.json()["code"] == 57


async def test_expire_tokens_fault_invalidates_issued_tokens(sim_http: httpx.AsyncClient) -> None:
    token = await token_for(sim_http)
    assert (await sim_http.post("/__sim/faults", json={"expire_tokens": True})).status_code == 200
    assert (await get_page(sim_http, token, "/books/v3/items", 1)).status_code == 401
    assert (await get_page(sim_http, await token_for(sim_http), "/books/v3/items", 1)).status_code == 200


async def test_missing_organization_id_is_a_zoho_error(sim_http: httpx.AsyncClient) -> None:
    token = await token_for(sim_http)
    response = await sim_http.get("/books/v3/items", headers={"Authorization": f"Zoho-oauthtoken {token}"})
    assert response.status_code == 400
    assert response.json()["code"] != 0 and "organization_id" in response.json()["message"]


async def test_rate_limit_answers_429_with_retry_after_until_the_window_moves() -> None:
    clock = FakeClock()
    app = create_app(SimulatorConfig(rate_limit_per_minute=3, clock=clock))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zoho.sim") as http:
        token = await token_for(http)
        for _ in range(3):
            assert (await get_page(http, token, "/books/v3/items", 1)).status_code == 200
            clock.now += 10
        limited = await get_page(http, token, "/books/v3/items", 1)
        assert limited.status_code == 429
        assert limited.json()["code"] == 44
        # The oldest of the three calls leaves the 60 s window 30 s from now.
        assert limited.headers["Retry-After"] == "30"
        clock.now += 30
        assert (await get_page(http, token, "/books/v3/items", 1)).status_code == 200


async def test_rate_limit_is_per_organization() -> None:
    app = create_app(SimulatorConfig(rate_limit_per_minute=1, organization_id=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zoho.sim") as http:
        token = await token_for(http)
        assert (await get_page(http, token, "/books/v3/items", 1, organization_id="1")).status_code == 200
        assert (await get_page(http, token, "/books/v3/items", 1, organization_id="2")).status_code == 200
        assert (await get_page(http, token, "/books/v3/items", 1, organization_id="1")).status_code == 429


async def test_malformed_page_is_served_as_invalid_json_and_other_pages_stay_valid(
        sim_http: httpx.AsyncClient) -> None:
    await sim_http.post("/__sim/faults", json={"malformed_pages": {"entity": "items", "pages": [3]}})
    token = await token_for(sim_http)
    for page in range(1, 8):
        body = (await get_page(sim_http, token, "/inventory/v1/items", page)).content
        if page == 3:
            with pytest.raises(json.JSONDecodeError):
                json.loads(body)
        else:
            assert len(json.loads(body)["items"]) > 0


async def test_corrupt_middle_mode_keeps_the_page_context_tail(sim_http: httpx.AsyncClient) -> None:
    await sim_http.post("/__sim/faults", json={"malformed_pages": {"entity": "items", "pages": [2],
                                                                   "mode": "corrupt_middle"}})
    body = (await get_page(sim_http, await token_for(sim_http), "/inventory/v1/items", 2)).content
    assert body.endswith(b'"sort_order":"A"}}')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_fail_pages_answers_5xx_the_requested_number_of_times(sim_http: httpx.AsyncClient) -> None:
    await sim_http.post("/__sim/faults", json={"fail_pages": {"entity": "items", "pages": [2], "status": 502,
                                                              "times": 2}})
    token = await token_for(sim_http)
    statuses = [(await get_page(sim_http, token, "/books/v3/items", 2)).status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    assert (await get_page(sim_http, token, "/books/v3/items", 1)).status_code == 200


async def test_latency_fault_is_reported_and_clear_removes_page_faults(sim_http: httpx.AsyncClient) -> None:
    faults = (await sim_http.post("/__sim/faults", json={
        "latency_ms": 5, "malformed_pages": {"entity": "items", "pages": [1]}})).json()
    assert faults["latency_ms"] == 5 and faults["malformed_pages"] == {"items": {"1": "truncate"}}
    faults = (await sim_http.post("/__sim/faults", json={"clear": True})).json()
    assert faults["malformed_pages"] == {}
    body = (await get_page(sim_http, await token_for(sim_http), "/books/v3/items", 1)).content
    assert json.loads(body)["items"]


async def test_unknown_entity_path_is_404(sim_http: httpx.AsyncClient) -> None:
    response = await get_page(sim_http, await token_for(sim_http), "/books/v3/widgets", 1)
    assert response.status_code == 404
