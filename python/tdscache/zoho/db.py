"""The sync target database (SQLAlchemy 2 async): one table per Zoho entity kind, an upsert keyed by
the Zoho id that returns the local id the cache remembers, and reads for checks and cache warming.
SQLite through aiosqlite by default, PostgreSQL through asyncpg when DATABASE_URL says so.
No Zoho or cache logic here: callers hand in records and get ids back.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from sqlalchemy import (JSON, Column, DateTime, Integer, MetaData, String, Table, Text, event, func, select,
                        text)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from .types import EntityType, resolve_entity_type

DEFAULT_SQLITE_PATH = "tdscache_zoho.db"
TABLES = ("items", "contacts", "invoices", "salesorders", "bills", "purchaseorders")
# Keys the orchestrator's transformation adds to a Zoho record; rows_for_warm removes them so a
# digest computed from the database equals the digest of the record Zoho served.
TRANSFORM_KEYS = ("zoho_synced_at",)


def normalize_database_url(url: str) -> str:
    """Pick the async driver: postgresql:// and postgres:// become postgresql+asyncpg://,
    sqlite:// becomes sqlite+aiosqlite://. URLs that already name a driver pass through."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://"):]
    return url


def sqlite_url(path: str | os.PathLike[str]) -> str:
    if str(path) == ":memory:":
        return "sqlite+aiosqlite:///:memory:"
    return "sqlite+aiosqlite:///" + str(Path(path).resolve())


@dataclass(frozen=True)
class StoredRecord:
    local_id: str
    zoho_id: str
    name: str | None
    status: str | None
    data: dict[str, Any]
    zoho_last_modified_time: str | None
    synced_at: datetime


@dataclass(frozen=True)
class WarmRow:
    """What cache warming needs per entity: the record as Zoho served it and where it is stored."""

    zoho_id: str
    local_id: str
    data: dict[str, Any]
    last_modified_time: str | None


def _define_tables(metadata: MetaData) -> dict[str, Table]:
    tables = {}
    for name in TABLES:
        tables[name] = Table(
            name, metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("zoho_id", String(64), nullable=False, unique=True),
            Column("name", Text),
            Column("status", String(64)),
            # Plain JSON, not JSONB: JSONB reorders keys and drops duplicates, and warming the cache
            # from the database wants the record back as close to Zoho's text as possible.
            Column("data", JSON, nullable=False),
            # Kept as Zoho's text ("2025-11-13T08:30:00+0300"): parsing belongs to the cache's rules.
            Column("zoho_last_modified_time", String(64)),
            Column("synced_at", DateTime(timezone=True), nullable=False),
        )
    return tables


def _stored(row: Any) -> StoredRecord:
    return StoredRecord(str(row.id), row.zoho_id, row.name, row.status, row.data,
                        row.zoho_last_modified_time, row.synced_at)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


