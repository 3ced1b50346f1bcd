"""Hashing from Python: the legacy scheme against CPython's json + hashlib over 10,000+ generated
dicts (from dicts and from their JSON bytes), the Decimal/datetime/default=str rules, JCS, pages,
and errors as tdscache.Error subclasses carrying the C status."""

from __future__ import annotations

import enum
import importlib.util
import json
import random
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import tdscache
from legacy_reference import legacy_hash

_ORACLE = Path(__file__).resolve().parents[1] / "cpp" / "legacy_oracle.py"
_spec = importlib.util.spec_from_file_location("legacy_oracle", _ORACLE)
assert _spec and _spec.loader
oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracle)


class Color(enum.IntEnum):
    RED = 1


def _python_extras(rng: random.Random) -> dict[str, object]:
    """Values only Python objects carry: Decimal, datetime, tuples, IntEnum, UUID, dates."""
    extras: dict[str, object] = {}
    if rng.random() < 0.3:
        extras["price"] = Decimal(f"{rng.randint(0, 10**6)}.{rng.randint(0, 99):02d}")
    if rng.random() < 0.3:
        extras["when"] = datetime(2025, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                                  tzinfo=timezone.utc if rng.random() < 0.5 else None)
    if rng.random() < 0.2:
        extras["nested_extra"] = {"d": Decimal("1.10"), "t": datetime(2024, 2, 29, 12, 30, 5, 123),
                                  "u": uuid.UUID(int=rng.getrandbits(128)), "day": date(2025, 1, 2),
                                  "tup": (1, "x", None), "color": Color.RED}
    return extras


def test_legacy_digests_match_cpython_over_ten_thousand_generated_dicts() -> None:
    rng = random.Random(20251113)
    hasher = tdscache.Hasher("legacy")
    mismatches = []
    for n in range(10_500):
        doc = {oracle.rand_string(rng, rng.randint(1, 6)): oracle.rand_value(rng, 0) for _ in range(rng.randint(0, 8))}
        if rng.random() < 0.3:
            doc[rng.choice(sorted(oracle.EXCLUDE))] = oracle.rand_value(rng, 1)
        if rng.random() < 0.3:
            doc["top_null"] = None
        doc.update(_python_extras(rng))
        expected = legacy_hash(doc)
        if hasher.hexdigest(doc) != expected:
            mismatches.append(doc)
        # The same entity as JSON bytes (what an HTTP body holds) must hash the same, when the
        # bytes are valid UTF-8 and hold no Python-only types.
        if not any(k in doc for k in ("price", "when", "nested_extra")):
            # json.loads may join a surrogate pair the dict held apart: hash what it returns.
            text = json.dumps(doc)
            if hasher.hexdigest(text.encode()) != legacy_hash(json.loads(text)):
                mismatches.append(("bytes", text))
    assert not mismatches, mismatches[:3]


def test_decimal_and_datetime_follow_the_legacy_rules() -> None:
    h = tdscache.Hasher()
    data = {"p": Decimal("1.50"), "t": datetime(2025, 1, 1, 10, 0), "nested": {"t": datetime(2025, 1, 1), "d": Decimal("2")}}
    assert h.canonical(data) == b'{"nested": {"d": "2", "t": "2025-01-01 00:00:00"}, "p": "1.50", "t": "2025-01-01T10:00:00"}'
    assert h.hexdigest(data) == legacy_hash(data)


def test_jcs_treats_top_level_decimal_and_datetime_as_legacy_does() -> None:
    # The top-level normalization is the service's, whatever the scheme; nested values go
    # through str() (json.dumps' default=str).
    h = tdscache.Hasher("jcs")
    data = {"p": Decimal("1.50"), "t": datetime(2025, 1, 1, 10, 0), "nested": {"t": datetime(2025, 1, 1)}}
    expected = b'{"nested":{"t":"2025-01-01 00:00:00"},"p":"1.50","t":"2025-01-01T10:00:00"}'
    for _ in range(3):  # the last calls go through the dicts' cached shapes
        assert h.canonical(data) == expected


def test_other_types_go_through_str_like_default_str() -> None:
    h = tdscache.Hasher()
    u = uuid.UUID(int=7)
    assert h.canonical({"u": u, "c": Color.RED, "t": (1, 2)}) == f'{{"c": 1, "t": [1, 2], "u": "{u}"}}'.encode()


def test_non_string_keys_follow_json_dumps() -> None:
    h = tdscache.Hasher()
    data = {"m": {2: "b", 1: "a"}, "b": {True: 1}}
    assert h.canonical(data) == json.dumps({"b": {True: 1}, "m": {2: "b", 1: "a"}}, sort_keys=True).encode()
    with pytest.raises(TypeError):
        h.canonical({"m": {1: "a", "x": "b"}})


