"""The C ABI through ctypes alone (no pybind11): libtdscache.so hashes documents, turns a page into
records, and checks and commits against a real redis-server. Proves that any FFI can use tdscache.
The struct layouts below mirror capi/tdscache.h; a drift shows up as wrong values here.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _library_path() -> Path | None:
    configured = os.environ.get("TDS_SHARED_LIBRARY")
    if configured:
        return Path(configured)
    default = ROOT / "build" / "cmake" / "libtdscache.so"
    return default if default.exists() else None


def _redis_server_module() -> ModuleType:
    # By file path: the tdscache package's __init__ needs the native module, which this test
    # must not depend on.
    path = ROOT / "python" / "tdscache" / "testing" / "redis_server.py"
    spec = importlib.util.spec_from_file_location("tds_capi_redis_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the C types -----------------------------------------------------------------------------------

TDS_OK = 0
TDS_E_JSON_MALFORMED = -3
TDS_E_ITEM_NO_ID = -11
TDS_E_URL_INVALID = -14
TDS_SCHEME_LEGACY, TDS_SCHEME_JCS = 0, 1
TDS_COMMIT_WRITTEN = 0
TDS_HASH_OPTIONS_VERSION = TDS_CLIENT_OPTIONS_VERSION = TDS_STATS_VERSION = 1
TDS_STATS_REASON_SLOTS = 16
REASONS = ["forced_sync", "no_id", "cache_check_error", "no_cache_entry", "cache_entry_corrupt",
           "hash_scheme_changed", "content_changed", "cache_expired", "timestamp_newer", "unchanged"]

c_char_pp = ctypes.POINTER(ctypes.c_char_p)


class Digest(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_ubyte * 32)]


class HashOptions(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint), ("scheme", ctypes.c_int), ("strict", ctypes.c_int),
                ("default_exclusions", ctypes.c_int), ("exclude_fields", c_char_pp),
                ("exclude_fields_count", ctypes.c_size_t), ("exclude_pointers", c_char_pp),
                ("exclude_pointers_count", ctypes.c_size_t), ("max_depth", ctypes.c_size_t)]


class ClientOptions(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint), ("host", ctypes.c_char_p), ("port", ctypes.c_int),
                ("unix_path", ctypes.c_char_p), ("username", ctypes.c_char_p), ("password", ctypes.c_char_p),
                ("db", ctypes.c_int), ("tls", ctypes.c_int), ("tls_ca_file", ctypes.c_char_p),
                ("tls_ca_dir", ctypes.c_char_p), ("tls_cert_file", ctypes.c_char_p),
                ("tls_key_file", ctypes.c_char_p), ("tls_server_name", ctypes.c_char_p),
                ("tls_verify_hostname", ctypes.c_int), ("tls_insecure", ctypes.c_int),
                ("connect_timeout_ms", ctypes.c_int), ("command_timeout_ms", ctypes.c_int),
                ("keepalive_seconds", ctypes.c_int), ("key_prefix", ctypes.c_char_p),
                ("ttl_seconds", ctypes.c_int64), ("max_age_seconds", ctypes.c_int64),
                ("mget_chunk", ctypes.c_size_t), ("breaker_failures", ctypes.c_int),
                ("breaker_cooldown_ms", ctypes.c_int), ("reconnect_backoff_min_ms", ctypes.c_int),
                ("reconnect_backoff_max_ms", ctypes.c_int)]


class Entity(ctypes.Structure):
    _fields_ = [("entity_type", ctypes.c_char_p), ("entity_type_len", ctypes.c_size_t),
                ("entity_id", ctypes.c_char_p), ("entity_id_len", ctypes.c_size_t), ("digest", Digest),
                ("scheme", ctypes.c_int), ("last_modified_time", ctypes.c_char_p),
                ("last_modified_time_len", ctypes.c_size_t), ("force", ctypes.c_int)]


class CommitItem(ctypes.Structure):
    _fields_ = [("entity_type", ctypes.c_char_p), ("entity_type_len", ctypes.c_size_t),
                ("entity_id", ctypes.c_char_p), ("entity_id_len", ctypes.c_size_t), ("digest", Digest),
                ("scheme", ctypes.c_int), ("last_modified_time", ctypes.c_char_p),
                ("last_modified_time_len", ctypes.c_size_t), ("local_id", ctypes.c_char_p),
                ("local_id_len", ctypes.c_size_t), ("checked", ctypes.c_void_p),
                ("checked_index", ctypes.c_size_t)]


class Latency(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint64), ("p50_ms", ctypes.c_double), ("p99_ms", ctypes.c_double),
                ("max_ms", ctypes.c_double)]


class Stats(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint), ("reason_count", ctypes.c_uint),
                ("by_reason", ctypes.c_uint64 * TDS_STATS_REASON_SLOTS), ("checked", ctypes.c_uint64),
                ("skipped", ctypes.c_uint64), ("to_sync", ctypes.c_uint64), ("cache_errors", ctypes.c_uint64),
                ("synced", ctypes.c_uint64), ("conflicts", ctypes.c_uint64), ("failed", ctypes.c_uint64),
                ("hit_rate", ctypes.c_double), ("check_latency", Latency), ("commit_latency", Latency)]


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declares the signatures used here, so ctypes passes 64-bit sizes and pointers intact."""
    p, vp, sz, i = ctypes.POINTER, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    cp = ctypes.c_char_p
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "tds_version": (cp, []),
        "tds_version_number": (ctypes.c_uint, []),
        "tds_status_name": (cp, [i]),
        "tds_reason_name": (cp, [i]),
        "tds_last_error": (cp, []),
        "tds_free": (None, [vp]),
        "tds_hash_options_init": (i, [p(HashOptions), ctypes.c_uint]),
        "tds_hasher_new": (i, [p(vp), p(HashOptions)]),
        "tds_hasher_free": (None, [vp]),
        "tds_hash": (i, [p(Digest), vp, cp, sz]),
        "tds_hash_hex": (i, [ctypes.c_char * 65, vp, cp, sz]),
        "tds_canonicalize": (i, [p(vp), p(sz), vp, cp, sz]),
        "tds_hash_page": (i, [p(vp), vp, cp, sz, vp]),
        "tds_page_free": (None, [vp]),
        "tds_page_count": (sz, [vp]),
        "tds_page_has_more": (i, [vp]),
        "tds_page_record_id": (vp, [vp, sz, p(sz)]),
        "tds_page_record_modified": (vp, [vp, sz, p(sz)]),
        "tds_page_record_digest": (p(Digest), [vp, sz]),
        "tds_page_record_span": (i, [p(sz), p(sz), vp, sz]),
        "tds_page_record_status": (i, [vp, sz]),
        "tds_page_record_message": (cp, [vp, sz]),
        "tds_client_options_init": (i, [p(ClientOptions), ctypes.c_uint]),
        "tds_client_open": (i, [p(vp), p(ClientOptions)]),
        "tds_client_open_url": (i, [p(vp), cp]),
        "tds_client_free": (None, [vp]),
        "tds_client_ping": (i, [vp]),
        "tds_client_check": (i, [p(vp), vp, p(Entity), sz]),
        "tds_check_result_free": (None, [vp]),
        "tds_check_result_count": (sz, [vp]),
        "tds_check_result_reason": (i, [vp, sz]),
        "tds_check_result_should_sync": (i, [vp, sz]),
        "tds_check_result_status": (i, [vp]),
        "tds_client_commit": (i, [p(vp), vp, p(CommitItem), sz]),
        "tds_commit_result_free": (None, [vp]),
        "tds_commit_result_outcome": (i, [vp, sz]),
        "tds_commit_result_sync_count": (ctypes.c_int64, [vp, sz]),
        "tds_stats_init": (i, [p(Stats), ctypes.c_uint]),
        "tds_client_stats": (i, [p(Stats), vp]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    path = _library_path()
    if path is None:
        pytest.skip("libtdscache.so not found: set TDS_SHARED_LIBRARY or build into build/cmake "
                    "(cmake -S . -B build/cmake -G Ninja && cmake --build build/cmake)")
    if not path.exists():
        pytest.fail(f"TDS_SHARED_LIBRARY={path} does not exist")
    return _bind(ctypes.CDLL(str(path)))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Any]:
    module = _redis_server_module()
    with module.RedisServer(unix_socket=True) as server:
        yield server


