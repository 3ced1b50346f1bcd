"""The bad-input catalogue (tests/bad_inputs.json) through the Python package: every malformed or
hostile input gives its expected tdscache.Error (status name, message, offset), or its expected
canonical bytes, records or decisions against a real redis-server (the fresh_redis fixture).
The same file drives tests/cpp/bad_input_test.cpp and tests/c/bad_input_test.c.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import pytest

import tdscache
from tdscache.testing import RedisServer

CATALOGUE = json.loads((Path(__file__).resolve().parents[1] / "bad_inputs.json").read_text())
DIGEST = bytes.fromhex(CATALOGUE["digest"])
KEY_PREFIX = b"tds:entity:state"


def bytes_of(spec: dict[str, Any]) -> bytes:
    """A bytes spec: {"text"}, {"hex"} or {"parts"} (see the catalogue's "format")."""
    if "text" in spec:
        return spec["text"].encode("utf-8")
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    out = bytearray()
    for part in spec["parts"]:
        if "sequence" in part:
            seq = part["sequence"]
            numbers = (seq["start"] + i * seq["step"] for i in range(seq["count"]))
            out += seq["separator"].encode().join((seq["format"] % n).encode() for n in numbers)
        else:
            out += bytes_of(part) * part.get("repeat", 1)
    return bytes(out)


def cases(op: str) -> list[Any]:
    params = []
    for case in CATALOGUE["cases"]:
        if case["op"] != op:
            continue
        marks = []
        if "python" in case.get("skip", {}):
            marks.append(pytest.mark.skip(reason=case["skip"]["python"]))
        params.append(pytest.param(case, id=case["name"], marks=marks))
    return params


def check_error(err: tdscache.Error, want: dict[str, Any]) -> None:
    assert err.status_name == want["status"], err.message
    assert err.status < 0
    assert err.message
    if "message" in want:
        assert want["message"] in err.message
    if "offset" in want:
        assert err.offset == want["offset"]
    if "message_max" in want:
        assert len(err.message) <= want["message_max"]
    if "message_excludes" in want:
        assert want["message_excludes"] not in err.message
        assert want["message_excludes"] not in str(err)


def hasher_for(case: dict[str, Any]) -> tdscache.Hasher:
    opts = case.get("options", {})
    return tdscache.Hasher(opts.get("scheme", "legacy"), strict=opts.get("strict", False),
                           exclude_pointers=opts.get("exclude_pointers", ()),
                           max_depth=opts.get("max_depth", 512))


def first_difference(got: bytes, want: bytes) -> str:
    i = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return f"sizes {len(got)} vs {len(want)}, first difference at byte {i}: {got[i:i + 40]!r} vs {want[i:i + 40]!r}"


@pytest.mark.parametrize("case", cases("canonicalize"))
def test_canonicalize_gives_its_catalogue_result(case: dict[str, Any]) -> None:
    want = case["expect"]
    try:
        hasher = hasher_for(case)
    except tdscache.Error as err:
        check_error(err, want)
        return
    data = bytes_of(case["input"])
    if want["status"] != "ok":
        with pytest.raises(tdscache.Error) as raised:
            hasher.canonical(data)
        check_error(raised.value, want)
        assert isinstance(raised.value, (tdscache.InputError, tdscache.ConfigError))
        return
    output = hasher.canonical(data)
    expected = bytes_of(want["output"])
    assert output == expected, first_difference(output, expected)
    assert hasher.digest(data) == hashlib.sha256(expected).digest()


@pytest.mark.parametrize("case", cases("hash_page"))
def test_hash_page_gives_its_catalogue_result(case: dict[str, Any]) -> None:
    want = case["expect"]
    hasher = hasher_for(case)
    body = bytes_of(case["input"])
    page = case.get("page", {})
    kwargs = {k: page[k] for k in ("items_key", "id_field", "modified_field") if k in page}
    if want["status"] != "ok":
        with pytest.raises(tdscache.Error) as raised:
            hasher.hash_page(body, **kwargs)
        check_error(raised.value, want)
        return
    records = hasher.hash_page(body, **kwargs)
    assert len(records) == len(want["records"])
    for i, expected in enumerate(want["records"]):
        error: Optional[tuple[int, str, str]] = records.errors[i]
        if expected["status"] != "ok":
            assert error is not None, f"record {i} was hashed"
            status, name, message = error
            assert name == expected["status"] and status < 0
            if "message" in expected:
                assert expected["message"] in message
            continue
        assert error is None, f"record {i}: {error}"
        # ids come back as str; lone surrogates survive as they do in json.loads.
        assert records.ids[i].encode("utf-8", "surrogatepass") == bytes_of(expected["id"])
        assert hasher.digest(records.item_bytes(i)) == records.digests[i]


@pytest.mark.parametrize("case", cases("parse_url"))
def test_url_gives_its_catalogue_result(case: dict[str, Any]) -> None:
    url = bytes_of(case["input"]).decode("utf-8")
    with pytest.raises(tdscache.ConfigError) as raised:
        tdscache.Cache(url)
    check_error(raised.value, case["expect"])


def run_redis_steps(cache: tdscache.Cache, server: RedisServer, steps: list[dict[str, Any]]) -> None:
    for index, step in enumerate(steps):
        (kind, spec), = step.items()
        where = f"step {index} ({kind})"
        entity_type = bytes_of(spec["type"]).decode("utf-8")
        entity_id = bytes_of(spec["id"]).decode("utf-8") if "id" in spec else None
        if kind == "plant":
            key = KEY_PREFIX + b":" + bytes_of(spec["type"]) + b":" + bytes_of(spec["id"])
            assert server.command("SET", key, bytes_of(spec["value"])) == "OK", where
        elif kind == "check":
            report = cache.check(entity_type, [entity_id], [DIGEST])
            assert report.reasons == [spec["reason"]], f"{where}: {report.error}"
        elif kind == "commit":
            report = cache.check(entity_type, [entity_id], [DIGEST])
            assert report.sync == [True], where
            committed = cache.commit(report, [0])
            assert committed.outcomes == ["written"], f"{where}: {committed.error}"
            state = cache.get_state(entity_type, entity_id)
            assert state is not None and state["entity_id"] == entity_id and state["entity_type"] == entity_type
        elif kind == "invalidate":
            assert cache.invalidate(entity_type, entity_id) == spec["removed"], where
        else:
            raise AssertionError(f"unknown step {kind}")


@pytest.mark.parametrize("case", cases("redis"))
def test_redis_case_gives_its_catalogue_result(case: dict[str, Any], fresh_redis: RedisServer) -> None:
    cache = tdscache.Cache(fresh_redis.url)
    run_redis_steps(cache, fresh_redis, case["steps"])


def test_catalogue_has_at_least_forty_cases_with_unique_names() -> None:
    names = [c["name"] for c in CATALOGUE["cases"]]
    assert len(names) >= 40
    assert len(names) == len(set(names))
    assert {c["op"] for c in CATALOGUE["cases"]} == {"canonicalize", "hash_page", "parse_url", "redis"}


def test_page_with_lone_surrogate_id_checks_and_commits_natively(fresh_redis: RedisServer) -> None:
    # Regression: PageRecords.ids raised UnicodeDecodeError for an id json.loads reads fine.
    cache = tdscache.Cache(fresh_redis.url)
    body = b'{"items": [{"item_id": "\\ud800x", "v": 1}]}'
    checked = cache.check_page("product", body)
    assert checked.records.ids == ["\ud800x"]
    assert checked.report.reasons == ["no_cache_entry"]
    assert cache.commit(checked.report, [0]).outcomes == ["written"]
    assert cache.check_page("product", body).report.reasons == ["unchanged"]


def _nested(kind: type, levels: int) -> Any:
    root: Any = kind()
    node = root
    for _ in range(levels):
        child = kind()
        if isinstance(node, list):
            node.append(child)
        else:
            node["a"] = child
        node = child
    return root


@pytest.mark.parametrize("kind", [list, dict])
def test_python_objects_nested_100000_deep_give_depth_exceeded(kind: type) -> None:
    with pytest.raises(tdscache.InputError) as raised:
        tdscache.Hasher().canonical(_nested(kind, 100_000))
    assert raised.value.status_name == "depth_exceeded"


SMALL_STACK_PROGRAM = """
import sys, threading, tdscache
threading.stack_size(128 * 1024)
results = []
def deep(kind, levels):
    root = node = kind()
    for _ in range(levels):
        child = kind()
        if kind is list: node.append(child)
        else: node["a"] = child
        node = child
    return root
def run():
    hasher = tdscache.Hasher(max_depth=4096)
    for data in (b"[" * 4096 + b"]" * 4096, deep(list, 4096), deep(dict, 4096)):
        try:
            hasher.canonical(data)
            results.append("ok")
        except tdscache.Error as err:
            results.append(err.status_name + ": " + err.message)
thread = threading.Thread(target=run)
thread.start()
thread.join()
print("\\n".join(results))
"""


def test_small_thread_stacks_give_depth_exceeded_instead_of_crashing() -> None:
    # Regression: max_depth 4096 on a 128 KB thread stack crashed the interpreter (both the bytes
    # walker and the Python object walker). In a child process, so a crash fails this test only.
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", SMALL_STACK_PROGRAM], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.startswith("depth_exceeded: ") and "stack" in line, line


# -- option values the facade must refuse (or read) clearly ----------------------------------------


def test_a_bare_str_is_one_pointer_or_field_not_a_sequence_of_characters() -> None:
    data = {"a": 1, "b": {"c": 2}, "/": 3, "x": 4}
    by_str = tdscache.Hasher(exclude_pointers="/b/c", exclude_fields="a")
    by_list = tdscache.Hasher(exclude_pointers=["/b/c"], exclude_fields=["a"])
    assert by_str.canonical(data) == by_list.canonical(data) == b'{"/": 3, "b": {}, "x": 4}'
    assert tdscache.Hasher(exclude_pointers="/x").canonical(data) == b'{"/": 3, "a": 1, "b": {"c": 2}}'


def test_exclusions_that_are_not_str_raise_type_error_naming_the_option() -> None:
    with pytest.raises(TypeError, match="exclude_pointers"):
        tdscache.Hasher(exclude_pointers=[b"/a"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="exclude_fields"):
        tdscache.Hasher(exclude_fields=[1])  # type: ignore[list-item]


@pytest.mark.parametrize("depth", [-1, 0, 4097, 2**70])
def test_max_depth_out_of_range_is_a_config_error(depth: int) -> None:
    with pytest.raises(tdscache.ConfigError, match="max_depth") as raised:
        tdscache.Hasher(max_depth=depth)
    assert raised.value.status_name == "invalid_argument"
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("option, value", [("mget_chunk", -1), ("mget_chunk", 0), ("mget_chunk", 2**64),
                                           ("mget_chunk", "10"), ("mget_chunk", True), ("ttl_seconds", -5),
                                           ("breaker_failures", 2**40), ("db", -1), ("command_timeout_ms", 1.5)])
def test_bad_integer_client_options_are_config_errors_naming_the_option(option: str, value: Any) -> None:
    with pytest.raises(tdscache.ConfigError, match=option) as raised:
        tdscache.Cache("redis://127.0.0.1:1/0", **{option: value})
    assert raised.value.status_name == "invalid_argument"
