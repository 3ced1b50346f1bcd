"""Cache.check_entities runs in one native call (ids, timestamps and canonical text read from the
dicts, SHA-256 on a worker thread in units of 128 entities, then one Redis check). These tests
hold it to the step-by-step facade path (Cache._check_entities_reference) on the same data: same
ids, digests, reasons and counts, across the unit and MGET boundaries, for every id and
timestamp shape."""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest

import tdscache
from tdscache.testing import RedisServer


class Kind(enum.IntEnum):
    A = 7


class Ident(str):
    def __str__(self) -> str:
        return "ident-" + str.__str__(self)


class ReadOnly(Mapping[str, Any]):
    """A Mapping that is not a dict: its own get() must be used."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class Renamed(dict):  # type: ignore[type-arg]
    """A dict subclass whose get() answers differently from its items."""

    def get(self, key: str, default: Any = None) -> Any:
        return "renamed" if key == "item_id" else super().get(key, default)


ID_SHAPES: list[Any] = [12, "abc", None, True, False, 2**63 + 11, -5, Kind.A, 1.5, "\ud800x", Ident("q"), "é"]
MODIFIED_SHAPES: list[Any] = ["2025-01-01T00:00:00+0000", None, "", 20250101, datetime(2025, 1, 2),
                              "2099-01-01T00:00:00+0000"]


def entities(n: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    out: list[Any] = []
    for i in range(n):
        e: dict[str, Any] = {"item_id": 2646610000000113574 + i, "name": f"item {i} زيت", "rate": i / 4,
                             "tags": ["a", {"z": i, "y": None}], "last_modified_time": "2025-01-01T00:00:00+0000"}
        if rng.random() < 0.1:
            e["item_id"] = rng.choice(ID_SHAPES)
        if rng.random() < 0.05:
            del e["item_id"]
        if rng.random() < 0.1:
            e["last_modified_time"] = rng.choice(MODIFIED_SHAPES)
        if rng.random() < 0.03:
            del e["last_modified_time"]
        wrapped: Any = e
        if rng.random() < 0.03:
            wrapped = ReadOnly(e)
        elif rng.random() < 0.03:
            wrapped = Renamed(e)
        out.append(wrapped)
    return out


def assert_same(native: tdscache.CheckReport, reference: tdscache.CheckReport) -> None:
    assert native.ids == reference.ids
    assert [native.batch.digest(i) for i in range(len(native))] == \
        [reference.batch.digest(i) for i in range(len(reference))]
    assert native.reasons == reference.reasons
    assert native.sync == reference.sync
    assert (native.to_sync, native.skipped, native.cache_errors, native.by_reason, native.error) == \
        (reference.to_sync, reference.skipped, reference.cache_errors, reference.by_reason, reference.error)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 129, 999, 1000, 1001, 2600])
def test_one_call_check_matches_the_step_by_step_path(n: int, fresh_redis: RedisServer) -> None:
    cache = tdscache.Cache(fresh_redis.url)
    items = entities(n, seed=n)
    first = cache.check_entities("product", items)
    assert_same(first, cache._check_entities_reference("product", items))
    # Commit two thirds, change some, then both paths must see the same mix of decisions.
    cache.commit(first, [i for i in first.indices_to_sync() if i % 3])
    assert first.to_sync == n
    for i, e in enumerate(items):
        if i % 7 == 0 and isinstance(e, dict) and not isinstance(e, Renamed):
            e["rate"] = -1
    again = cache.check_entities("product", items)
    assert_same(again, cache._check_entities_reference("product", items))
    if n >= 1000:
        assert again.skipped > 0 and again.to_sync > 0
    forced = cache.check_entities("product", items, force=True)
    assert_same(forced, cache._check_entities_reference("product", items, force=True))


def test_one_call_check_with_other_fields_and_schemes(fresh_redis: RedisServer) -> None:
    cache = tdscache.Cache(fresh_redis.url, scheme="jcs")
    items = [{"id": i, "changed": f"2025-01-0{1 + i % 9}", "v": [i, "é"]} for i in range(700)]
    native = cache.check_entities("thing", items, id_field="id", modified_field="changed")
    assert_same(native, cache._check_entities_reference("thing", items, id_field="id", modified_field="changed"))
    assert native.ids[:3] == ["0", "1", "2"]


def test_checks_send_the_mgets_one_big_check_sends(fresh_redis: RedisServer) -> None:
    cache = tdscache.Cache(fresh_redis.url, mget_chunk=1000)
    cache.check_entities("product", entities(2600, seed=1))
    assert fresh_redis.info_commandstats()["mget"]["calls"] == 3
    fresh_redis.reset_stats()
    small = tdscache.Cache(fresh_redis.url, mget_chunk=100)
    small.check_entities("product", entities(1300, seed=2))
    assert fresh_redis.info_commandstats()["mget"]["calls"] == 13


def test_a_bad_entity_midway_raises_and_leaves_the_client_usable(fresh_redis: RedisServer) -> None:
    cache = tdscache.Cache(fresh_redis.url)
    items = entities(3000, seed=3)
    items[2500] = {"item_id": 1, "rate": float("nan")}
    with pytest.raises(tdscache.InputError) as raised:
        cache.check_entities("product", items)
    assert raised.value.status_name == "number_nan_inf"
    with pytest.raises(AttributeError):
        cache.check_entities("product", [{"item_id": 1}] * 300 + [42])  # type: ignore[list-item]
    assert cache.check_entities("product", items[:2000]).to_sync == 2000


def test_with_redis_down_every_entity_syncs(fresh_redis: RedisServer) -> None:
    cache = tdscache.Cache(fresh_redis.url, connect_timeout_ms=200, command_timeout_ms=200)
    items = entities(2500, seed=4)
    fresh_redis.stop()
    try:
        report = cache.check_entities("product", items)
    finally:
        fresh_redis.restart()
    assert report.reasons == ["no_id" if not report.ids[i] else "cache_check_error" for i in range(2500)]
    assert report.to_sync == 2500 and report.error is not None


def test_a_bad_entity_while_the_reads_hang_raises_after_they_give_up(fresh_redis: RedisServer) -> None:
    # The reads go out on their own thread before the walk; a walk that fails must still wait
    # for them (they use the batch's ids), and then raise its own error, not hang or crash.
    cache = tdscache.Cache(fresh_redis.url, command_timeout_ms=300)
    items = entities(3000, seed=5)
    items[2900] = {"item_id": 1, "rate": float("nan")}
    assert cache.check_entities("product", items[:10]).to_sync == 10  # connected
    fresh_redis.sigstop()
    try:
        started = time.monotonic()
        with pytest.raises(tdscache.InputError):
            cache.check_entities("product", items)
        elapsed = time.monotonic() - started
    finally:
        fresh_redis.sigcont()
    assert elapsed < 30, "the reads give up after their command timeout"
    assert cache.check_entities("product", items[:2000]).to_sync == 2000


class ChecksWhilePrinted:
    """A value whose str() runs another check_entities on the same thread, mid-walk."""

    def __init__(self, cache: tdscache.Cache, others: list[Any]) -> None:
        self.cache, self.others = cache, others

    def __str__(self) -> str:
        return f"inner-{self.cache.check_entities('inner', self.others).to_sync}"


def test_a_check_inside_a_walk_keeps_its_own_buffers(fresh_redis: RedisServer) -> None:
    # The walk's text buffers are kept per thread between calls; a check started from a value's
    # str() must not write into the outer call's buffers, or outer digests would be wrong.
    cache = tdscache.Cache(fresh_redis.url)
    inner = entities(700, seed=6)
    items = entities(900, seed=7)
    for i in (5, 300, 899):
        items[i] = {"item_id": 90 + i, "odd": ChecksWhilePrinted(cache, inner)}
    assert_same(cache.check_entities("product", items), cache._check_entities_reference("product", items))


def test_kept_buffers_carry_nothing_between_calls(fresh_redis: RedisServer) -> None:
    # Entities far larger than a kept buffer, then small ones, then large ones again.
    cache = tdscache.Cache(fresh_redis.url)
    big = [{"item_id": i, "blob": chr(65 + i % 26) * 400_000} for i in range(200)]
    small = entities(1300, seed=8)
    for batch in (big, small, big[:150], small[:200]):
        assert_same(cache.check_entities("product", batch), cache._check_entities_reference("product", batch))