def legacy_hex(document: dict[str, Any]) -> str:
    """The production service's digest, computed by CPython: the oracle for the legacy scheme."""
    excluded = {"zoho_synced_at", "created_at", "updated_at", "last_sync_attempt", "sync_count",
                "cached_at", "zoho_raw_data"}
    kept = {k: v for k, v in document.items() if k not in excluded and v is not None}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def last_error(lib: ctypes.CDLL) -> str:
    message: bytes = lib.tds_last_error()
    return message.decode()


def new_hasher(lib: ctypes.CDLL, scheme: int = TDS_SCHEME_LEGACY) -> ctypes.c_void_p:
    options = HashOptions()
    assert lib.tds_hash_options_init(ctypes.byref(options), TDS_HASH_OPTIONS_VERSION) == TDS_OK
    options.scheme = scheme
    hasher = ctypes.c_void_p()
    assert lib.tds_hasher_new(ctypes.byref(hasher), ctypes.byref(options)) == TDS_OK, last_error(lib)
    return hasher


def hash_hex(lib: ctypes.CDLL, hasher: ctypes.c_void_p, text: bytes) -> str:
    out = (ctypes.c_char * 65)()
    assert lib.tds_hash_hex(out, hasher, text, len(text)) == TDS_OK, last_error(lib)
    return out.value.decode()


