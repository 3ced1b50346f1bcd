"""The batched raw-page path: Hasher.hash_pages (many bodies in one native call, two threads) must
give exactly what hash_page gives page by page, and Cache.check_pages exactly what check_page
gives, in one round of MGETs, with per-page reports that commit like check_page's."""

from __future__ import annotations

import json
from typing import Any

import pytest

import tdscache
from tdscache.testing import RedisServer


def page(first: int, count: int, *, more: bool = True, broken: bool = False) -> bytes:
    items: list[dict[str, Any]] = [{"item_id": str(first + i), "name": f"زيت {first + i}", "rate": (first + i) / 8,
                                    "last_modified_time": f"2025-01-{1 + i % 28:02d}T00:00:00+0000"}
                                   for i in range(count)]
    if broken and items:
        del items[0]["item_id"]  # an item error, not a page error
    return json.dumps({"code": 0, "items": items, "page_context": {"has_more_page": more}},
                      ensure_ascii=False).encode()


def bodies(n_pages: int) -> list[Any]:
    out: list[Any] = [page(1000 * p, 1 + (37 * p) % 200, more=p + 1 < n_pages, broken=p == 2) for p in range(n_pages)]
    if n_pages > 1:
        out[1] = memoryview(out[1])
    if n_pages > 3:
        out[3] = bytearray(out[3])
    return out


def fields(records: tdscache.PageRecords) -> tuple[Any, ...]:
    return (records.ids, records.digests, records.last_modified_times, records.spans, records.errors,
            records.has_more_page, len(records))


@pytest.mark.parametrize("n_pages", [0, 1, 2, 9, 40])
def test_hash_pages_gives_what_hash_page_gives_page_by_page(n_pages: int) -> None:
    hasher = tdscache.Hasher()
    pages = bodies(n_pages)
    assert [fields(r) for r in hasher.hash_pages(pages)] == [fields(hasher.hash_page(b)) for b in pages]


def test_hash_pages_raises_for_the_first_bad_page_in_order() -> None:
    hasher = tdscache.Hasher()
    with pytest.raises(tdscache.PageError) as raised:
        hasher.hash_pages([page(0, 3), b'{"items": 5}', page(10, 3), b"[1]"])
    assert raised.value.status_name == hasher_error_of(b'{"items": 5}')
    with pytest.raises(tdscache.ConfigError):
        hasher.hash_pages([page(0, 1), "not bytes"])  # type: ignore[list-item]


def hasher_error_of(body: bytes) -> str:
    try:
        tdscache.Hasher().hash_page(body)
    except tdscache.Error as err:
        return err.status_name
    raise AssertionError("the page was expected to fail")


def test_check_pages_decides_and_commits_like_check_page(fresh_redis: RedisServer) -> None:
    cache = tdscache.Cache(fresh_redis.url)
    pages = bodies(9)
    checks = cache.check_pages("product", pages)
    assert [c.report.reasons for c in checks] == [cache.check_page("product", b).report.reasons for b in pages]
    for c in checks[::2]:
        with_id = [i for i in c.indices_to_sync() if c.report.reasons[i] != "no_id"]
        assert cache.commit(c.report, with_id).errors == 0
    again = cache.check_pages("product", pages)
    singly = [cache.check_page("product", b) for b in pages]
    for batched, one in zip(again, singly):
        assert batched.report.reasons == one.report.reasons
        assert (batched.report.to_sync, batched.report.skipped, batched.report.by_reason, batched.report.ids) == \
            (one.report.to_sync, one.report.skipped, one.report.by_reason, one.report.ids)
        assert fields(batched.records) == fields(one.records)
    assert [c.report.skipped > 0 for c in again] == [i % 2 == 0 for i in range(9)]
    assert "no_id" in again[2].report.reasons  # the item without an id still syncs


def test_check_pages_sends_one_round_of_mgets_for_all_pages(fresh_redis: RedisServer) -> None:
    cache = tdscache.Cache(fresh_redis.url, mget_chunk=1000)
    cache.check_pages("product", [page(200 * p, 200) for p in range(5)])
    assert fresh_redis.info_commandstats()["mget"]["calls"] == 1
    assert cache.check_pages("product", []) == []


async def test_async_check_pages(fresh_redis: RedisServer) -> None:
    cache = tdscache.AsyncCache(fresh_redis.url)
    checks = await cache.check_pages("product", [page(0, 5), page(5, 5)])
    assert [c.report.to_sync for c in checks] == [5, 5]