class SyncDatabase:
    """An async engine plus the entity tables. Safe to share between tasks of one event loop; on
    SQLite, writes are serialized in-process because SQLite allows one writer at a time."""

    def __init__(self, url: str | None = None, *, sqlite_path: str | os.PathLike[str] | None = None,
                 schema: str | None = None, echo: bool = False) -> None:
        if url is not None and sqlite_path is not None:
            raise ValueError("pass either url or sqlite_path, not both")
        self.url = normalize_database_url(url) if url else sqlite_url(sqlite_path or DEFAULT_SQLITE_PATH)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r}: use SQLite or PostgreSQL")
        if schema is not None and self.dialect != "postgresql":
            raise ValueError("schema is only supported on PostgreSQL")
        self.schema = schema
        self._engine = self._create_engine(parsed.database, echo)
        self._metadata = MetaData(schema=schema)
        self._tables = _define_tables(self._metadata)
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None
        self.write_count = 0
        self.writes_by_table: dict[str, int] = {name: 0 for name in TABLES}

    @classmethod
    def from_env(cls, *, sqlite_path: str | os.PathLike[str] | None = None,
                 environ: Mapping[str, str] | None = None) -> SyncDatabase:
        """PostgreSQL when DATABASE_URL is set, else SQLite at sqlite_path (or TDSCACHE_SQLITE_PATH,
        or ./tdscache_zoho.db)."""
        env = os.environ if environ is None else environ
        if env.get("DATABASE_URL"):
            return cls(env["DATABASE_URL"])
        return cls(sqlite_path=sqlite_path or env.get("TDSCACHE_SQLITE_PATH") or DEFAULT_SQLITE_PATH)

    def _create_engine(self, database: str | None, echo: bool) -> AsyncEngine:
        if self.dialect != "sqlite":
            return create_async_engine(self.url, echo=echo, pool_pre_ping=True)
        in_memory = database in (None, "", ":memory:")
        # An in-memory database lives in one connection, so every session must share it.
        engine = create_async_engine(self.url, echo=echo, connect_args={"timeout": 30},
                                     **({"poolclass": StaticPool} if in_memory else {}))

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if not in_memory:
                # WAL + NORMAL: commits stop fsyncing, which turns ~5 ms per upsert into ~0.1 ms.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine

    async def aclose(self) -> None:
        await self._engine.dispose()

    async def __aenter__(self) -> SyncDatabase:
        await self.create_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def create_all(self) -> None:
        async with self._schema_lock:
            if self._schema_ready:
                return
            async with self._engine.begin() as conn:
                if self.schema is not None:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                await conn.run_sync(self._metadata.create_all)
            self._schema_ready = True

    def table(self, entity_type: EntityType | str) -> Table:
        return self._tables[resolve_entity_type(entity_type).table]

    # -- writes ------------------------------------------------------------------------------------

    def _row_values(self, entity: EntityType, zoho_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
        if not str(zoho_id).strip():
            raise ValueError(f"{entity.value}: empty zoho_id")
        return {
            "zoho_id": str(zoho_id),
            "name": _text_or_none(record.get(entity.spec.name_field)),
            "status": _text_or_none(record.get("status")),
            "data": dict(record),
            "zoho_last_modified_time": _text_or_none(record.get("last_modified_time")),
            "synced_at": datetime.now(timezone.utc),
        }

    async def _upsert_rows(self, conn: AsyncConnection, table: Table,
                           rows: Sequence[dict[str, Any]]) -> list[str]:
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        local_ids = []
        for values in rows:
            stmt = insert(table).values(**values)
            upsert = stmt.on_conflict_do_update(
                index_elements=[table.c.zoho_id],
                set_={key: stmt.excluded[key] for key in values if key != "zoho_id"},
            ).returning(table.c.id)
            local_ids.append(str((await conn.execute(upsert)).scalar_one()))
        return local_ids

    async def upsert(self, entity_type: EntityType | str, zoho_id: str, record: Mapping[str, Any]) -> str:
        """Insert or update by Zoho id; returns the row's local id, which stays the same on update."""
        return (await self.upsert_many(entity_type, [(zoho_id, record)]))[0]

    async def upsert_many(self, entity_type: EntityType | str,
                          rows: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
        """Upsert several records in one transaction; local ids in input order."""
        entity = resolve_entity_type(entity_type)
        values = [self._row_values(entity, zoho_id, record) for zoho_id, record in rows]
        if not values:
            return []
        await self.create_all()
        table = self._tables[entity.table]
        if self._write_lock is None:
            local_ids = await self._upsert_in_transaction(table, values)
        else:
            async with self._write_lock:
                local_ids = await self._upsert_in_transaction(table, values)
        self.write_count += len(local_ids)
        self.writes_by_table[entity.table] += len(local_ids)
        return local_ids

    async def _upsert_in_transaction(self, table: Table, values: Sequence[dict[str, Any]]) -> list[str]:
        async with self._engine.begin() as conn:
            return await self._upsert_rows(conn, table, values)

    async def truncate(self, entity_type: EntityType | str | None = None) -> None:
        """Delete every row of one entity table (or of all of them)."""
        await self.create_all()
        tables = [self.table(entity_type)] if entity_type is not None else list(self._tables.values())
        async with self._engine.begin() as conn:
            for table in tables:
                await conn.execute(table.delete())

    # -- reads -------------------------------------------------------------------------------------

    async def count(self, entity_type: EntityType | str) -> int:
        await self.create_all()
        table = self.table(entity_type)
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())

    async def fetch_all(self, entity_type: EntityType | str) -> list[StoredRecord]:
        await self.create_all()
        table = self.table(entity_type)
        async with self._engine.connect() as conn:
            result = await conn.execute(select(table).order_by(table.c.id))
            return [_stored(row) for row in result]

    async def get(self, entity_type: EntityType | str, zoho_id: str) -> StoredRecord | None:
        await self.create_all()
        table = self.table(entity_type)
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.zoho_id == str(zoho_id)))).first()
        return None if row is None else _stored(row)

    async def rows_for_warm(self, entity_type: EntityType | str) -> list[WarmRow]:
        """Every stored entity with its local id and the record minus TRANSFORM_KEYS."""
        return [
            WarmRow(r.zoho_id, r.local_id,
                    {k: v for k, v in r.data.items() if k not in TRANSFORM_KEYS},
                    r.zoho_last_modified_time)
            for r in await self.fetch_all(entity_type)
        ]
