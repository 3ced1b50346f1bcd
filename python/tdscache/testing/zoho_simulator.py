"""A Zoho Books + Zoho Inventory look-alike for tests and the demo: the OAuth token endpoint, the list
endpoints (deterministic, realistic records served as fixed JSON bytes) and fault injection.
It is an ASGI app (Starlette) plus the ZohoSimulator state object behind it; no network, no disk.
Control endpoints live under /__sim/ and are not Zoho's.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tdscache.zoho.client import ZohoClientConfig

# Riyadh time: the org the data imitates keeps its timestamps in +0300, as Zoho prints them.
_ORG_TZ = timezone(timedelta(hours=3))
_EPOCH_START = datetime(2023, 1, 1, 9, 0, 0, tzinfo=_ORG_TZ)
# "Now" for generated data; mutations stamp later minutes so a bump is always newer than any record.
_DATA_NOW = datetime(2025, 11, 13, 8, 30, 0, tzinfo=_ORG_TZ)
# Zoho ids are 19 digits; the first six imitate an org prefix (2646610000000113574).
_ID_BASE = 2_646_610_000_000_000_000
MAX_PER_PAGE = 200

DEFAULT_CLIENT_ID = "1000.SIMCLIENTID"
DEFAULT_CLIENT_SECRET = "sim-client-secret"
DEFAULT_REFRESH_TOKEN = "1000.sim-refresh-token"
DEFAULT_ORGANIZATION_ID = "10234695"


@dataclass
class SimulatorConfig:
    seed: int = 42
    item_count: int = 1312
    contact_count: int = 2503
    invoice_count: int = 300
    salesorder_count: int = 200
    bill_count: int = 100
    purchaseorder_count: int = 100
    token_lifetime_s: float = 3600.0
    # Zoho's documented limit is 100 API calls per minute per organization; 0 turns limiting off.
    rate_limit_per_minute: int = 100
    # Length of the rate-limit window; tests shrink it so a 429's Retry-After is short.
    rate_limit_window_s: float = 60.0
    latency_ms: float = 0.0
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    refresh_token: str = DEFAULT_REFRESH_TOKEN
    # None accepts any non-empty organization_id.
    organization_id: str | None = DEFAULT_ORGANIZATION_ID
    api_domain: str = "https://www.zohoapis.com"
    # Token expiry and rate windows read this clock, so tests can move time without sleeping.
    clock: Callable[[], float] = time.monotonic


# dataset key -> (id field, report name). The dataset key is also the response's list key.
DATASETS: dict[str, tuple[str, str]] = {
    "items": ("item_id", "Items"),
    "contacts": ("contact_id", "Contacts"),
    "invoices": ("invoice_id", "Invoices"),
    "salesorders": ("salesorder_id", "Sales Orders"),
    "bills": ("bill_id", "Bills"),
    "purchaseorders": ("purchaseorder_id", "Purchase Orders"),
}
# The field a mutation changes, one numeric field per kind (rate for items: a price change).
_MUTATED_FIELD = {
    "items": "rate",
    "contacts": "outstanding_receivable_amount",
    "invoices": "balance",
    "salesorders": "total",
    "bills": "balance",
    "purchaseorders": "total",
}
_API_PREFIXES = ("/books/v3", "/inventory/v1")


def _encode(value: Any) -> bytes:
    # Compact and UTF-8 (Arabic stays unescaped), as Zoho serves it; key order is insertion order.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _zoho_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


# --------------------------------------------------------------------------------------------------
# Deterministic record generation. Everything draws from one random.Random seeded by (seed, kind), so
# the same config always yields byte-identical pages.

_PRODUCTS = [
    ("زيت زيتون", "Olive Oil", "Oils"), ("أرز بسمتي", "Basmati Rice", "Grains"),
    ("سكر أبيض", "White Sugar", "Baking"), ("حليب طازج", "Fresh Milk", "Dairy"),
    ("شاي أخضر", "Green Tea", "Beverages"), ("قهوة عربية", "Arabic Coffee", "Beverages"),
    ("تمر مجدول", "Medjool Dates", "Dates"), ("عسل سدر", "Sidr Honey", "Honey"),
    ("طحينة", "Tahini", "Spreads"), ("حمص حب", "Chickpeas", "Grains"), ("عدس أحمر", "Red Lentils", "Grains"),
    ("دقيق", "Flour", "Baking"), ("جبنة بيضاء", "White Cheese", "Dairy"), ("لبنة", "Labneh", "Dairy"),
    ("زعتر", "Zaatar", "Spices"), ("هيل", "Cardamom", "Spices"), ("زعفران", "Saffron", "Spices"),
    ("معكرونة", "Pasta", "Grains"), ("صابون زيت الزيتون", "Olive Oil Soap", "Household"),
    ("ماء معدني", "Mineral Water", "Beverages"), ("سمن بلدي", "Ghee", "Oils"), ("برغل", "Bulgur", "Grains"),
]
_SIZES = ["1L", "500ml", "2L", "5L", "1kg", "5kg", "250g", "500g", "12 pcs", "24 pcs"]
# Checked in order: "kg" must win over "g".
_UNITS = (("kg", "kg"), ("ml", "ml"), ("L", "ltr"), ("g", "g"), ("pcs", "pcs"))
_BRANDS = ["Al Safi", "Almarai", "Nadec", "Al Walimah", "Abu Kass", "Puck", "Al Baik Foods", None]
_LOCATIONS = [("Riyadh Warehouse", "مستودع الرياض"), ("Jeddah Store", "متجر جدة"), ("Dammam Hub", "مركز الدمام")]
_FIRST = [("Ahmed", "أحمد"), ("Fatima", "فاطمة"), ("Omar", "عمر"), ("Layla", "ليلى"), ("Khalid", "خالد"),
          ("Noura", "نورة"), ("Yousef", "يوسف"), ("Sara", "سارة"), ("Hassan", "حسن"), ("Mariam", "مريم")]
_LAST = [("Al-Harbi", "الحربي"), ("Al-Otaibi", "العتيبي"), ("Haddad", "حداد"), ("Al-Qahtani", "القحطاني"),
         ("Nasser", "ناصر"), ("Al-Shamsi", "الشامسي"), ("Khoury", "خوري"), ("Al-Mutairi", "المطيري")]
_COMPANY_WORDS = [("النور", "Al Noor"), ("الأمل", "Al Amal"), ("الفجر", "Al Fajr"), ("الخليج", "Gulf"),
                  ("الواحة", "Oasis"), ("السلام", "Al Salam"), ("المستقبل", "Future"), ("البركة", "Al Baraka")]
_COMPANY_KINDS = [("للتجارة", "Trading Co."), ("للمواد الغذائية", "Foodstuff LLC"), ("القابضة", "Holding"),
                  ("للتوزيع", "Distribution")]
_CITIES = [("Riyadh", "Riyadh Province", "Saudi Arabia", "+966"), ("Jeddah", "Makkah Province", "Saudi Arabia", "+966"),
           ("Dubai", "Dubai", "United Arab Emirates", "+971"), ("Kuwait City", "Al Asimah", "Kuwait", "+965"),
           ("Doha", "Doha", "Qatar", "+974"), ("Amman", "Amman", "Jordan", "+962")]
_CURRENCIES = [("SAR", "2646610000000000097"), ("AED", "2646610000000000099"), ("USD", "2646610000000000101")]


class _Ids:
    """Increasing 19-digit ids with Zoho-like gaps; each kind has its own range."""

    def __init__(self, rng: random.Random, kind_index: int) -> None:
        self._rng = rng
        self.last = _ID_BASE + 100_000 + kind_index * 10_000_000

    def next(self) -> int:
        self.last += self._rng.randint(1, 97)
        return self.last


def _timeline(rng: random.Random, index: int, count: int) -> tuple[datetime, datetime]:
    """created ascending with the index (the list sort order), last_modified between it and 'now'."""
    span = (_DATA_NOW - _EPOCH_START).total_seconds() - 86_400
    slot = span / max(count, 1)
    created = _EPOCH_START + timedelta(seconds=int(index * slot + rng.random() * slot * 0.9))
    if rng.random() < 0.3:
        return created, created
    room = min((_DATA_NOW - created).total_seconds(), 120 * 86_400)
    return created, created + timedelta(seconds=int(rng.random() * room))


def _money(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 2)


def _custom_field(cf_id: int, index: int, label: str, data_type: str, value: Any) -> dict[str, Any]:
    return {
        "customfield_id": str(_ID_BASE + 90_000 + cf_id),
        "show_on_pdf": False,
        "value": value,
        "label": label,
        "data_type": data_type,
        "api_name": "cf_" + label.lower().replace(" ", "_").replace("(", "").replace(")", ""),
        "index": index,
        "is_active": True,
    }


def _make_item(rng: random.Random, ids: _Ids, index: int, count: int) -> dict[str, Any]:
    ar, en, category = rng.choice(_PRODUCTS)
    size = rng.choice(_SIZES)
    style = rng.random()
    name = f"{ar} {en} {size}" if style < 0.7 else (f"{en} {size}" if style < 0.85 else f"{ar} {size}")
    sku = f"{en[:3].upper()}-{index + 1:05d}"
    rate = _money(rng, 2, 450)
    if rng.random() < 0.15:
        rate = float(int(rate))  # whole prices arrive as 25.0: canonical forms must keep them stable
    created, modified = _timeline(rng, index, count)
    locations: list[dict[str, Any]] = []
    for loc_index in range(rng.randint(1, 3)):
        loc_en, loc_ar = _LOCATIONS[loc_index]
        on_hand = float(rng.randint(0, 400))
        committed = float(rng.randint(0, int(on_hand) // 4)) if on_hand else 0.0
        locations.append({
            "location_id": _ID_BASE + 70_000 + loc_index,
            "location_name": loc_en if rng.random() < 0.8 else loc_ar,
            "status": "active",
            "is_primary": loc_index == 0,
            "location_stock_on_hand": on_hand,
            "location_available_stock": on_hand - committed,
            "location_actual_available_stock": on_hand - committed,
        })
    on_hand = sum(loc["location_stock_on_hand"] for loc in locations)
    available = sum(loc["location_available_stock"] for loc in locations)
    taxable = rng.random() < 0.85
    brand = rng.choice(_BRANDS)
    return {
        "item_id": ids.next(),
        "name": name,
        "item_name": name,
        "unit": next(unit for suffix, unit in _UNITS if size.endswith(suffix)),
        "status": "active" if rng.random() < 0.93 else "inactive",
        "source": "user",
        "is_linked_with_zohocrm": False,
        "zcrm_product_id": "",
        "description": f"{en} — {ar}, {size}" if rng.random() < 0.6 else "",
        "brand": brand,
        "manufacturer": None if brand is None else f"{brand} Industries",
        "category_id": str(_ID_BASE + 60_000 + _PRODUCTS.index((ar, en, category))),
        "category_name": category,
        "rate": rate,
        "tax_id": str(_ID_BASE + 50_015) if taxable else "",
        "tax_name": "VAT 15%" if taxable else "",
        "tax_percentage": 15 if taxable else 0,
        "purchase_account_id": str(_ID_BASE + 40_001),
        "purchase_account_name": "Cost of Goods Sold",
        "account_id": str(_ID_BASE + 40_002),
        "account_name": "Sales",
        "purchase_description": "",
        "purchase_rate": round(rate * rng.uniform(0.55, 0.85), 2),
        "item_type": "inventory",
        "product_type": "goods",
        "is_taxable": taxable,
        "tax_exemption_id": "" if taxable else str(_ID_BASE + 50_900),
        "stock_on_hand": on_hand,
        "available_stock": available,
        "actual_available_stock": available,
        "has_attachment": False,
        "sku": sku,
        "upc": None if rng.random() < 0.5 else str(rng.randint(10**11, 10**12 - 1)),
        "ean": "" if rng.random() < 0.6 else "628" + str(rng.randint(10**9, 10**10 - 1)),
        "isbn": "",
        "part_number": "",
        "reorder_level": rng.choice(["", 10, 25, 50]),
        "image_id": "",
        "image_name": "",
        "locations": locations,
        "custom_fields": [
            _custom_field(1, 0, "Origin Country", "string", rng.choice(["Saudi Arabia", "Turkey", "Spain", "India"])),
            _custom_field(2, 1, "Shelf Life (days)", "number", rng.choice([90, 180, 365, 730])),
            _custom_field(3, 2, "Halal Certified", "check_box", rng.random() < 0.9),
            _custom_field(4, 3, "Notes", "string", None if rng.random() < 0.7 else "يحفظ في مكان بارد"),
        ],
        "created_time": _zoho_time(created),
        "last_modified_time": _zoho_time(modified),
    }


def _address(rng: random.Random, attention: str) -> dict[str, Any]:
    city, state, country, dial = rng.choice(_CITIES)
    return {
        "attention": attention,
        "address": f"{rng.randint(1, 9999)} King Fahd Road",
        "street2": "" if rng.random() < 0.6 else f"Building {rng.randint(1, 80)}",
        "city": city,
        "state": state,
        "zip": str(rng.randint(10000, 99999)),
        "country": country,
        "phone": f"{dial} {rng.randint(10_000_000, 99_999_999)}",
        "fax": "",
    }


def _make_contact(rng: random.Random, ids: _Ids, index: int, count: int) -> dict[str, Any]:
    (first_en, first_ar), (last_en, last_ar) = rng.choice(_FIRST), rng.choice(_LAST)
    business = rng.random() < 0.7
    if business:
        (word_ar, word_en), (kind_ar, kind_en) = rng.choice(_COMPANY_WORDS), rng.choice(_COMPANY_KINDS)
        company = f"شركة {word_ar} {kind_ar} {word_en} {kind_en}"
        contact_name = company
    else:
        company = ""
        contact_name = f"{first_ar} {last_ar} {first_en} {last_en}"
    is_vendor = rng.random() < 0.12
    currency, currency_id = rng.choice(_CURRENCIES)
    created, modified = _timeline(rng, index, count)
    terms = rng.choice([0, 15, 30, 45])
    outstanding = 0.0 if rng.random() < 0.4 else _money(rng, 10, 25_000)
    billing = _address(rng, f"{first_en} {last_en}")
    return {
        "contact_id": ids.next(),
        "contact_name": contact_name,
        "customer_name": "" if is_vendor else contact_name,
        "vendor_name": contact_name if is_vendor else "",
        "company_name": company,
        "website": "" if not business else f"https://www.{last_en.lower().replace('-', '')}{index}.example.com",
        "language_code": rng.choice(["ar", "en"]),
        "contact_type": "vendor" if is_vendor else "customer",
        "customer_sub_type": "business" if business else "individual",
        "status": "active" if rng.random() < 0.95 else "inactive",
        "source": "user",
        "is_linked_with_zohocrm": False,
        "payment_terms": terms,
        "payment_terms_label": "Due on Receipt" if terms == 0 else f"Net {terms}",
        "currency_id": currency_id,
        "currency_code": currency,
        "outstanding_receivable_amount": outstanding,
        "outstanding_receivable_amount_bcy": outstanding,
        "unused_credits_receivable_amount": 0.0,
        "first_name": first_en,
        "last_name": last_en,
        "email": f"{first_en.lower()}.{last_en.lower()}{index}@example.com" if rng.random() < 0.9 else "",
        "phone": billing["phone"],
        "mobile": None if rng.random() < 0.5 else f"+966 5{rng.randint(10_000_000, 99_999_999)}",
        "portal_status": "disabled",
        "has_attachment": False,
        "tags": [],
        "billing_address": billing,
        "shipping_address": billing if rng.random() < 0.7 else _address(rng, contact_name),
        "custom_fields": [
            _custom_field(11, 0, "VAT Number", "string", "3" + str(rng.randint(10**13, 10**14 - 1)) if business else None),
            _custom_field(12, 1, "Credit Limit", "decimal", _money(rng, 1000, 100_000)),
        ],
        "created_time": _zoho_time(created),
        "last_modified_time": _zoho_time(modified),
    }


@dataclass(frozen=True)
class _DocumentKind:
    """What distinguishes invoices, sales orders, bills and purchase orders in the generator."""

    id_field: str
    number_field: str
    number_prefix: str
    party: str  # "customer" or "vendor"
    statuses: tuple[str, ...]
    second_date: str  # due_date, shipment_date, delivery_date
    has_balance: bool


_DOCUMENT_KINDS = {
    "invoices": _DocumentKind("invoice_id", "invoice_number", "INV-", "customer",
                              ("draft", "sent", "paid", "overdue", "partially_paid", "void"), "due_date", True),
    "salesorders": _DocumentKind("salesorder_id", "salesorder_number", "SO-", "customer",
                                 ("draft", "confirmed", "fulfilled", "closed", "void"), "shipment_date", False),
    "bills": _DocumentKind("bill_id", "bill_number", "BILL-", "vendor",
                           ("open", "paid", "overdue", "partially_paid", "void"), "due_date", True),
    "purchaseorders": _DocumentKind("purchaseorder_id", "purchaseorder_number", "PO-", "vendor",
                                    ("draft", "issued", "billed", "cancelled"), "delivery_date", False),
}


def _make_document(rng: random.Random, ids: _Ids, index: int, count: int, kind: _DocumentKind,
                   items: list[dict[str, Any]], parties: list[dict[str, Any]],
                   line_ids: _Ids) -> dict[str, Any]:
    party = rng.choice(parties)
    created, modified = _timeline(rng, index, count)
    line_items = []
    for _ in range(rng.randint(1, 5)):
        item = rng.choice(items)
        quantity = float(rng.randint(1, 40))
        rate = item["rate"] if kind.party == "customer" else item["purchase_rate"]
        line_items.append({
            "line_item_id": line_ids.next(),
            "item_id": str(item["item_id"]),
            "name": item["name"],
            "description": "",
            "sku": item["sku"],
            "quantity": quantity,
            "unit": item["unit"],
            "rate": rate,
            "discount": 0.0,
            "tax_id": item["tax_id"],
            "tax_name": item["tax_name"],
            "tax_percentage": item["tax_percentage"],
            "item_total": round(quantity * rate, 2),
        })
    sub_total = round(sum(li["item_total"] for li in line_items), 2)
    tax_total = round(sum(li["item_total"] * li["tax_percentage"] / 100 for li in line_items), 2)
    total = round(sub_total + tax_total, 2)
    status = rng.choice(kind.statuses)
    record: dict[str, Any] = {
        kind.id_field: ids.next(),
        kind.number_field: f"{kind.number_prefix}{index + 1:06d}",
        "reference_number": "" if rng.random() < 0.5 else f"REF-{rng.randint(1000, 9999)}",
        f"{kind.party}_id": str(party["contact_id"]),
        f"{kind.party}_name": party["contact_name"],
        "status": status,
        "date": created.strftime("%Y-%m-%d"),
        kind.second_date: (created + timedelta(days=rng.choice([7, 15, 30]))).strftime("%Y-%m-%d"),
        "currency_code": party["currency_code"],
        "exchange_rate": 1.0,
        "sub_total": sub_total,
        "tax_total": tax_total,
        "total": total,
    }
    if kind.has_balance:
        record["balance"] = 0.0 if status in ("paid", "void") else total
    record.update({
        "line_items": line_items,
        "notes": "" if rng.random() < 0.7 else "شكرا لتعاملكم معنا — Thank you for your business",
        "custom_fields": [],
        "created_time": _zoho_time(created),
        "last_modified_time": _zoho_time(modified),
    })
    return record


def _generate(config: SimulatorConfig) -> dict[str, list[dict[str, Any]]]:
    def rng_for(kind: str) -> random.Random:
        return random.Random(f"tdscache-sim:{config.seed}:{kind}")

    data: dict[str, list[dict[str, Any]]] = {}
    rng = rng_for("items")
    ids = _Ids(rng, 0)
    data["items"] = [_make_item(rng, ids, i, config.item_count) for i in range(config.item_count)]
    rng = rng_for("contacts")
    ids = _Ids(rng, 1)
    data["contacts"] = [_make_contact(rng, ids, i, config.contact_count) for i in range(config.contact_count)]
    # Documents reference items and contacts; an empty list would leave nothing to reference.
    items = data["items"] or [_make_item(rng_for("placeholder-item"), _Ids(rng, 9), 0, 1)]
    contacts = data["contacts"] or [_make_contact(rng_for("placeholder-contact"), _Ids(rng, 9), 0, 1)]
    vendors = [c for c in contacts if c["contact_type"] == "vendor"] or contacts
    counts = {"invoices": config.invoice_count, "salesorders": config.salesorder_count,
              "bills": config.bill_count, "purchaseorders": config.purchaseorder_count}
    for kind_index, (key, kind) in enumerate(_DOCUMENT_KINDS.items(), start=2):
        rng = rng_for(key)
        ids, line_ids = _Ids(rng, kind_index), _Ids(rng, kind_index + 50)
        parties = contacts if kind.party == "customer" else vendors
        data[key] = [_make_document(rng, ids, i, counts[key], kind, items, parties, line_ids)
                     for i in range(counts[key])]
    return data


# --------------------------------------------------------------------------------------------------
# Simulator state. All public methods take the lock: the HTTP server may run in another thread
# while a test drives mutations directly.


@dataclass
class _Dataset:
    """Records of one kind, kept as their served bytes; dicts are built only when a mutation needs
    them, so creating a simulator per test stays cheap."""

    key: str
    encoded: list[bytes]
    next_ids: _Ids
    _records: list[dict[str, Any]] | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            self._records = [json.loads(b) for b in self.encoded]
        return self._records

    def reencode(self, index: int) -> None:
        self.encoded[index] = _encode(self.records[index])


# Generation costs ~0.3 s; the bytes are immutable, so one copy per data config is shared.
_GENERATED: dict[tuple[int, ...], dict[str, tuple[bytes, ...]]] = {}


def _generated_bytes(config: SimulatorConfig) -> dict[str, tuple[bytes, ...]]:
    key = (config.seed, config.item_count, config.contact_count, config.invoice_count,
           config.salesorder_count, config.bill_count, config.purchaseorder_count)
    if key not in _GENERATED:
        _GENERATED[key] = {kind: tuple(_encode(r) for r in records)
                           for kind, records in _generate(config).items()}
    return _GENERATED[key]


@dataclass
class _FailRule:
    status: int
    remaining: int | None  # None: fail every time
    retry_after_s: int | None


@dataclass
class SimResponse:
    """A framework-free response, so the state logic is testable without HTTP."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse(status, _encode(payload), headers or {})


