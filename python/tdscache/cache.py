"""The cache client for Python: Cache (blocking) and AsyncCache (asyncio).

Every call is one native batch: a check is one pipelined round of MGETs, a commit one pipeline
of atomic scripts. The native code releases the GIL for all Redis I/O; AsyncCache runs it in a
worker thread, so the event loop never blocks. Checks fail open: when Redis misbehaves the
entities come back as cache_check_error, which means sync.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ._loader import native
from .hashing import Hasher, PageRecords, default_hasher

DEFAULT_REDIS_URL = "redis://localhost:6379/0"

#: The id field of each legacy entity type; anything else uses "id".
ID_FIELDS: dict[str, str] = {
    "product": "item_id",
    "customer": "contact_id",
    "invoice": "invoice_id",
    "order": "salesorder_id",
    "bill": "bill_id",
    "creditnote": "creditnote_id",
    "purchaseorder": "purchaseorder_id",
}


def id_field_for(entity_type: str) -> str:
    return ID_FIELDS.get(entity_type, "id")


def redis_url_from_env() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


@dataclass
class CheckReport:
    """The decisions of one check, in input order. Pass it to Cache.commit() so each commit is
    conditional on what this check saw."""

    batch: Any
    reasons: list[str]
    sync: list[bool]
    to_sync: int
    skipped: int
    cache_errors: int
    by_reason: dict[str, int]
    #: (status, message) when some lookups failed (those entities are cache_check_error).
    error: Optional[tuple[int, str]]

    @classmethod
    def from_native(cls, batch: Any) -> "CheckReport":
        return cls(batch=batch, reasons=list(batch.reasons),
                   sync=list(batch.sync_flags), to_sync=int(batch.to_sync), skipped=int(batch.skipped),
                   cache_errors=int(batch.cache_errors), by_reason=dict(batch.by_reason),
                   error=batch.error)

    def __len__(self) -> int:
        return len(self.reasons)

    @property
    def ids(self) -> list[str]:
        return list(self.batch.ids)

    @property
    def total(self) -> int:
        return len(self.reasons)

    def indices_to_sync(self) -> list[int]:
        return [i for i, s in enumerate(self.sync) if s]


@dataclass
class CommitReport:
    outcomes: list[str]  # "written", "conflict" or "error", per item
    written: int
    conflicts: int
    errors: int
    sync_counts: list[int] = field(default_factory=list)
    error: Optional[tuple[int, str]] = None

    @classmethod
    def from_native(cls, d: Mapping[str, Any]) -> "CommitReport":
        return cls(outcomes=list(d["outcomes"]), written=int(d["written"]), conflicts=int(d["conflicts"]),
                   errors=int(d["errors"]), sync_counts=list(d["sync_counts"]), error=d["error"])


@dataclass
class PageCheck:
    """A page hashed natively and checked in one go."""

    records: PageRecords
    report: CheckReport

    def indices_to_sync(self) -> list[int]:
        return self.report.indices_to_sync()


class Cache:
    """A blocking cache client. Thread safe: share one per process.

    url: redis://[user[:password]@]host[:port][/db], rediss://... (TLS),
    unix:///path/to.sock[?db=N], or redis+cluster://host:port[,host:port...].
    Defaults to $REDIS_URL, then redis://localhost:6379/0. Options (key_prefix, ttl_seconds,
    max_age_seconds, mget_chunk, connect_timeout_ms, command_timeout_ms, breaker_failures,
    breaker_cooldown_ms, username, password, db, tls_* ...) override the URL.
    Creating a Cache does not need Redis to be up: checks then fail open.
    """

    def __init__(self, url: Optional[str] = None, *, scheme: str = "legacy", **options: Any) -> None:
        self.url = url or redis_url_from_env()
        self.scheme = scheme
        self.hasher: Hasher = default_hasher(scheme)
        self._client = native().Client(self.url, **options)

    # ---- checks ----------------------------------------------------------------------------

    def check(self, entity_type: str, ids: Sequence[Any], digests: Sequence[bytes],
              last_modified: Optional[Sequence[Optional[str]]] = None, *,
              force: bool | Sequence[bool] = False) -> CheckReport:
        batch = self._client.check(entity_type, list(ids), list(digests),
                                   None if last_modified is None else list(last_modified),
                                   scheme=self.scheme, force=force)
        return CheckReport.from_native(batch)

    def check_entities(self, entity_type: str, entities: Sequence[Mapping[str, Any]], *,
                       id_field: Optional[str] = None, modified_field: str = "last_modified_time",
                       force: bool = False) -> CheckReport:
        """Digests each dict (natively) and checks them all in one batch."""
        batch = self._client.check_entities(entity_type, self.hasher.native, entities,
                                            id_field=id_field or id_field_for(entity_type),
                                            modified_field=modified_field, force=force)
        return CheckReport.from_native(batch)

    def _check_entities_reference(self, entity_type: str, entities: Sequence[Mapping[str, Any]], *,
                                  id_field: Optional[str] = None, modified_field: str = "last_modified_time",
                                  force: bool = False) -> CheckReport:
        """check_entities() step by step through the facade: the slow path the tests hold the
        native one-call path to (same ids, digests, last-modified values and decisions)."""
        field_name = id_field or id_field_for(entity_type)
        ids = [_entity_id(e, field_name) for e in entities]
        modified = [_text_or_none(e.get(modified_field)) for e in entities]
        digests = self.hasher.digest_many(entities)
        return self.check(entity_type, ids, digests, modified, force=force)

    def check_page(self, entity_type: str, body: bytes | bytearray | memoryview, *,
                   items_key: str = "items", id_field: Optional[str] = None,
                   modified_field: str = "last_modified_time", force: bool = False) -> PageCheck:
        """Hashes a raw API page and checks its items: no dict is built for any item."""
        records = self.hasher.hash_page(body, items_key=items_key, id_field=id_field or id_field_for(entity_type),
                                        modified_field=modified_field)
        batch = self._client.check_page(entity_type, records.native, scheme=self.scheme, force=force)
        return PageCheck(records=records, report=CheckReport.from_native(batch))

    def check_pages(self, entity_type: str, bodies: Sequence[bytes | bytearray | memoryview], *,
                    items_key: str = "items", id_field: Optional[str] = None,
                    modified_field: str = "last_modified_time", force: bool = False) -> list[PageCheck]:
        """check_page for many raw pages at once: all are hashed in one native call (the GIL
        released, two threads) and all their items checked in one batch. One PageCheck per
        page, in order, each committed like check_page's."""
        bodies = list(bodies)
        records = self.hasher.hash_pages(bodies, items_key=items_key, id_field=id_field or id_field_for(entity_type),
                                         modified_field=modified_field)
        batches = self._client.check_pages(entity_type, [r.native for r in records], scheme=self.scheme, force=force)
        return [PageCheck(records=r, report=CheckReport.from_native(b)) for r, b in zip(records, batches)]

    # ---- commits ---------------------------------------------------------------------------

    def commit(self, report: CheckReport, indices: Sequence[int],
               local_ids: Optional[Sequence[Optional[str]]] = None) -> CommitReport:
        """Records the entities at `indices` of a check as synced, with the digests that check
        was given. A state that moved since the check is retracted instead (the next check syncs)."""
        return CommitReport.from_native(self._client.commit_checked(
            report.batch, list(indices), None if local_ids is None else list(local_ids)))

    def commit_unconditional(self, entity_type: str, ids: Sequence[Any], digests: Sequence[bytes],
                             last_modified: Optional[Sequence[Optional[str]]] = None,
                             local_ids: Optional[Sequence[Optional[str]]] = None) -> CommitReport:
        """Writes states without a prior check (the legacy mark_entity_synced)."""
        return self._write(entity_type, ids, digests, last_modified, local_ids, warm=False)

    def warm(self, entity_type: str, ids: Sequence[Any], digests: Sequence[bytes],
             last_modified: Optional[Sequence[Optional[str]]] = None,
             local_ids: Optional[Sequence[Optional[str]]] = None) -> CommitReport:
        """Bulk-writes states for rows already in the database."""
        return self._write(entity_type, ids, digests, last_modified, local_ids, warm=True)

    def _write(self, entity_type: str, ids: Sequence[Any], digests: Sequence[bytes],
               last_modified: Optional[Sequence[Optional[str]]], local_ids: Optional[Sequence[Optional[str]]],
               *, warm: bool) -> CommitReport:
        return CommitReport.from_native(self._client.commit(
            entity_type, list(ids), list(digests), None if last_modified is None else list(last_modified),
            None if local_ids is None else list(local_ids), scheme=self.scheme, warm=warm))

    # ---- other operations ------------------------------------------------------------------

    def get_state(self, entity_type: str, entity_id: Any) -> Optional[dict[str, Any]]:
        state = self._client.get_state(entity_type, str(entity_id))
        return None if state is None else dict(state)

    def invalidate(self, entity_type: str, entity_id: Any = None) -> int:
        return int(self._client.invalidate(entity_type, None if entity_id is None else str(entity_id)))

    def count_states(self) -> dict[str, int]:
        """Stored states per entity type, by SCAN over every node (never KEYS). It reads every
        key name: a diagnostic whose cost grows with the cache, not something to call per sync."""
        return dict(self._client.count_states())

    def mark_batch_complete(self, entity_type: str, batch_id: str, stats: Mapping[str, Any]) -> None:
        self._client.mark_batch_complete(entity_type, batch_id, json.dumps(dict(stats), default=str))

    def was_batch_synced_recently(self, entity_type: str, window_seconds: int) -> bool:
        return bool(self._client.was_batch_synced_recently(entity_type, window_seconds))

    def ping(self) -> None:
        self._client.ping()

    def stats(self) -> dict[str, Any]:
        return dict(self._client.stats())

    def reset_stats(self) -> None:
        self._client.reset_stats()

    def config(self) -> dict[str, Any]:
        return dict(self._client.config())


