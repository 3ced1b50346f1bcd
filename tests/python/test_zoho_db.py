"""SyncDatabase: the upsert keeps local ids stable, counts its writes, keeps 19-digit ids exact, and
gives rows back for checks and cache warming; on SQLite always, on PostgreSQL when one is reachable
(DATABASE_URL, else 127.0.0.1:5432) in a throwaway schema.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from tdscache.zoho import EntityType, SyncDatabase, normalize_database_url

BIG_ID = 2646610000000113574  # above 2**53: exactness matters


def item(item_id: int, name: str, rate: float, modified: str = "2025-11-13T08:30:00+0300") -> dict[str, Any]:
    return {"item_id": item_id, "name": name, "rate": rate, "status": "active",
            "locations": [{"location_id": BIG_ID + 1, "location_stock_on_hand": 4.0}],
            "last_modified_time": modified}


async def check_upsert_contract(db: SyncDatabase) -> None:
    """The behaviour both dialects must share."""
    first = await db.upsert(EntityType.PRODUCTS, str(BIG_ID), item(BIG_ID, "زيت زيتون Olive Oil 1L", 12.5))
    other = await db.upsert(EntityType.PRODUCTS, str(BIG_ID + 7), item(BIG_ID + 7, "Sugar", 3.0))
    again = await db.upsert(EntityType.PRODUCTS, str(BIG_ID),
                            item(BIG_ID, "زيت زيتون Olive Oil 1L", 13.75, "2025-11-14T09:00:00+0300"))
    assert first == again != other
    assert await db.count(EntityType.PRODUCTS) == 2
    assert db.write_count == 3 and db.writes_by_table["items"] == 3
    rows = await db.fetch_all(EntityType.PRODUCTS)
    assert [r.local_id for r in rows] == [first, other]
    assert rows[0].data == item(BIG_ID, "زيت زيتون Olive Oil 1L", 13.75, "2025-11-14T09:00:00+0300")
    assert rows[0].data["item_id"] == BIG_ID and rows[0].data["locations"][0]["location_id"] == BIG_ID + 1
    assert rows[0].name == "زيت زيتون Olive Oil 1L" and rows[0].status == "active"
    assert rows[0].zoho_last_modified_time == "2025-11-14T09:00:00+0300"
    assert rows[0].zoho_id == str(BIG_ID)


async def test_upsert_returns_a_stable_local_id_and_updates_the_row(sqlite_db: SyncDatabase) -> None:
    await check_upsert_contract(sqlite_db)


async def test_entity_types_sharing_a_table_share_rows(sqlite_db: SyncDatabase) -> None:
    via_books = await sqlite_db.upsert(EntityType.PRODUCTS, "1", item(1, "a", 1.0))
    via_inventory = await sqlite_db.upsert(EntityType.INVENTORY, "1", item(1, "a", 2.0))
    via_alias = await sqlite_db.upsert("product", "1", item(1, "a", 3.0))
    assert via_books == via_inventory == via_alias
    assert await sqlite_db.count("items") == 1
    assert await sqlite_db.count(EntityType.CUSTOMERS) == 0


async def test_name_column_follows_each_entitys_name_field(sqlite_db: SyncDatabase) -> None:
    await sqlite_db.upsert(EntityType.CUSTOMERS, "5", {"contact_id": 5, "contact_name": "شركة النور Al Noor"})
    await sqlite_db.upsert(EntityType.INVOICES, "6", {"invoice_id": 6, "invoice_number": "INV-000006"})
    assert (await sqlite_db.get(EntityType.CONTACTS, "5")).name == "شركة النور Al Noor"  # type: ignore[union-attr]
    assert (await sqlite_db.get(EntityType.INVOICES, "6")).name == "INV-000006"  # type: ignore[union-attr]
    assert await sqlite_db.get(EntityType.INVOICES, "7") is None


async def test_upsert_many_returns_ids_in_input_order_and_counts_each_row(sqlite_db: SyncDatabase) -> None:
    ids = await sqlite_db.upsert_many(EntityType.ORDERS, [(str(i), {"salesorder_id": i}) for i in (30, 10, 20)])
    rows = {r.zoho_id: r.local_id for r in await sqlite_db.fetch_all(EntityType.SALESORDERS)}
    assert ids == [rows["30"], rows["10"], rows["20"]]
    assert sqlite_db.write_count == 3 and sqlite_db.writes_by_table["salesorders"] == 3


async def test_concurrent_upserts_on_sqlite_do_not_hit_database_is_locked(sqlite_db: SyncDatabase) -> None:
    ids = await asyncio.gather(*(sqlite_db.upsert(EntityType.PRODUCTS, str(i), item(i, f"n{i}", 1.0))
                                 for i in range(60)))
    assert len(set(ids)) == 60
    assert await sqlite_db.count(EntityType.PRODUCTS) == 60


async def test_rows_for_warm_return_the_zoho_record_without_transform_keys(sqlite_db: SyncDatabase) -> None:
    record = item(BIG_ID, "Tea", 9.0)
    local_id = await sqlite_db.upsert(EntityType.PRODUCTS, str(BIG_ID),
                                      {**record, "zoho_synced_at": "2025-11-13T05:30:00+00:00"})
    [row] = await sqlite_db.rows_for_warm(EntityType.PRODUCTS)
    assert (row.zoho_id, row.local_id, row.data, row.last_modified_time) == (
        str(BIG_ID), local_id, record, "2025-11-13T08:30:00+0300")


async def test_truncate_empties_a_table(sqlite_db: SyncDatabase) -> None:
    await sqlite_db.upsert(EntityType.PRODUCTS, "1", item(1, "a", 1.0))
    await sqlite_db.upsert(EntityType.BILLS, "2", {"bill_id": 2})
    await sqlite_db.truncate(EntityType.PRODUCTS)
    assert await sqlite_db.count(EntityType.PRODUCTS) == 0 and await sqlite_db.count(EntityType.BILLS) == 1
    await sqlite_db.truncate()
    assert await sqlite_db.count(EntityType.BILLS) == 0


async def test_data_survives_reopening_the_sqlite_file(tmp_path: Path) -> None:
    async with SyncDatabase(sqlite_path=tmp_path / "a.db") as db:
        local_id = await db.upsert(EntityType.PRODUCTS, str(BIG_ID), item(BIG_ID, "x", 1.0))
    async with SyncDatabase(sqlite_path=tmp_path / "a.db") as db:
        assert (await db.get(EntityType.PRODUCTS, str(BIG_ID))).local_id == local_id  # type: ignore[union-attr]


async def test_in_memory_sqlite_keeps_one_database_across_calls() -> None:
    async with SyncDatabase(sqlite_path=":memory:") as db:
        await db.upsert(EntityType.PRODUCTS, "1", item(1, "a", 1.0))
        assert await db.count(EntityType.PRODUCTS) == 1


async def test_upsert_rejects_an_empty_zoho_id(sqlite_db: SyncDatabase) -> None:
    with pytest.raises(ValueError, match="empty zoho_id"):
        await sqlite_db.upsert(EntityType.PRODUCTS, " ", item(1, "a", 1.0))
    assert sqlite_db.write_count == 0


def test_database_urls_get_async_drivers() -> None:
    assert normalize_database_url("postgresql://u:p@h:5432/db") == "postgresql+asyncpg://u:p@h:5432/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_database_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_database_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"


def test_from_env_picks_postgres_when_database_url_is_set(tmp_path: Path) -> None:
    db = SyncDatabase.from_env(environ={"DATABASE_URL": "postgresql://u@127.0.0.1:1/db"})
    assert db.dialect == "postgresql" and db.url.startswith("postgresql+asyncpg://")
    db = SyncDatabase.from_env(environ={"TDSCACHE_SQLITE_PATH": str(tmp_path / "t.db")})
    assert db.dialect == "sqlite" and db.url.endswith("/t.db")


def test_unsupported_databases_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        SyncDatabase("mysql+aiomysql://u@h/db")
    with pytest.raises(ValueError, match="unknown entity type 'widgets'"):
        SyncDatabase(sqlite_path=":memory:").table("widgets")


# -- PostgreSQL ------------------------------------------------------------------------------------

_DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _postgres_url_or_skip() -> str:
    url = os.environ.get("DATABASE_URL") or ""
    if not url:
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        except OSError as exc:
            pytest.skip(f"no PostgreSQL: DATABASE_URL is unset and 127.0.0.1:5432 refuses connections ({exc})")
        url = _DEFAULT_PG
    return url


@pytest.fixture
async def postgres_db() -> AsyncIterator[SyncDatabase]:
    url = _postgres_url_or_skip()
    schema = f"tdscache_test_{uuid.uuid4().hex[:12]}"
    db = SyncDatabase(url, schema=schema)
    try:
        await db.create_all()
    except Exception as exc:  # reachable but unusable (auth, missing database...)
        await db.aclose()
        source = "DATABASE_URL" if os.environ.get("DATABASE_URL") else _DEFAULT_PG
        pytest.skip(f"PostgreSQL at {source} is not usable: {exc!r}")
    try:
        yield db
    finally:
        from sqlalchemy import text

        async with db._engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await db.aclose()


async def test_postgres_upsert_keeps_the_same_contract(postgres_db: SyncDatabase) -> None:
    assert postgres_db.dialect == "postgresql"
    await check_upsert_contract(postgres_db)
    [row] = [r for r in await postgres_db.rows_for_warm(EntityType.PRODUCTS) if r.zoho_id == str(BIG_ID)]
    assert row.data["item_id"] == BIG_ID