class SimulatorError(ValueError):
    """A control request the simulator cannot honour (unknown entity, bad fraction...)."""


class ZohoSimulator:
    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._lock = threading.RLock()
        self._tokens: dict[str, float] = {}
        self.reset()

    # -- state -------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Regenerate the data from the config and clear faults and counters. Issued tokens stay
        valid, so a client mid-session does not see a reset as an auth failure."""
        with self._lock:
            self._datasets: dict[str, _Dataset] = {}
            for key, encoded in _generated_bytes(self.config).items():
                # Ids stay increasing after the generated ones, as Zoho's do for new records.
                next_ids = _Ids(random.Random(f"tdscache-sim:{self.config.seed}:{key}:added"), 0)
                next_ids.last = json.loads(encoded[-1])[DATASETS[key][0]] if encoded else _ID_BASE
                self._datasets[key] = _Dataset(key, list(encoded), next_ids)
            self._minutes_after_now = 0
            self.latency_ms = self.config.latency_ms
            self.rate_limit_per_minute = self.config.rate_limit_per_minute
            self.rate_limit_window_s = self.config.rate_limit_window_s
            self.token_lifetime_s = self.config.token_lifetime_s
            self._malformed: dict[str, dict[int, str]] = {}
            self._failing: dict[str, dict[int, _FailRule]] = {}
            self._windows: dict[str, deque[float]] = {}
            self.stats: dict[str, int] = {
                "token_requests": 0, "tokens_issued": 0, "api_requests": 0, "unauthorized": 0,
                "rate_limited": 0, "failed_injected": 0, "malformed_served": 0,
            }

    def dataset(self, key: str) -> _Dataset:
        if key not in self._datasets:
            raise SimulatorError(f"unknown entity {key!r}; expected one of: {', '.join(DATASETS)}")
        return self._datasets[key]

    def records(self, key: str) -> list[dict[str, Any]]:
        """A deep copy of every record of a kind, in list order (what a full sync must store)."""
        with self._lock:
            return [json.loads(b) for b in self.dataset(key).encoded]

    def records_body(self, key: str) -> bytes:
        with self._lock:
            ds = self.dataset(key)
            return (b'{"entity":' + _encode(key) + b',"count":' + str(len(ds.encoded)).encode()
                    + b',"records":[' + b",".join(ds.encoded) + b"]}")

    # -- OAuth -------------------------------------------------------------------------------------

    def issue_token(self, params: dict[str, str]) -> SimResponse:
        with self._lock:
            self.stats["token_requests"] += 1
            if params.get("grant_type") != "refresh_token":
                return _json_response(400, {"error": "unsupported_grant_type"})
            if (params.get("client_id") != self.config.client_id
                    or params.get("client_secret") != self.config.client_secret):
                return _json_response(400, {"error": "invalid_client"})
            if params.get("refresh_token") != self.config.refresh_token:
                return _json_response(400, {"error": "invalid_code"})
            token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self._tokens[token] = self.config.clock() + self.token_lifetime_s
            self.stats["tokens_issued"] += 1
            return _json_response(200, {
                "access_token": token,
                "expires_in": int(self.token_lifetime_s),
                "api_domain": self.config.api_domain,
                "token_type": "Bearer",
            })

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _authorized(self, authorization: str | None) -> bool:
        prefix = "Zoho-oauthtoken "
        if not authorization or not authorization.startswith(prefix):
            return False
        expiry = self._tokens.get(authorization[len(prefix):].strip())
        return expiry is not None and self.config.clock() < expiry

    # -- list endpoints ----------------------------------------------------------------------------

    def _rate_limited(self, organization_id: str) -> float | None:
        """Sliding window per org; returns the seconds to wait when over the limit."""
        if self.rate_limit_per_minute <= 0:
            return None
        now = self.config.clock()
        window = self._windows.setdefault(organization_id, deque())
        while window and window[0] <= now - self.rate_limit_window_s:
            window.popleft()
        if len(window) >= self.rate_limit_per_minute:
            return window[0] + self.rate_limit_window_s - now
        window.append(now)
        return None

    def list_page(self, key: str, query: dict[str, str], authorization: str | None) -> SimResponse:
        with self._lock:
            self.stats["api_requests"] += 1
            if key not in self._datasets:
                return _json_response(404, {"code": 5, "message": "Invalid URL Passed"})
            if not self._authorized(authorization):
                self.stats["unauthorized"] += 1
                return _json_response(401, {"code": 57, "message": "You are not authorized to perform this operation"})
            org = query.get("organization_id", "")
            if not org or (self.config.organization_id is not None and org != self.config.organization_id):
                return _json_response(400, {"code": 2, "message": "Invalid value passed for organization_id"})
            wait = self._rate_limited(org)
            if wait is not None:
                self.stats["rate_limited"] += 1
                return _json_response(
                    429, {"code": 44, "message": "You have made too many requests. Please try again later."},
                    {"Retry-After": str(max(1, math.ceil(wait)))})
            try:
                page = int(query.get("page", "1"))
                per_page = int(query.get("per_page", str(MAX_PER_PAGE)))
            except ValueError:
                return _json_response(400, {"code": 2, "message": "Invalid value passed for page or per_page"})
            if page < 1 or per_page < 1:
                return _json_response(400, {"code": 2, "message": "Invalid value passed for page or per_page"})
            per_page = min(per_page, MAX_PER_PAGE)
            rule = self._failing.get(key, {}).get(page)
            if rule is not None and (rule.remaining is None or rule.remaining > 0):
                if rule.remaining is not None:
                    rule.remaining -= 1
                self.stats["failed_injected"] += 1
                headers = {"Retry-After": str(rule.retry_after_s)} if rule.retry_after_s is not None else {}
                return _json_response(rule.status, {"code": 1000, "message": "Internal error"}, headers)
            body = self._page_body(key, page, per_page)
            mode = self._malformed.get(key, {}).get(page)
            if mode is not None:
                self.stats["malformed_served"] += 1
                body = _break_body(body, mode)
            return SimResponse(200, body)

    def _page_body(self, key: str, page: int, per_page: int) -> bytes:
        ds = self._datasets[key]
        start = (page - 1) * per_page
        chunk = ds.encoded[start:start + per_page]
        context = {
            "page": page,
            "per_page": per_page,
            "has_more_page": start + per_page < len(ds.encoded),
            "report_name": DATASETS[key][1],
            "sort_column": "created_time",
            "sort_order": "A",
        }
        return (b'{"code":0,"message":"success","' + key.encode() + b'":[' + b",".join(chunk)
                + b'],"page_context":' + _encode(context) + b"}")

    # -- control -----------------------------------------------------------------------------------

    def mutate(self, entity: str, fraction: float | None = None, count: int | None = None,
               seed: int = 0, ids: list[int] | None = None, add: int = 0) -> dict[str, Any]:
        """Change one field of chosen records and bump their last_modified_time; optionally append
        `add` new records. Exactly round(fraction * N) records change when fraction is given."""
        with self._lock:
            ds = self.dataset(entity)
            id_field = DATASETS[entity][0]
            rng = random.Random(f"tdscache-sim:{self.config.seed}:mutate:{entity}:{seed}")
            total = len(ds.records)
            if ids is not None:
                by_id = {r[id_field]: i for i, r in enumerate(ds.records)}
                missing = [i for i in ids if i not in by_id]
                if missing:
                    raise SimulatorError(f"unknown {id_field} values: {missing[:5]}")
                chosen = sorted({by_id[i] for i in ids})
            else:
                if fraction is not None:
                    if not 0.0 <= fraction <= 1.0:
                        raise SimulatorError(f"fraction must be within [0, 1], got {fraction}")
                    count = round(fraction * total)
                count = count or 0
                if not 0 <= count <= total:
                    raise SimulatorError(f"count must be within [0, {total}], got {count}")
                chosen = sorted(rng.sample(range(total), count))
            self._minutes_after_now += 1
            stamp = _zoho_time(_DATA_NOW + timedelta(minutes=self._minutes_after_now))
            target = _MUTATED_FIELD[entity]
            for index in chosen:
                record = ds.records[index]
                old = float(record.get(target) or 0.0)
                delta = rng.randint(1, 2000) / 100
                record[target] = round(old + delta if old - delta <= 0 or rng.random() < 0.5 else old - delta, 2)
                record["last_modified_time"] = stamp
                ds.reencode(index)
            added = self._append_records(ds, add, rng, stamp) if add else []
            return {
                "entity": entity,
                "count": len(chosen),
                "changed_ids": [ds.records[i][id_field] for i in chosen],
                "added_ids": added,
                "last_modified_time": stamp,
            }

    def _append_records(self, ds: _Dataset, add: int, rng: random.Random, stamp: str) -> list[int]:
        if add < 0:
            raise SimulatorError(f"add must be >= 0, got {add}")
        id_field = DATASETS[ds.key][0]
        if not ds.encoded:
            raise SimulatorError(f"cannot add to {ds.key}: no record to model new ones on")
        templates = ds.records
        added = []
        for _ in range(add):
            # A copy of an existing record with a fresh id is realistic enough for "new entity" paths.
            record = json.loads(_encode(rng.choice(templates)))
            record[id_field] = ds.next_ids.next()
            record["created_time"] = record["last_modified_time"] = stamp
            ds.records.append(record)
            ds.encoded.append(_encode(record))
            added.append(record[id_field])
        return added

    def set_faults(self, spec: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if spec.get("clear"):
                self._malformed.clear()
                self._failing.clear()
            if "latency_ms" in spec:
                self.latency_ms = float(spec["latency_ms"])
            if "rate_limit_per_minute" in spec:
                self.rate_limit_per_minute = int(spec["rate_limit_per_minute"])
                self._windows.clear()
            if "rate_limit_window_s" in spec:
                self.rate_limit_window_s = float(spec["rate_limit_window_s"])
            if "token_lifetime_s" in spec:
                self.token_lifetime_s = float(spec["token_lifetime_s"])
            if spec.get("expire_tokens"):
                self._tokens.clear()
            for rule in _as_list(spec.get("malformed_pages")):
                key = str(rule.get("entity", ""))
                self.dataset(key)
                mode = str(rule.get("mode", "truncate"))
                if mode not in _BREAKERS:
                    raise SimulatorError(f"unknown malformed mode {mode!r}; expected one of: {', '.join(_BREAKERS)}")
                self._malformed[key] = {int(p): mode for p in rule.get("pages", [])}
            for rule in _as_list(spec.get("fail_pages")):
                key = str(rule.get("entity", ""))
                self.dataset(key)
                status = int(rule.get("status", 503))
                if not 500 <= status <= 599:
                    raise SimulatorError(f"fail_pages status must be 5xx, got {status}")
                times = rule.get("times")
                retry_after = rule.get("retry_after_s")
                self._failing[key] = {
                    int(p): _FailRule(status, None if times is None else int(times),
                                      None if retry_after is None else int(retry_after))
                    for p in rule.get("pages", [])
                }
            return self.faults()

    def stats_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.stats)

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "rate_limit_per_minute": self.rate_limit_per_minute,
                "rate_limit_window_s": self.rate_limit_window_s,
                "token_lifetime_s": self.token_lifetime_s,
                "malformed_pages": {k: {str(p): m for p, m in v.items()} for k, v in self._malformed.items()},
                "fail_pages": {k: {str(p): {"status": r.status, "remaining": r.remaining}
                                   for p, r in v.items()} for k, v in self._failing.items()},
            }


def _as_list(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise SimulatorError("expected an object or a list of objects")


def _truncate(body: bytes) -> bytes:
    return body[: len(body) // 2]


def _corrupt_middle(body: bytes) -> bytes:
    # The tail (and page_context) stays intact, so only a parser that reads the whole body notices.
    middle = len(body) // 2
    return body[:middle] + b"\x00}{garbage" + body[middle:]


_BREAKERS: dict[str, Callable[[bytes], bytes]] = {"truncate": _truncate, "corrupt_middle": _corrupt_middle}


def _break_body(body: bytes, mode: str) -> bytes:
    return _BREAKERS[mode](body)


# --------------------------------------------------------------------------------------------------
# ASGI wiring: thin handlers over ZohoSimulator.


def _to_response(sim_response: SimResponse) -> Response:
    return Response(sim_response.body, status_code=sim_response.status, headers=sim_response.headers,
                    media_type="application/json;charset=UTF-8")


async def _read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise SimulatorError("control requests take a JSON object")
    return value


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    """The ASGI app. `app.state.simulator` is the ZohoSimulator, for in-process control."""
    sim = ZohoSimulator(config)

    async def token(request: Request) -> Response:
        params = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        # Zoho documents the parameters in the query string; accept both, the form body wins.
        merged = {**dict(request.query_params), **params}
        return _to_response(sim.issue_token(merged))

    async def list_endpoint(request: Request) -> Response:
        if sim.latency_ms > 0:
            await asyncio.sleep(sim.latency_ms / 1000)
        return _to_response(sim.list_page(request.path_params["entity"], dict(request.query_params),
                                          request.headers.get("authorization")))

    async def control_error(exc: Exception) -> Response:
        return _to_response(_json_response(400, {"error": str(exc)}))

    async def mutate(request: Request) -> Response:
        try:
            spec = await _read_json(request)
            result = sim.mutate(str(spec.get("entity", "")), fraction=spec.get("fraction"),
                                count=spec.get("count"), seed=int(spec.get("seed", 0)),
                                ids=spec.get("ids"), add=int(spec.get("add", 0)))
        except (SimulatorError, ValueError, TypeError) as exc:
            return await control_error(exc)
        return _to_response(_json_response(200, result))

    async def faults(request: Request) -> Response:
        try:
            return _to_response(_json_response(200, sim.set_faults(await _read_json(request))))
        except (SimulatorError, ValueError, TypeError) as exc:
            return await control_error(exc)

    async def records(request: Request) -> Response:
        try:
            return Response(sim.records_body(request.path_params["entity"]), media_type="application/json")
        except SimulatorError as exc:
            return _to_response(_json_response(404, {"error": str(exc)}))

    async def reset(request: Request) -> Response:
        sim.reset()
        return _to_response(_json_response(200, {"reset": True}))

    async def stats(request: Request) -> Response:
        return _to_response(_json_response(200, sim.stats_snapshot()))

    routes = [Route("/oauth/v2/token", token, methods=["POST"])]
    routes += [Route(prefix + "/{entity}", list_endpoint, methods=["GET"]) for prefix in _API_PREFIXES]
    routes += [
        Route("/__sim/mutate", mutate, methods=["POST"]),
        Route("/__sim/faults", faults, methods=["POST", "GET"]),
        Route("/__sim/records/{entity}", records, methods=["GET"]),
        Route("/__sim/reset", reset, methods=["POST"]),
        Route("/__sim/stats", stats, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = sim
    return app


def get_simulator(app: Starlette) -> ZohoSimulator:
    sim = app.state.simulator
    assert isinstance(sim, ZohoSimulator)
    return sim


def client_config_for(base_url: str, config: SimulatorConfig | None = None,
                      **overrides: Any) -> ZohoClientConfig:
    """A ZohoClientConfig pointing every URL (accounts, Books, Inventory) at a simulator served at
    base_url, with the simulator's credentials."""
    sim = config or SimulatorConfig()
    base = base_url.rstrip("/")
    values: dict[str, Any] = {
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "refresh_token": sim.refresh_token,
        "organization_id": sim.organization_id or DEFAULT_ORGANIZATION_ID,
        "accounts_url": base,
        "books_base_url": base + "/books/v3",
        "inventory_base_url": base + "/inventory/v1",
    }
    values.update(overrides)
    return ZohoClientConfig(**values)
