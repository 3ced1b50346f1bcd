"""CachedZohoSyncOrchestrator: the reference Zoho orchestrator with the digest cache in front.

Pages go to the native hasher as raw bytes (the mixin's _process_page); entities whose digest
and timestamp are unchanged are never parsed into dicts, validated or written.
"""

from __future__ import annotations

from ..orchestrator import CachedSyncMixin
from .orchestrator import ZohoSyncOrchestrator


class CachedZohoSyncOrchestrator(CachedSyncMixin, ZohoSyncOrchestrator):
    """cached_orchestrator(ZohoSyncOrchestrator), spelled as a class so it can be imported."""


__all__ = ["CachedZohoSyncOrchestrator"]