def test_member_names_sort_as_python_sorts_them_around_the_eight_byte_prefix() -> None:
    # The object walker compares names by their first 8 bytes first: names that are prefixes of
    # others, that share 8 bytes, that hold NUL right after a prefix, or that differ only past
    # byte 8 or in multi-byte UTF-8 (and WTF-8 for a lone surrogate) must still come out in
    # Python's code point order.
    names = ["ab", "ab\x00", "ab\x00x", "ab\x01", "abc", "abcdefgh", "abcdefgh\x00", "abcdefghi",
             "abcdefgg\uffff", "abcdefgh\u00e9", "\u00e9", "\u00e9a", "\U0001f600", "\uffff", "\ud800",
             "\ud800x", "", "\x00", "zzzzzzzzzzzzzzzz", "zzzzzzzzzzzzzzzy", "location_id", "location_name",
             "location_stock_on_hand", "location_available_stock"]
    h = tdscache.Hasher()
    rng = random.Random(8)
    for _ in range(50):
        rng.shuffle(names)
        data = {n: i for i, n in enumerate(names)}
        expected = json.dumps(data, sort_keys=True).encode()
        assert h.canonical(data) == expected
        assert h.canonical({"nested": [data, {"x": data}]}) == \
            json.dumps({"nested": [data, {"x": data}]}, sort_keys=True).encode()


def test_jcs_keeps_nineteen_digit_ids_apart() -> None:
    h = tdscache.Hasher("jcs")
    assert h.digest({"item_id": 2646610000000113574}) != h.digest({"item_id": 2646610000000113575})
    assert h.canonical({"b": 1.0, "a": "é"}) == '{"a":"é","b":1}'.encode()
    assert h.canonical(b'{"b":1.0,"a":"\\u00e9"}') == h.canonical({"b": 1.0, "a": "é"})


def test_bytes_and_memoryview_and_bytearray_are_json_text() -> None:
    h = tdscache.Hasher()
    body = b'{"b": 2, "a": 1}'
    assert h.digest(body) == h.digest(memoryview(body)) == h.digest(bytearray(body)) == h.digest({"a": 1, "b": 2})


def test_errors_are_tdscache_errors_with_status_codes() -> None:
    h = tdscache.Hasher()
    with pytest.raises(tdscache.InputError) as info:
        h.digest(b'{"a": NaN}')
    assert info.value.status == -6 and info.value.status_name == "number_nan_inf" and info.value.offset == 6
    with pytest.raises(tdscache.InputError) as info:
        h.digest(b'{"a": [1, 2')
    assert info.value.status_name == "json_malformed"
    with pytest.raises(tdscache.InputError):
        h.digest({"a": float("nan")})
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(tdscache.InputError) as info:
        h.digest(loop)
    assert info.value.status_name == "depth_exceeded"
    with pytest.raises(tdscache.ConfigError):
        tdscache.Hasher("sha1")
    with pytest.raises(tdscache.ConfigError):
        tdscache.Hasher(exclude_pointers=["no-slash"])
    assert isinstance(info.value, tdscache.Error) and isinstance(info.value, ValueError)


def test_exclusions_apply_to_objects_and_bytes_alike() -> None:
    h = tdscache.Hasher("jcs", exclude_fields=["secret"], exclude_pointers=["/locations/0/stock"])
    data = {"secret": 1, "locations": [{"stock": 5, "id": 1}, {"stock": 6}]}
    assert h.canonical(data) == b'{"locations":[{"id":1},{"stock":6}]}'
    assert h.canonical(json.dumps(data).encode()) == h.canonical(data)


def test_page_records_without_building_dicts() -> None:
    h = tdscache.Hasher()
    items = [{"item_id": 2646610000000113574 + i, "name": f"n{i}", "last_modified_time": "2025-11-13T08:30:00+0300"} for i in range(3)]
    body = json.dumps({"code": 0, "items": items, "page_context": {"has_more_page": True}}).encode()
    page = h.hash_page(body)
    assert len(page) == 3 and page.has_more_page is True
    assert page.ids == [str(i["item_id"]) for i in items]
    assert page.last_modified_times == ["2025-11-13T08:30:00+0300"] * 3
    assert page.digests == [h.digest(i) for i in items]
    assert [json.loads(page.item_bytes(k)) for k in range(3)] == items
    with pytest.raises(tdscache.InputError):
        h.hash_page(body[:-5])
    with pytest.raises(tdscache.PageError):
        h.hash_page(b'{"code": 0}')


def test_module_level_helpers() -> None:
    data = {"a": 1}
    assert tdscache.hash_entity(data) == legacy_hash(data)
    assert tdscache.canonical_json(data, "jcs") == b'{"a":1}'
    assert tdscache.__version__ == (Path(__file__).resolve().parents[2] / "VERSION").read_text().strip()