def digest_of(lib: ctypes.CDLL, text: bytes) -> Digest:
    hasher = new_hasher(lib)
    try:
        digest = Digest()
        assert lib.tds_hash(ctypes.byref(digest), hasher, text, len(text)) == TDS_OK
        return digest
    finally:
        lib.tds_hasher_free(hasher)


def borrowed_text(address: int | None, length: int) -> bytes | None:
    return None if address is None else ctypes.string_at(address, length)


# -- hashing ---------------------------------------------------------------------------------------


def test_runtime_version_is_the_version_file(lib: ctypes.CDLL) -> None:
    version = (ROOT / "VERSION").read_text().split()[0]
    assert lib.tds_version().decode() == version
    major, minor, patch = (int(part) for part in version.split("."))
    assert lib.tds_version_number() == major * 10000 + minor * 100 + patch


def test_legacy_digest_matches_cpython_json_and_hashlib(lib: ctypes.CDLL) -> None:
    document = {"name": "Widget", "item_id": 2646610000000113574, "rate": 12.5, "updated_at": "x",
                "note": None, "tags": ["a", None, {"z": 1, "é": "ü"}]}
    text = json.dumps(document, ensure_ascii=False).encode()
    hasher = new_hasher(lib)
    try:
        assert hash_hex(lib, hasher, text) == legacy_hex(document)
    finally:
        lib.tds_hasher_free(hasher)


def test_jcs_canonical_bytes_come_back_in_a_buffer_freed_by_tds_free(lib: ctypes.CDLL) -> None:
    hasher = new_hasher(lib, TDS_SCHEME_JCS)
    out, length = ctypes.c_void_p(), ctypes.c_size_t()
    text = b'{"b": [1, 2.50, "x"], "a": null}'
    try:
        status = lib.tds_canonicalize(ctypes.byref(out), ctypes.byref(length), hasher, text, len(text))
        assert status == TDS_OK
        assert out.value is not None
        canonical = ctypes.string_at(out.value, length.value)
        assert canonical == b'{"a":null,"b":[1,2.5,"x"]}'
        assert hash_hex(lib, hasher, text) == hashlib.sha256(canonical).hexdigest()
    finally:
        lib.tds_free(out)
        lib.tds_hasher_free(hasher)


