"""Zoho entity kinds and the values a sync passes around: EntityType (where each kind lives in the
Zoho APIs, its id field and its cache name), SyncMode, SyncConfig and SyncResult.
Pure data, no I/O: the HTTP client, the database and the orchestrator live next door.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any


class ZohoApi(str, enum.Enum):
    """Which Zoho product serves a list endpoint (each has its own base URL)."""

    BOOKS = "books"
    INVENTORY = "inventory"


@dataclass(frozen=True)
class EntitySpec:
    """Where one entity kind lives: `GET {base(api)}/{path}` answers `{list_key: [...]}`."""

    api: ZohoApi
    path: str
    list_key: str
    id_field: str
    cache_type: str
    table: str
    # The human-facing column the database keeps next to the JSON (item name, invoice number...).
    name_field: str
    report_name: str


_ITEMS_BOOKS = EntitySpec(ZohoApi.BOOKS, "items", "items", "item_id", "product", "items", "name", "Items")
_ITEMS_INVENTORY = EntitySpec(
    ZohoApi.INVENTORY, "items", "items", "item_id", "product", "items", "name", "Items"
)
_CONTACTS_BOOKS = EntitySpec(
    ZohoApi.BOOKS, "contacts", "contacts", "contact_id", "customer", "contacts", "contact_name", "Contacts"
)
_CONTACTS_INVENTORY = EntitySpec(
    ZohoApi.INVENTORY, "contacts", "contacts", "contact_id", "customer", "contacts", "contact_name", "Contacts"
)
_INVOICES = EntitySpec(
    ZohoApi.BOOKS, "invoices", "invoices", "invoice_id", "invoice", "invoices", "invoice_number", "Invoices"
)
_SALESORDERS_INVENTORY = EntitySpec(
    ZohoApi.INVENTORY, "salesorders", "salesorders", "salesorder_id", "order", "salesorders",
    "salesorder_number", "Sales Orders",
)
_SALESORDERS_BOOKS = EntitySpec(
    ZohoApi.BOOKS, "salesorders", "salesorders", "salesorder_id", "order", "salesorders",
    "salesorder_number", "Sales Orders",
)
_BILLS = EntitySpec(ZohoApi.BOOKS, "bills", "bills", "bill_id", "bill", "bills", "bill_number", "Bills")
_PURCHASEORDERS = EntitySpec(
    ZohoApi.BOOKS, "purchaseorders", "purchaseorders", "purchaseorder_id", "purchaseorder",
    "purchaseorders", "purchaseorder_number", "Purchase Orders",
)


class EntityType(str, enum.Enum):
    """An entity kind as the sync API names it (`POST /api/zoho/bulk-sync/{value}`).

    Pairs such as PRODUCTS/INVENTORY reach the same records through Books and Inventory; they share
    one cache type and one table, so a product synced through either path is the same entity.
    """

    PRODUCTS = "products"
    INVENTORY = "inventory"
    CUSTOMERS = "customers"
    CONTACTS = "contacts"
    INVOICES = "invoices"
    ORDERS = "orders"
    SALESORDERS = "salesorders"
    BILLS = "bills"
    PURCHASEORDERS = "purchaseorders"

    @property
    def spec(self) -> EntitySpec:
        return _SPECS[self]

    @property
    def api(self) -> ZohoApi:
        return _SPECS[self].api

    @property
    def path(self) -> str:
        return _SPECS[self].path

    @property
    def list_key(self) -> str:
        return _SPECS[self].list_key

    @property
    def id_field(self) -> str:
        return _SPECS[self].id_field

    @property
    def cache_type(self) -> str:
        return _SPECS[self].cache_type

    @property
    def table(self) -> str:
        return _SPECS[self].table


_SPECS: dict[EntityType, EntitySpec] = {
    EntityType.PRODUCTS: _ITEMS_BOOKS,
    EntityType.INVENTORY: _ITEMS_INVENTORY,
    EntityType.CUSTOMERS: _CONTACTS_BOOKS,
    EntityType.CONTACTS: _CONTACTS_INVENTORY,
    EntityType.INVOICES: _INVOICES,
    EntityType.ORDERS: _SALESORDERS_INVENTORY,
    EntityType.SALESORDERS: _SALESORDERS_BOOKS,
    EntityType.BILLS: _BILLS,
    EntityType.PURCHASEORDERS: _PURCHASEORDERS,
}

# The first EntityType per cache type / table wins, so "product" and "items" resolve to PRODUCTS.
_BY_ALIAS: dict[str, EntityType] = {}
for _member in EntityType:
    _BY_ALIAS.setdefault(_member.cache_type, _member)
    _BY_ALIAS.setdefault(_member.table, _member)


def resolve_entity_type(name: EntityType | str) -> EntityType:
    """Accept an EntityType, its value ("products"), a cache type ("product") or a table ("items").

    Raises ValueError naming the accepted spellings, so a typo in a CLI argument reads clearly.
    """
    if isinstance(name, EntityType):
        return name
    key = name.strip().lower()
    try:
        return EntityType(key)
    except ValueError:
        pass
    if key in _BY_ALIAS:
        return _BY_ALIAS[key]
    accepted = sorted({m.value for m in EntityType} | set(_BY_ALIAS))
    raise ValueError(f"unknown entity type {name!r}; expected one of: {', '.join(accepted)}")


class SyncMode(str, enum.Enum):
    """FULL lists every record. INCREMENTAL is accepted for API compatibility and lists every record
    too: the digest cache, not a modified-since filter, decides what is written, because a
    modified-since filter misses edits that Zoho does not stamp (a skip we must never risk)."""

    FULL = "full"
    INCREMENTAL = "incremental"


@dataclass
class SyncConfig:
    entity_type: EntityType
    mode: SyncMode = SyncMode.FULL
    # 200 is Zoho's largest per_page, so one page is one batch by default.
    batch_size: int = 200
    max_concurrent: int = 10
    enable_validation: bool = True
    enable_transformation: bool = True
    # Write every entity even if the cache says it is unchanged (the cached orchestrator reads it).
    force: bool = False

    def __post_init__(self) -> None:
        self.entity_type = resolve_entity_type(self.entity_type)
        self.mode = SyncMode(self.mode)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SyncResult:
    """What one sync run did. Counts are per entity; a malformed page whose entities could not be
    counted appears in `errors` (with its page number) and in `failed_pages`, never in the skips."""

    entity_type: EntityType
    sync_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    total_processed: int = 0
    total_success: int = 0
    total_failed: int = 0
    total_skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime = field(default_factory=_utc_now)
    finished_at: datetime | None = None
    duration_s: float = 0.0
    db_writes: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    failed_pages: list[int] = field(default_factory=list)
    # False when the listing stopped early (API error after retries, too many malformed pages):
    # entities on pages never fetched were neither synced nor skipped, so the caller must re-run.
    complete: bool = True

    def count_reason(self, reason: str, n: int = 1) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + n

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["entity_type"] = self.entity_type.value
        out["started_at"] = self.started_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return out