class AsyncCache:
    """The asyncio face of Cache: the same calls, each run in a worker thread with the GIL
    released inside, so a 100,000-entity check never stalls the event loop."""

    def __init__(self, url: Optional[str] = None, *, scheme: str = "legacy", **options: Any) -> None:
        self.sync = Cache(url, scheme=scheme, **options)

    @property
    def hasher(self) -> Hasher:
        return self.sync.hasher

    @property
    def scheme(self) -> str:
        return self.sync.scheme

    async def check(self, entity_type: str, ids: Sequence[Any], digests: Sequence[bytes],
                    last_modified: Optional[Sequence[Optional[str]]] = None, *,
                    force: bool | Sequence[bool] = False) -> CheckReport:
        return await asyncio.to_thread(self.sync.check, entity_type, ids, digests, last_modified, force=force)

    async def check_entities(self, entity_type: str, entities: Sequence[Mapping[str, Any]], *,
                             id_field: Optional[str] = None, modified_field: str = "last_modified_time",
                             force: bool = False) -> CheckReport:
        return await asyncio.to_thread(self.sync.check_entities, entity_type, entities, id_field=id_field,
                                       modified_field=modified_field, force=force)

    async def check_page(self, entity_type: str, body: bytes | bytearray | memoryview, *,
                         items_key: str = "items", id_field: Optional[str] = None,
                         modified_field: str = "last_modified_time", force: bool = False) -> PageCheck:
        return await asyncio.to_thread(self.sync.check_page, entity_type, body, items_key=items_key,
                                       id_field=id_field, modified_field=modified_field, force=force)

    async def check_pages(self, entity_type: str, bodies: Sequence[bytes | bytearray | memoryview], *,
                          items_key: str = "items", id_field: Optional[str] = None,
                          modified_field: str = "last_modified_time", force: bool = False) -> list[PageCheck]:
        return await asyncio.to_thread(self.sync.check_pages, entity_type, bodies, items_key=items_key,
                                       id_field=id_field, modified_field=modified_field, force=force)

    async def commit(self, report: CheckReport, indices: Sequence[int],
                     local_ids: Optional[Sequence[Optional[str]]] = None) -> CommitReport:
        return await asyncio.to_thread(self.sync.commit, report, indices, local_ids)

    async def commit_unconditional(self, entity_type: str, ids: Sequence[Any], digests: Sequence[bytes],
                                   last_modified: Optional[Sequence[Optional[str]]] = None,
                                   local_ids: Optional[Sequence[Optional[str]]] = None) -> CommitReport:
        return await asyncio.to_thread(self.sync.commit_unconditional, entity_type, ids, digests,
                                       last_modified, local_ids)

    async def warm(self, entity_type: str, ids: Sequence[Any], digests: Sequence[bytes],
                   last_modified: Optional[Sequence[Optional[str]]] = None,
                   local_ids: Optional[Sequence[Optional[str]]] = None) -> CommitReport:
        return await asyncio.to_thread(self.sync.warm, entity_type, ids, digests, last_modified, local_ids)

    async def get_state(self, entity_type: str, entity_id: Any) -> Optional[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.get_state, entity_type, entity_id)

    async def invalidate(self, entity_type: str, entity_id: Any = None) -> int:
        return await asyncio.to_thread(self.sync.invalidate, entity_type, entity_id)

    async def count_states(self) -> dict[str, int]:
        return await asyncio.to_thread(self.sync.count_states)

    async def mark_batch_complete(self, entity_type: str, batch_id: str, stats: Mapping[str, Any]) -> None:
        await asyncio.to_thread(self.sync.mark_batch_complete, entity_type, batch_id, stats)

    async def was_batch_synced_recently(self, entity_type: str, window_seconds: int) -> bool:
        return await asyncio.to_thread(self.sync.was_batch_synced_recently, entity_type, window_seconds)

    async def ping(self) -> None:
        await asyncio.to_thread(self.sync.ping)

    def stats(self) -> dict[str, Any]:
        return self.sync.stats()

    def reset_stats(self) -> None:
        self.sync.reset_stats()


def _entity_id(entity: Mapping[str, Any], field_name: str) -> str:
    value = entity.get(field_name)
    if value is None or isinstance(value, bool):
        return ""
    return str(value)


def _text_or_none(value: Any) -> Optional[str]:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)
