"""Content digests from Python: canonical JSON of dicts (or of raw JSON bytes) and its SHA-256.

A thin typed layer over the native Hasher. Objects are walked natively, without json.dumps;
bytes (an httpx response body, a memoryview) are parsed natively with the GIL released.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, Optional

from ._loader import native

#: Data a Hasher accepts: a JSON-like Python value, or raw JSON bytes.
Hashable = Any


class Hasher:
    """Canonicalizes and hashes entities in one scheme.

    scheme: "legacy" (byte-for-byte the production Python service's json.dumps form, so its
    Redis entries keep matching) or "jcs" (RFC 8785). Thread safe; reuse one per scheme.

    exclude_fields (top-level names) and exclude_pointers (RFC 6901 JSON Pointers) take a
    sequence of str, or one str meaning one name or pointer (never a sequence of characters).
    max_depth: 1 to 4096; anything else raises ConfigError.
    """

    def __init__(self, scheme: str = "legacy", *, strict: bool = False,
                 exclude_fields: Optional[str | Sequence[str]] = None,
                 exclude_pointers: str | Sequence[str] = (), max_depth: int = 512) -> None:
        self._native = native().Hasher(
            scheme, strict=strict,
            exclude_fields=None if exclude_fields is None else _names("exclude_fields", exclude_fields),
            exclude_pointers=_names("exclude_pointers", exclude_pointers), max_depth=max_depth)

    @property
    def scheme(self) -> str:
        return str(self._native.scheme)

    @property
    def native(self) -> Any:
        """The native Hasher (for the native Client's one-call checks)."""
        return self._native

    def canonical(self, data: Hashable) -> bytes:
        """The canonical JSON bytes. bytes/bytearray/memoryview are parsed as JSON text;
        anything else is a Python value (so a str is a JSON string, not JSON text)."""
        return bytes(self._native.canonical(data))

    def digest(self, data: Hashable) -> bytes:
        """SHA-256 of the canonical form: 32 bytes."""
        return bytes(self._native.digest(data))

    def hexdigest(self, data: Hashable) -> str:
        """SHA-256 of the canonical form as 64 lowercase hex characters (what Redis stores)."""
        return str(self._native.hexdigest(data))

    def digest_many(self, items: Sequence[Hashable]) -> list[bytes]:
        """Digests of many entities; the SHA-256 part runs with the GIL released."""
        return list(self._native.digest_many(items))

    def hash_page(self, body: bytes | bytearray | memoryview, *, items_key: str = "items",
                  id_field: str = "item_id",
                  modified_field: str = "last_modified_time") -> "PageRecords":
        """Hashes every item of an API list page in one native call, without building dicts."""
        return PageRecords(self._native.hash_page(body, items_key=items_key, id_field=id_field,
                                                  modified_field=modified_field), body)

    def hash_pages(self, bodies: Sequence[bytes | bytearray | memoryview], *, items_key: str = "items",
                   id_field: str = "item_id",
                   modified_field: str = "last_modified_time") -> list["PageRecords"]:
        """hash_page for many pages in one native call: the GIL is released once for all of them
        and two threads share the work. Raises for the first page (in order) that fails."""
        bodies = list(bodies)
        raws = self._native.hash_pages(bodies, items_key=items_key, id_field=id_field,
                                       modified_field=modified_field)
        return [PageRecords(raw, body) for raw, body in zip(raws, bodies)]


class PageRecords:
    """The records of one page: ids as written, last_modified_time, digests, and where each item
    sits in the body, so only the items that must be synced ever become dicts. Each list is
    built from the native records on first use (a check needs none of them)."""

    def __init__(self, raw: Any, body: bytes | bytearray | memoryview) -> None:
        self._raw = raw
        self._body = body
        self.has_more_page: Optional[bool] = raw.has_more_page

    @cached_property
    def ids(self) -> list[str]:
        return list(self._raw.ids)

    @cached_property
    def last_modified_times(self) -> list[Optional[str]]:
        return list(self._raw.last_modified_times)

    @cached_property
    def digests(self) -> list[bytes]:
        return list(self._raw.digests)

    @cached_property
    def spans(self) -> list[tuple[int, int]]:
        return list(self._raw.spans)

    @cached_property
    def errors(self) -> list[Optional[tuple[int, str, str]]]:
        """Per item: None, or (status, status_name, message) when the item could not be hashed."""
        return list(self._raw.errors)

    def __len__(self) -> int:
        return len(self._raw)

    def item_bytes(self, index: int) -> bytes:
        offset, length = self.spans[index]
        return bytes(self._body[offset:offset + length])

    @property
    def native(self) -> Any:
        return self._raw


def _names(option: str, value: str | Sequence[str]) -> list[str]:
    # A bare str is one name: list("/a") would silently make it the pointers "/" and "a".
    if isinstance(value, str):
        return [value]
    names = list(value)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{option} must be a str or a sequence of str, not a sequence holding "
                            f"{type(name).__name__}")
    return names


_default_hashers: dict[str, Hasher] = {}


def default_hasher(scheme: str = "legacy") -> Hasher:
    """A shared Hasher per scheme with default options."""
    h = _default_hashers.get(scheme)
    if h is None:
        h = _default_hashers[scheme] = Hasher(scheme)
    return h


def hash_entity(data: Hashable, scheme: str = "legacy") -> str:
    """The hex digest the cache stores for an entity."""
    return default_hasher(scheme).hexdigest(data)


def canonical_json(data: Hashable, scheme: str = "legacy") -> bytes:
    """The canonical JSON bytes that are hashed."""
    return default_hasher(scheme).canonical(data)