def test_malformed_json_gives_a_status_and_a_message(lib: ctypes.CDLL) -> None:
    hasher = new_hasher(lib)
    digest = Digest()
    try:
        status = lib.tds_hash(ctypes.byref(digest), hasher, b'{"a": [1, 2', 11)
        assert status == TDS_E_JSON_MALFORMED
        assert lib.tds_status_name(status) == b"json_malformed"
        assert last_error(lib) != ""
    finally:
        lib.tds_hasher_free(hasher)


def test_bad_url_is_refused_with_its_reason(lib: ctypes.CDLL) -> None:
    client = ctypes.c_void_p(1)
    assert lib.tds_client_open_url(ctypes.byref(client), b"http://nowhere") == TDS_E_URL_INVALID
    assert client.value is None
    assert "http://nowhere" in last_error(lib)


def test_page_records_carry_ids_times_digests_and_item_errors(lib: ctypes.CDLL) -> None:
    items: list[dict[str, Any]] = [
        {"item_id": 11, "name": "A", "last_modified_time": "2025-11-13T08:30:00+0300"},
        {"item_id": "S-2", "name": "B", "last_modified_time": None},
        {"name": "no id"}]
    body = json.dumps({"code": 0, "items": items, "page_context": {"has_more_page": False}}).encode()
    hasher = new_hasher(lib)
    page = ctypes.c_void_p()
    try:
        assert lib.tds_hash_page(ctypes.byref(page), hasher, body, len(body), None) == TDS_OK, last_error(lib)
        assert lib.tds_page_count(page) == 3
        assert lib.tds_page_has_more(page) == 0
        length = ctypes.c_size_t()
        assert borrowed_text(lib.tds_page_record_id(page, 0, ctypes.byref(length)), length.value) == b"11"
        assert borrowed_text(lib.tds_page_record_modified(page, 0, ctypes.byref(length)),
                             length.value) == b"2025-11-13T08:30:00+0300"
        assert borrowed_text(lib.tds_page_record_id(page, 1, ctypes.byref(length)), length.value) == b"S-2"
        assert lib.tds_page_record_modified(page, 1, None) is None
        for index in (0, 1):
            digest = lib.tds_page_record_digest(page, index)
            assert bytes(digest.contents.bytes).hex() == legacy_hex(items[index])
            offset, size = ctypes.c_size_t(), ctypes.c_size_t()
            assert lib.tds_page_record_span(ctypes.byref(offset), ctypes.byref(size), page, index) == TDS_OK
            assert json.loads(body[offset.value:offset.value + size.value]) == items[index]
        assert lib.tds_page_record_status(page, 2) == TDS_E_ITEM_NO_ID
        assert b"item_id" in lib.tds_page_record_message(page, 2)
        assert not lib.tds_page_record_digest(page, 2)
    finally:
        lib.tds_page_free(page)
        lib.tds_hasher_free(hasher)


# -- the client ------------------------------------------------------------------------------------


def open_client(lib: ctypes.CDLL, socket_path: str) -> ctypes.c_void_p:
    options = ClientOptions()
    assert lib.tds_client_options_init(ctypes.byref(options), TDS_CLIENT_OPTIONS_VERSION) == TDS_OK
    assert options.port == 6379 and options.mget_chunk == 1000 and options.ttl_seconds == 86400
    options.unix_path = socket_path.encode()
    options.connect_timeout_ms = 500
    client = ctypes.c_void_p()
    assert lib.tds_client_open(ctypes.byref(client), ctypes.byref(options)) == TDS_OK, last_error(lib)
    return client


def entity(entity_type: bytes, entity_id: bytes, digest: Digest) -> Entity:
    return Entity(entity_type=entity_type, entity_type_len=len(entity_type), entity_id=entity_id,
                  entity_id_len=len(entity_id), digest=digest, scheme=TDS_SCHEME_LEGACY)


