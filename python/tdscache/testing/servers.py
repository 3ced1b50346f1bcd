"""UvicornThread: serve an ASGI app (the Zoho simulator) over real HTTP on a free loopback port from
a background thread, with readiness polled under a deadline and a clean, joined shutdown.
Test and demo plumbing only; nothing here knows what the app does.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class ServerStartError(RuntimeError):
    """The server thread died or did not start listening in time."""


class UvicornThread:
    """One uvicorn server in a daemon thread. The listening socket is bound before the thread starts,
    so the port is known (and ours) up front; uvicorn skips signal handlers off the main thread."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 ready_timeout_s: float = 10.0) -> None:
        self.app = app
        self.host = host
        self.ready_timeout_s = ready_timeout_s
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level=log_level, lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start()/stop() in the caller's thread
            self._error = exc

    def start(self) -> UvicornThread:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServerStartError(f"uvicorn thread exited before starting: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"uvicorn not listening on {self.url} after {self.ready_timeout_s} s")
            time.sleep(0.005)  # polling interval of the readiness loop, bounded by the deadline
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._thread is None:
            self._socket.close()
            return
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            # Open keep-alive connections can hold a graceful exit; force it.
            self._server.force_exit = True
            self._thread.join(timeout_s)
        self._thread = None
        self._socket.close()
        if self._error is not None:
            raise ServerStartError(f"uvicorn thread failed: {self._error!r}")

    def __enter__(self) -> UvicornThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
