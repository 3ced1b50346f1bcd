"""tdscache.fastapi: the HTTP face of the cached Zoho sync. `router` serves the bulk-sync endpoint
and the cache operations (stats, inspect, invalidate); create_app() / configure_router() wire it.
No sync or cache logic lives here: the orchestrator decides and writes, this module maps HTTP onto
it and maps cache trouble onto answers that never fail a sync.

    from tdscache.fastapi import router, configure_router
    app.include_router(router)
    configure_router(app, orchestrator=my_cached_orchestrator)   # or nothing: built from the env

Status codes. POST /bulk-sync answers 200 when the listing was read to its end and 502 (same
body, "complete": false) when Zoho stopped answering part way; a cache outage is never an error
there, it only turns skips into syncs. GET /cache/stats always answers 200, with
"redis": {"available": false, "error": ...} when Redis is down. Inspect and invalidate answer 503
with an "error" field when Redis cannot be used, because their whole job is a Redis operation
and the caller must know it did not happen; inspect answers 404 when no state is cached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ._errors import CacheUnavailableError, Error
from .cache import AsyncCache
from .orchestrator import CachedSyncMixin, cache_type_of
from .service import redact_url, get_cache as process_cache
from .zoho.types import SyncConfig, SyncResult, resolve_entity_type

# A response carries at most this many error entries; the rest are counted, and all are logged
# by the orchestrator, so one bad run cannot produce a multi-megabyte answer.
MAX_REPORTED_ERRORS = 50


class BulkSyncRequest(BaseModel):
    """The optional body of POST /api/zoho/bulk-sync/{entity}."""

    model_config = ConfigDict(extra="forbid")

    batch_size: Optional[int] = Field(None, ge=1, description="Entities per database batch (default 200).")
    force: bool = Field(False, description="Write every entity even when its cached state says unchanged.")


class BulkSyncResponse(BaseModel):
    synced: int
    skipped: int
    failed: int
    duration_s: float
    reasons: dict[str, int]
    entity_type: str
    sync_id: str
    # False when the listing stopped early: entities on unread pages were neither synced nor skipped.
    complete: bool
    db_writes: int
    # Pages that could not be read; how many entities they held is unknown.
    failed_pages: list[int]
    errors: list[dict[str, Any]]
    errors_omitted: int


@dataclass
class RouterBackend:
    """What the router works with, kept on app.state.tdscache. Anything left None is built on first
    use: the cache from REDIS_URL (tdscache.configure/get_cache), the Zoho client from the ZOHO_*
    variables, the database from DATABASE_URL (else SQLite), the orchestrator from those three."""

    orchestrator: Any = None
    cache: Optional[AsyncCache] = None
    zoho_client: Any = None
    database: Any = None


def configure_router(app: FastAPI, *, orchestrator: Any = None, cache: Optional[AsyncCache] = None,
                     zoho_client: Any = None, database: Any = None) -> RouterBackend:
    """Gives an app's router its orchestrator (a CachedSyncMixin host, e.g.
    CachedZohoSyncOrchestrator), or the pieces to build one. Without a cache, the orchestrator's
    own cache serves the cache endpoints."""
    backend = RouterBackend(orchestrator=orchestrator, cache=cache, zoho_client=zoho_client, database=database)
    app.state.tdscache = backend
    return backend


def create_app(*, orchestrator: Any = None, cache: Optional[AsyncCache] = None, zoho_client: Any = None,
               database: Any = None, title: str = "tdscache") -> FastAPI:
    """A FastAPI app serving `router`, configured as configure_router() describes."""
    app = FastAPI(title=title)
    app.include_router(router)
    configure_router(app, orchestrator=orchestrator, cache=cache, zoho_client=zoho_client, database=database)
    return app


def _backend(request: Request) -> RouterBackend:
    backend = getattr(request.app.state, "tdscache", None)
    if backend is None:
        backend = RouterBackend()
        request.app.state.tdscache = backend
    return backend


# ---- dependencies: an app may replace either through app.dependency_overrides -------------------

def get_cache(request: Request) -> AsyncCache:
    backend = _backend(request)
    if backend.cache is not None:
        return backend.cache
    if isinstance(backend.orchestrator, CachedSyncMixin):
        return backend.orchestrator.cache
    return process_cache()


def get_orchestrator(request: Request) -> Any:
    backend = _backend(request)
    if backend.orchestrator is None:
        backend.orchestrator = _orchestrator_from_env(backend)
    return backend.orchestrator


def _orchestrator_from_env(backend: RouterBackend) -> Any:
    from .zoho.cached import CachedZohoSyncOrchestrator
    from .zoho.client import UnifiedZohoClient, ZohoClientConfig
    from .zoho.db import SyncDatabase

    if backend.zoho_client is None:
        try:
            backend.zoho_client = UnifiedZohoClient(ZohoClientConfig.from_env())
        except ValueError as exc:
            raise HTTPException(503, f"Zoho is not configured ({exc}); set the ZOHO_* variables or call "
                                     "tdscache.fastapi.configure_router(app, ...)") from exc
    if backend.database is None:
        backend.database = SyncDatabase.from_env()
    return CachedZohoSyncOrchestrator(backend.zoho_client, database=backend.database, cache=backend.cache)


# ---- endpoints -----------------------------------------------------------------------------------

router = APIRouter(prefix="/api/zoho", tags=["tdscache"])


def sync_summary(result: SyncResult) -> dict[str, Any]:
    """The bulk-sync answer for one SyncResult."""
    errors = list(result.errors)
    return {
        "synced": result.total_success,
        "skipped": result.total_skipped,
        "failed": result.total_failed,
        "duration_s": round(result.duration_s, 4),
        "reasons": dict(result.reasons),
        "entity_type": result.entity_type.value,
        "sync_id": result.sync_id,
        "complete": result.complete,
        "db_writes": result.db_writes,
        "failed_pages": list(result.failed_pages),
        "errors": errors[:MAX_REPORTED_ERRORS],
        "errors_omitted": max(0, len(errors) - MAX_REPORTED_ERRORS),
    }


@router.post("/bulk-sync/{entity}", response_model=BulkSyncResponse,
             responses={502: {"model": BulkSyncResponse, "description": "Zoho stopped answering part way"}})
async def bulk_sync(entity: str, response: Response, body: Optional[BulkSyncRequest] = None,
                    orchestrator: Any = Depends(get_orchestrator)) -> dict[str, Any]:
    try:
        entity_type = resolve_entity_type(entity)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from exc
    options = body or BulkSyncRequest.model_validate({})
    config = SyncConfig(entity_type, batch_size=options.batch_size or SyncConfig.batch_size, force=options.force)
    result = await orchestrator.sync_entity(config)
    if not result.complete:
        response.status_code = 502
    return sync_summary(result)


@router.get("/cache/stats")
async def cache_stats(request: Request, cache: AsyncCache = Depends(get_cache)) -> dict[str, Any]:
    out: dict[str, Any] = {"redis": {"url": redact_url(cache.sync.url), "hash_scheme": cache.scheme}}
    started = time.perf_counter()
    try:
        await cache.ping()
        out["redis"].update(available=True, ping_ms=round((time.perf_counter() - started) * 1000, 3))
    except Error as exc:
        out["redis"].update(available=False, error=str(exc))
        out["error"] = f"Redis unavailable: {exc}"
    out["engine"] = cache.stats()
    orchestrator = _backend(request).orchestrator
    if isinstance(orchestrator, CachedSyncMixin):
        sync_stats = orchestrator.get_cache_statistics()
        sync_stats.pop("engine", None)  # the same object as out["engine"] when they share the cache
        out["sync"] = sync_stats
    return out


def _unavailable(exc: Exception, **fields: Any) -> JSONResponse:
    return JSONResponse({**fields, "error": f"Redis unavailable: {exc}"}, status_code=503)


@router.get("/cache/{entity_type}/{entity_id}")
async def inspect_state(entity_type: str, entity_id: str, cache: AsyncCache = Depends(get_cache)) -> Any:
    cache_type = cache_type_of(entity_type)
    where = {"entity_type": cache_type, "entity_id": entity_id}
    try:
        state = await cache.get_state(cache_type, entity_id)
    except CacheUnavailableError as exc:
        return _unavailable(exc, **where, found=None, state=None)
    except Error as exc:  # a corrupt value: it exists, and the next check re-syncs the entity
        return {**where, "found": True, "state": None, "error": f"cached state is unreadable: {exc}"}
    if state is None:
        return JSONResponse({**where, "found": False, "state": None}, status_code=404)
    return {**where, "found": True, "state": state}


async def _invalidate(cache: AsyncCache, entity_type: str, entity_id: Optional[str]) -> Any:
    cache_type = cache_type_of(entity_type)
    where = {"entity_type": cache_type, "entity_id": entity_id}
    try:
        deleted = await cache.invalidate(cache_type, entity_id)
    except Error as exc:
        return _unavailable(exc, **where, deleted=None)
    return {**where, "deleted": deleted}


@router.delete("/cache/{entity_type}")
async def invalidate_type(entity_type: str, cache: AsyncCache = Depends(get_cache)) -> Any:
    return await _invalidate(cache, entity_type, None)


@router.delete("/cache/{entity_type}/{entity_id}")
async def invalidate_entity(entity_type: str, entity_id: str, cache: AsyncCache = Depends(get_cache)) -> Any:
    return await _invalidate(cache, entity_type, entity_id)


__all__ = ["router", "create_app", "configure_router", "get_cache", "get_orchestrator", "RouterBackend",
           "BulkSyncRequest", "BulkSyncResponse", "sync_summary", "MAX_REPORTED_ERRORS"]
