"""A pure-Python reimplementation of the production service that tdscache replaces, for tests:
its hash (the exact algorithm), its Redis key and value format, and its one-GET-per-entity
check. Tests use it to prove compatibility both ways and as the oracle for the legacy scheme.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional

EXCLUDE = {'zoho_synced_at', 'created_at', 'updated_at', 'last_sync_attempt', 'sync_count',
           'cached_at', 'zoho_raw_data'}
PREFIX = "tds:entity:state"


def legacy_hash(data: dict[str, Any]) -> str:
    normalized: dict[str, Any] = {}
    for key, value in sorted(data.items()):
        if key not in EXCLUDE:
            if isinstance(value, Decimal):
                normalized[key] = str(value)
            elif isinstance(value, datetime):
                normalized[key] = value.isoformat()
            elif value is not None:
                normalized[key] = value
    content = json.dumps(normalized, sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()


def state_key(entity_type: str, entity_id: str) -> str:
    return f"{PREFIX}:{entity_type}:{entity_id}"


class LegacyService:
    """The old service's behaviour over a redis-py client (synchronous here)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def should_sync_entity(self, entity_type: str, entity_id: str, new_data: dict[str, Any],
                           force: bool = False) -> tuple[bool, str]:
        if force:
            return True, "forced_sync"
        raw = self.redis.get(state_key(entity_type, entity_id))
        if raw is None:
            return True, "no_cache_entry"
        state = json.loads(raw)
        if state["content_hash"] != legacy_hash(new_data):
            return True, "content_changed"
        new_time = new_data.get("last_modified_time")
        if new_time and state.get("last_modified_time") and new_time > state["last_modified_time"]:
            return True, "timestamp_newer"  # the string comparison the old service did
        return False, "unchanged"

    def mark_entity_synced(self, entity_type: str, entity_id: str, entity_data: dict[str, Any],
                           local_id: Optional[str] = None) -> bool:
        key = state_key(entity_type, entity_id)
        raw = self.redis.get(key)
        count = json.loads(raw).get("sync_count", 0) if raw else 0
        value = {
            "entity_type": entity_type,
            "entity_id": entity_id,
            "local_id": local_id,
            "content_hash": legacy_hash(entity_data),
            "last_modified_time": entity_data.get("last_modified_time"),
            "cached_at": datetime.utcnow().isoformat(),
            "sync_count": count + 1,
        }
        self.redis.set(key, json.dumps(value), ex=86400)
        return True
