"""Test and demo plumbing: a throwaway redis-server, the Zoho API simulator and a uvicorn thread to
serve it over real HTTP. Nothing here is used by the library at run time.
"""

from .redis_server import RedisReplyError, RedisServer, RedisServerError, free_tcp_port
from .servers import ServerStartError, UvicornThread
from .zoho_simulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ORGANIZATION_ID,
    DEFAULT_REFRESH_TOKEN,
    SimulatorConfig,
    ZohoSimulator,
    client_config_for,
    create_app,
    get_simulator,
)

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_ORGANIZATION_ID",
    "DEFAULT_REFRESH_TOKEN",
    "RedisReplyError",
    "RedisServer",
    "RedisServerError",
    "ServerStartError",
    "SimulatorConfig",
    "UvicornThread",
    "ZohoSimulator",
    "client_config_for",
    "create_app",
    "free_tcp_port",
    "get_simulator",
]
