"""Shared pytest fixtures: a real redis-server per session (flushed per test), the Zoho simulator
in-process (httpx.ASGITransport) and over real HTTP (uvicorn thread), clients wired to them, and a
SQLite target database in tmp_path. Redis is never mocked and 127.0.0.1:6379 is never used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest

_PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"
if importlib.util.find_spec("tdscache") is None:
    sys.path.insert(0, str(_PYTHON_DIR))

try:
    importlib.import_module("tdscache")
except ImportError as _facade_error:
    # The facade needs the native module. The pure-Python subpackages (zoho, testing) do not, so
    # stand in a bare package that still fails loudly for anything asked of the facade itself.
    _reason = f"{_facade_error} (did you build the native module? scripts/build.sh)"
    _stub = types.ModuleType("tdscache")
    _stub.__path__ = [str(_PYTHON_DIR / "tdscache")]

    def _missing(name: str) -> Any:
        raise ImportError(f"tdscache.{name} is unavailable: {_reason}")

    _stub.__getattr__ = _missing  # type: ignore[method-assign]
    sys.modules["tdscache"] = _stub

from tdscache.testing import (  # noqa: E402
    RedisServer,
    SimulatorConfig,
    UvicornThread,
    ZohoSimulator,
    client_config_for,
    create_app,
    get_simulator,
)
from tdscache.zoho import SyncDatabase, UnifiedZohoClient  # noqa: E402

ASGI_BASE_URL = "http://zoho.sim"


# -- Redis -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server on a free loopback port for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> RedisServer:
    """The session server, running (restarted if a test killed it) and empty."""
    if not redis_server.running() or not redis_server.ping():
        redis_server.restart()
    redis_server.flushall()
    redis_server.reset_stats()
    return redis_server


# -- Zoho simulator --------------------------------------------------------------------------------


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """Override in a module (or parametrize) to change the data set or faults."""
    return SimulatorConfig(seed=7)


@pytest.fixture
def sim_app(sim_config: SimulatorConfig) -> Any:
    return create_app(sim_config)


@pytest.fixture
def simulator(sim_app: Any) -> ZohoSimulator:
    """The simulator state behind sim_app, for in-process mutations, faults and checks."""
    return get_simulator(sim_app)


@pytest.fixture
def sim_transport(sim_app: Any) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=sim_app)


@pytest.fixture
async def sim_http(sim_transport: httpx.ASGITransport) -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client on the in-process simulator (base URL ASGI_BASE_URL)."""
    async with httpx.AsyncClient(transport=sim_transport, base_url=ASGI_BASE_URL) as client:
        yield client


@pytest.fixture
async def zoho_client(sim_config: SimulatorConfig,
                      sim_transport: httpx.ASGITransport) -> AsyncIterator[UnifiedZohoClient]:
    """UnifiedZohoClient on the in-process simulator."""
    async with UnifiedZohoClient(client_config_for(ASGI_BASE_URL, sim_config), transport=sim_transport) as client:
        yield client


@pytest.fixture
def sim_server(sim_app: Any) -> Iterator[UvicornThread]:
    """The same simulator served over real HTTP on a free loopback port."""
    with UvicornThread(sim_app) as server:
        yield server


@pytest.fixture
async def http_zoho_client(sim_config: SimulatorConfig,
                           sim_server: UvicornThread) -> AsyncIterator[UnifiedZohoClient]:
    """UnifiedZohoClient talking real HTTP to sim_server."""
    async with UnifiedZohoClient(client_config_for(sim_server.url, sim_config)) as client:
        yield client


# -- target database -------------------------------------------------------------------------------


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[SyncDatabase]:
    async with SyncDatabase(sqlite_path=tmp_path / "sync.db") as db:
        yield db
