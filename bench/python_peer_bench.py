"""Four ways to decide which entities changed, side by side in one run, on the same data and the
same redis-server (started here, on a loopback port), printed as times and ratios:

  (a) the legacy Python algorithm: json.dumps + hashlib, one GET per entity (redis-py asyncio)
  (b) an optimized pure-Python peer: orjson (sorted keys) + hashlib, pipelined MGET (redis-py + hiredis)
  (b') the same peer starting, as (d) and (e) do, from the raw page bytes (orjson.loads of every page first)
  (c) tdscache from dicts (AsyncCache.check_entities)
  (d) tdscache from the raw page bytes (AsyncCache.check_page, 200 items a page)
  (e) tdscache from the raw page bytes, batched (AsyncCache.check_pages, 25 pages a call)

Every path sees the cache fully populated and unchanged data, so all do the full work of a
repeat sync. A benchmark, not a test. Run:
    .venv/bin/python bench/python_peer_bench.py [--sizes 1312,100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
import tdscache  # noqa: E402
from legacy_reference import EXCLUDE, legacy_hash  # noqa: E402
from tdscache.testing import RedisServer  # noqa: E402

PREFIX = "tds:entity:state:product:"
VS_B_BYTES = "vs (b')"


def make_items(n: int) -> list[dict[str, Any]]:
    items = []
    for i in range(n):
        items.append({
            "item_id": 2646610000000113574 + i * 7919, "name": f"زيت زيتون بكر Extra Virgin Olive Oil 1L #{i}",
            "sku": f"OIL-{100000 + i}", "rate": 12.5 + (i % 100) / 4, "purchase_rate": 8.75, "unit": "pcs",
            "status": "active", "description": "زيت زيتون عالي الجودة — cold pressed, first harvest 2025",
            "tax_id": 2646610000000069001, "tax_name": "VAT 15%", "tax_percentage": 15, "brand": "الريف",
            "stock_on_hand": i % 500, "available_stock": i % 480, "is_taxable": True, "product_type": "goods",
            "created_time": "2024-02-11T10:15:00+0300", "last_modified_time": "2025-11-13T08:30:00+0300",
            "locations": [{"location_id": 2646610000000080001, "location_name": "المستودع الرئيسي Main Warehouse",
                           "location_stock_on_hand": i % 300, "location_available_stock": 120},
                          {"location_id": 2646610000000080002, "location_name": "فرع جدة Jeddah",
                           "location_stock_on_hand": 80, "location_available_stock": 75}],
            "custom_fields": [{"customfield_id": 2646610000000090001, "label": "Origin", "value": "Saudi Arabia"},
                              {"customfield_id": 2646610000000090002, "label": "Shelf Life", "value": 540}],
            "created_at": "2024-02-11T10:15:00", "notes": None,
        })
    return items


def pages_of(items: list[dict[str, Any]], size: int = 200) -> list[bytes]:
    return [json.dumps({"code": 0, "message": "success", "items": items[i:i + size],
                        "page_context": {"page": i // size + 1, "per_page": size,
                                         "has_more_page": i + size < len(items)}}, ensure_ascii=False).encode()
            for i in range(0, len(items), size)]


async def path_a_legacy(r: aioredis.Redis, items: list[dict[str, Any]]) -> int:
    skipped = 0
    for item in items:
        raw = await r.get(PREFIX + str(item["item_id"]))
        if raw is not None:
            state = json.loads(raw)
            if state["content_hash"] == legacy_hash(item) and item.get("last_modified_time") <= state.get("last_modified_time"):
                skipped += 1
    return skipped


def orjson_digest(item: dict[str, Any]) -> str:
    normalized = {k: v for k, v in item.items() if k not in EXCLUDE and v is not None}
    return hashlib.sha256(orjson.dumps(normalized, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def path_b_peer(r: aioredis.Redis, items: list[dict[str, Any]], digests_of: dict[str, str]) -> int:
    skipped = 0
    for start in range(0, len(items), 1000):
        chunk = items[start:start + 1000]
        values = await r.mget([PREFIX + str(i["item_id"]) for i in chunk])
        for item, raw in zip(chunk, values):
            if raw is None:
                continue
            state = orjson.loads(raw)
            # The peer stores its own digests (orjson's form is not the legacy one).
            if digests_of.get(str(item["item_id"])) == orjson_digest(item) and \
                    item.get("last_modified_time") <= state.get("last_modified_time"):
                skipped += 1
    return skipped


async def path_b_peer_from_bytes(r: aioredis.Redis, pages: list[bytes], digests_of: dict[str, str]) -> int:
    # Every page parsed first, then (b) over all items: the peer's best use of its round trips.
    items = [item for body in pages for item in orjson.loads(body)["items"]]
    return await path_b_peer(r, items, digests_of)


async def path_c_dicts(cache: tdscache.AsyncCache, items: list[dict[str, Any]]) -> int:
    report = await cache.check_entities("product", items)
    return report.skipped


async def path_d_bytes(cache: tdscache.AsyncCache, pages: list[bytes]) -> int:
    skipped = 0
    for body in pages:
        page = await cache.check_page("product", body)
        skipped += page.report.skipped
    return skipped


async def path_e_pages_batched(cache: tdscache.AsyncCache, pages: list[bytes], per_call: int = 25) -> int:
    skipped = 0
    for start in range(0, len(pages), per_call):
        for page in await cache.check_pages("product", pages[start:start + per_call]):
            skipped += page.report.skipped
    return skipped


async def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = await fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


async def run(sizes: list[int], repeat: int) -> None:
    with RedisServer() as server:
        r = aioredis.Redis.from_url(server.url)
        cache = tdscache.AsyncCache(server.url, command_timeout_ms=30000)
        print(f"redis-server {server.url}; tdscache {tdscache.__version__}; median of {repeat} runs\n")
        print(f"{'entities':>9} {'path':<44} {'seconds':>9} {'entities/s':>12} {'vs (a)':>8} {'vs (b)':>8} {VS_B_BYTES:>8}")
        for n in sizes:
            server.flushall()
            items = make_items(n)
            pages = pages_of(items)
            # Populate: legacy-format states for every item (tdscache writes them, as the
            # compatibility tests show the legacy service reads them).
            report = await cache.check_entities("product", items)
            await cache.commit(report, report.indices_to_sync())
            peer_digests = {str(i["item_id"]): orjson_digest(i) for i in items}
            a_repeat = 1 if n > 10000 else repeat
            results = {
                "(a) legacy: json+hashlib, GET per entity": await timed(lambda: path_a_legacy(r, items), a_repeat),
                "(b) peer: orjson+hashlib, pipelined MGET": await timed(lambda: path_b_peer(r, items, peer_digests), repeat),
                "(b') peer from raw page bytes": await timed(lambda: path_b_peer_from_bytes(r, pages, peer_digests), repeat),
                "(c) tdscache from dicts": await timed(lambda: path_c_dicts(cache, items), repeat),
                "(d) tdscache from raw page bytes": await timed(lambda: path_d_bytes(cache, pages), repeat),
                "(e) tdscache from raw pages, 25 a call": await timed(lambda: path_e_pages_batched(cache, pages), repeat),
            }
            base_a = results["(a) legacy: json+hashlib, GET per entity"][0]
            base_b = results["(b) peer: orjson+hashlib, pipelined MGET"][0]
            base_b_bytes = results["(b') peer from raw page bytes"][0]
            for name, (secs, skipped) in results.items():
                assert skipped == n, f"{name} skipped {skipped} of {n}"
                print(f"{n:>9} {name:<44} {secs:>9.4f} {n / secs:>12,.0f} {base_a / secs:>7.1f}x {base_b / secs:>7.1f}x"
                      f" {base_b_bytes / secs:>7.1f}x")
            print()
        await r.aclose()
    print("Targets: (c) >= 30x (a) and >= 2x (b); (d) >= 10x (b). (b') is context for (d) and (e), which also")
    print("start from the bytes; the targets are against (b).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1312,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run([int(s) for s in args.sizes.split(",")], args.repeat))


if __name__ == "__main__":
    main()
