"""Content digests from Python: canonical JSON of dicts (or of raw JSON bytes) and its SHA-256.

A thin typed layer over the native Hasher. Objects are walked natively, without json.dumps;
bytes (an httpx response body, a memoryview) are parsed natively with the GIL released.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from ._loader import native

#: Data a Hasher accepts: a JSON-like Python value, or raw JSON bytes.
Hashable = Any


class Hasher:
    """Canonicalizes and hashes entities in one scheme.

    scheme: "legacy" (byte-for-byte the production Python service's json.dumps form, so its
    Redis entries keep matching) or "jcs" (RFC 8785). Thread safe; reuse one per scheme.
    """

    def __init__(self, scheme: str = "legacy", *, strict: bool = False,
                 exclude_fields: Optional[Sequence[str]] = None,
                 exclude_pointers: Sequence[str] = (), max_depth: int = 512) -> None:
        self._native = native().Hasher(
            scheme, strict=strict,
            exclude_fields=None if exclude_fields is None else list(exclude_fields),
            exclude_pointers=list(exclude_pointers), max_depth=max_depth)

    @property
    def scheme(self) -> str:
        return str(self._native.scheme)

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


class PageRecords:
    """The records of one page: ids as written, last_modified_time, digests, and where each item
    sits in the body, so only the items that must be synced ever become dicts."""

    def __init__(self, raw: Any, body: bytes | bytearray | memoryview) -> None:
        self._raw = raw
        self._body = body
        self.ids: list[str] = raw.ids
        self.last_modified_times: list[Optional[str]] = raw.last_modified_times
        self.digests: list[bytes] = raw.digests
        self.spans: list[tuple[int, int]] = raw.spans
        #: Per item: None, or (status, status_name, message) when the item could not be hashed.
        self.errors: list[Optional[tuple[int, str, str]]] = raw.errors
        self.has_more_page: Optional[bool] = raw.has_more_page

    def __len__(self) -> int:
        return len(self.ids)

    def item_bytes(self, index: int) -> bytes:
        offset, length = self.spans[index]
        return bytes(self._body[offset:offset + length])

    @property
    def native(self) -> Any:
        return self._raw


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