def reasons(lib: ctypes.CDLL, checked: ctypes.c_void_p) -> list[str]:
    count = lib.tds_check_result_count(checked)
    return [lib.tds_reason_name(lib.tds_check_result_reason(checked, i)).decode() for i in range(count)]


def test_check_then_commit_then_check_skips_what_was_written(lib: ctypes.CDLL, redis_server: Any) -> None:
    client = open_client(lib, str(redis_server.socket_path))
    digest = digest_of(lib, b'{"v": 1}')
    ids = [b"p1", b"p\x002", b""]  # kept here: a c_char_p field reads back only up to a NUL
    batch = (Entity * 3)(*(entity(b"product", entity_id, digest) for entity_id in ids))
    first, second, committed = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    try:
        assert lib.tds_client_ping(client) == TDS_OK, last_error(lib)
        assert lib.tds_client_check(ctypes.byref(first), client, batch, 3) == TDS_OK
        assert reasons(lib, first) == ["no_cache_entry", "no_cache_entry", "no_id"]
        assert lib.tds_check_result_status(first) == TDS_OK

        items = (CommitItem * 2)()
        for index in range(2):
            items[index] = CommitItem(entity_type=b"product", entity_type_len=7, entity_id=ids[index],
                                      entity_id_len=len(ids[index]), digest=digest, scheme=TDS_SCHEME_LEGACY,
                                      checked=first.value, checked_index=index)
        assert lib.tds_client_commit(ctypes.byref(committed), client, items, 2) == TDS_OK, last_error(lib)
        assert [lib.tds_commit_result_outcome(committed, i) for i in range(2)] == [TDS_COMMIT_WRITTEN] * 2
        assert lib.tds_commit_result_sync_count(committed, 1) == 1

        # The binary id (with its NUL) is its own key: both entries are there.
        assert set(redis_server.command("KEYS", "tds:entity:state:product:*")) == {
            b"tds:entity:state:product:p1", b"tds:entity:state:product:p\x002"}

        assert lib.tds_client_check(ctypes.byref(second), client, batch, 2) == TDS_OK
        assert reasons(lib, second) == ["unchanged", "unchanged"]
        assert lib.tds_check_result_should_sync(second, 0) == 0

        stats = Stats()
        assert lib.tds_stats_init(ctypes.byref(stats), TDS_STATS_VERSION) == TDS_OK
        assert lib.tds_client_stats(ctypes.byref(stats), client) == TDS_OK
        assert stats.reason_count == len(REASONS)
        assert (stats.checked, stats.skipped, stats.synced) == (5, 2, 2)
        assert stats.by_reason[REASONS.index("no_cache_entry")] == 2
        assert stats.by_reason[REASONS.index("no_id")] == 1
        assert stats.check_latency.count == 2 and stats.commit_latency.count == 1
    finally:
        lib.tds_check_result_free(first)
        lib.tds_check_result_free(second)
        lib.tds_commit_result_free(committed)
        lib.tds_client_free(client)


def test_unreachable_server_means_every_entity_syncs(lib: ctypes.CDLL, tmp_path: Path) -> None:
    client = open_client(lib, str(tmp_path / "nobody.sock"))
    digest = digest_of(lib, b"{}")
    batch = (Entity * 2)(entity(b"product", b"a", digest), entity(b"product", b"b", digest))
    checked = ctypes.c_void_p()
    try:
        assert lib.tds_client_check(ctypes.byref(checked), client, batch, 2) == TDS_OK
        assert reasons(lib, checked) == ["cache_check_error", "cache_check_error"]
        assert [lib.tds_check_result_should_sync(checked, i) for i in range(2)] == [1, 1]
        assert lib.tds_check_result_status(checked) < 0
    finally:
        lib.tds_check_result_free(checked)
        lib.tds_client_free(client)
