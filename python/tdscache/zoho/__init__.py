"""The Zoho side of a sync: entity types and results, the async API client, the target database and
the reference (uncached) orchestrator. Importable without the native tdscache module; the cached
orchestrator that adds the digest cache lives with the native facade.
"""

from .client import (
    RawPage,
    UnifiedZohoClient,
    ZohoAPIError,
    ZohoAuthError,
    ZohoClientConfig,
    ZohoError,
    ZohoMalformedPageError,
    parse_page_records,
    read_has_more,
)
from .db import SyncDatabase, StoredRecord, WarmRow, normalize_database_url
from .orchestrator import EntityOutcome, EventBus, ZohoSyncOrchestrator
from .types import EntitySpec, EntityType, SyncConfig, SyncMode, SyncResult, ZohoApi, resolve_entity_type

__all__ = [
    "EntityOutcome",
    "EntitySpec",
    "EntityType",
    "EventBus",
    "RawPage",
    "StoredRecord",
    "SyncConfig",
    "SyncDatabase",
    "SyncMode",
    "SyncResult",
    "UnifiedZohoClient",
    "WarmRow",
    "ZohoAPIError",
    "ZohoApi",
    "ZohoAuthError",
    "ZohoClientConfig",
    "ZohoError",
    "ZohoMalformedPageError",
    "ZohoSyncOrchestrator",
    "normalize_database_url",
    "parse_page_records",
    "read_has_more",
    "resolve_entity_type",
]
