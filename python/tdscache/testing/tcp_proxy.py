"""TcpProxy: a fault-injecting TCP proxy on loopback, for tests that need a network that misbehaves
between the cache client and a real redis-server: added latency, stalled directions, cuts (mid-reply
too), refused connects, half-closes and black holes. Test plumbing only: nothing here knows RESP.
It runs an asyncio loop in one daemon thread; every control call returns once the fault is in effect.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Literal, Optional, TypeVar

Direction = Literal["up", "down"]  # up: client -> server (requests); down: server -> client (replies)
Which = Literal["up", "down", "both"]

_T = TypeVar("_T")

# Bytes read per recv: a Redis reply of a 1000-key MGET is ~300 KB, so a few reads per reply.
_READ_SIZE = 64 * 1024
# How long a control call waits for the loop thread to apply it. The loop only ever awaits
# sockets, so anything slower than this means the thread is dead, which must fail loudly.
_CONTROL_TIMEOUT_S = 10.0


class ProxyError(RuntimeError):
    """The proxy is closed (or never started), or its loop thread stopped answering."""


@dataclass(frozen=True)
class ProxyCounters:
    """A snapshot of what went through the proxy since it started (all connections together)."""

    accepted: int = 0          # client connections accepted (black-holed ones included)
    active: int = 0            # connections open right now
    received_up: int = 0       # request bytes read from clients
    forwarded_up: int = 0      # request bytes handed to the server's socket
    received_down: int = 0     # reply bytes read from the server
    forwarded_down: int = 0    # reply bytes handed to the clients' sockets
    cuts: int = 0              # connections ended by a fault (cut_all, cut_after, half_close)
    upstream_failures: int = 0  # client connections dropped because the server refused them


def _directions(which: Which) -> tuple[Direction, ...]:
    if which == "both":
        return ("up", "down")
    if which not in ("up", "down"):
        raise ValueError(f"direction must be 'up', 'down' or 'both', not {which!r}")
    return (which,)


def _reset_on_close(writer: asyncio.StreamWriter) -> None:
    """SO_LINGER 0: closing sends RST instead of FIN, like a crashed peer or a middlebox reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


class _Pipe:
    """One direction of one connection: a delay line from a reader to a writer."""

    def __init__(self, proxy: TcpProxy, link: _Link, direction: Direction, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.link = link
        self.direction = direction
        self.reader = reader
        self.writer = writer
        self.chunks: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.eof = False
        self.shut = False  # half-closed by a fault: nothing more is forwarded this way
        self.changed = asyncio.Condition()

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def pump_in(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with self.changed:
                # Backpressure: a stalled direction holds at most max_buffer bytes.
                await self.changed.wait_for(lambda: self.queued < self.proxy.max_buffer or self.shut)
            try:
                data = await self.reader.read(_READ_SIZE)
            except (ConnectionError, OSError):
                data = b""
            self.proxy._count(f"received_{self.direction}", len(data))
            async with self.changed:
                if not data:
                    self.eof = True
                elif not self.shut:
                    self.chunks.append((loop.time() + self.proxy._latency[self.direction], data))
                    self.queued += len(data)
                self.changed.notify_all()
            if not data:
                return

    def _ready(self) -> bool:
        if self.shut:
            return True
        if self.chunks:
            return not self.proxy._stalled[self.direction]
        return self.eof

    async def pump_out(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with self.changed:
                await self.changed.wait_for(self._ready)
                if self.shut:
                    return
                if not self.chunks:  # eof with nothing left: pass the half-close on
                    try:
                        if self.writer.can_write_eof():
                            self.writer.write_eof()
                    except (ConnectionError, OSError, RuntimeError):
                        pass
                    return
                due, data = self.chunks[0]
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
                continue
            async with self.changed:
                if not self.chunks or self.shut:
                    continue
                self.chunks.popleft()
                self.queued -= len(data)
                self.changed.notify_all()
            hold = self.proxy._stall_budget[self.direction]
            if hold is not None and len(data) > hold:
                # Forward exactly `hold` more bytes, then stall this direction with the rest queued.
                async with self.changed:
                    self.chunks.appendleft((due, data[hold:]))
                    self.queued += len(data) - hold
                data = data[:hold]
                self.proxy._stall_budget[self.direction] = None
                self.proxy._stalled[self.direction] = True
            elif hold is not None:
                self.proxy._stall_budget[self.direction] = hold - len(data)
            budget = self.proxy._cut_budget[self.direction]
            cut_here = budget is not None and len(data) >= budget
            if cut_here and budget is not None:
                data = data[:budget]
                self.proxy._cut_budget[self.direction] = None
            elif budget is not None:
                self.proxy._cut_budget[self.direction] = budget - len(data)
            if not data:
                continue
            # Counted before the write: once the peer holds the bytes, the counter says so.
            self.proxy._count(f"forwarded_{self.direction}", len(data))
            try:
                self.writer.write(data)
                await self.writer.drain()
            except (ConnectionError, OSError, RuntimeError):
                self.link.abort(reset=False)
                return
            if cut_here:
                # FIN, not RST: the peer reads the partial bytes, then end of stream.
                self.proxy._count("cuts", 1)
                self.link.abort(reset=False)
                return


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: TcpProxy, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                 server_reader: asyncio.StreamReader, server_writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client_writer = client_writer
        self.server_writer = server_writer
        self.pipes: dict[Direction, _Pipe] = {
            "up": _Pipe(proxy, self, "up", client_reader, server_writer),
            "down": _Pipe(proxy, self, "down", server_reader, client_writer),
        }
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False

    async def run(self) -> None:
        self.tasks = [asyncio.ensure_future(coro) for pipe in self.pipes.values()
                      for coro in (pipe.pump_in(), pipe.pump_out())]
        try:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            self.abort(reset=False)

    def abort(self, *, reset: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for writer in (self.client_writer, self.server_writer):
            if reset:
                _reset_on_close(writer)
            writer.close()

    async def half_close(self, direction: Direction) -> None:
        pipe = self.pipes[direction]
        async with pipe.changed:
            pipe.shut = True
            pipe.chunks.clear()
            pipe.queued = 0
            pipe.changed.notify_all()
        try:
            if pipe.writer.can_write_eof():
                pipe.writer.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            pass


class TcpProxy:
    """A TCP proxy from a loopback port to one upstream server (host and port, or a unix socket
    path). Not a context for production traffic: it exists to break things on purpose.

    Faults, each applied to every current connection and to new ones until undone:
      set_latency(s, direction)  every chunk is delivered s seconds after it arrived
      stall(direction)           hold bytes (the peer sees silence); resume() releases them
      cut_all(reset)             end every connection now, dropping bytes held (RST or FIN)
      cut_after(n, direction)    forward n more bytes that way, then end that connection (FIN)
      stall_after(n, direction)  forward n more bytes that way, then stall that direction
      half_close(direction)      shut one direction down (the peer reads end of stream)
      refuse_new() / accept_new()  stop / start listening: connects are refused (ECONNREFUSED)
      black_hole(on)             accept new connections but never connect or forward them

    The loop thread stops by itself after lifetime_s, so a test that forgets close() cannot
    leave it running. Thread safe: control it from any thread.
    """

    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 0, *,
                 upstream_unix_path: Optional[str] = None, host: str = "127.0.0.1", port: int = 0,
                 lifetime_s: float = 600.0, max_buffer: int = 16 * 1024 * 1024,
                 upstream_connect_timeout_s: float = 5.0) -> None:
        if upstream_unix_path is None and not 0 < upstream_port < 65536:
            raise ValueError("TcpProxy needs an upstream port (1-65535) or upstream_unix_path")
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.upstream_unix_path = upstream_unix_path
        self.host = host
        self.port = port
        self.lifetime_s = lifetime_s
        self.max_buffer = max_buffer
        self.upstream_connect_timeout_s = upstream_connect_timeout_s
        self._latency: dict[Direction, float] = {"up": 0.0, "down": 0.0}
        self._stalled: dict[Direction, bool] = {"up": False, "down": False}
        self._cut_budget: dict[Direction, Optional[int]] = {"up": None, "down": None}
        self._stall_budget: dict[Direction, Optional[int]] = {"up": None, "down": None}
        self._black_hole = False
        self._links: set[_Link] = set()
        self._holes: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: Optional[asyncio.base_events.Server] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stopped = threading.Event()
        self._counts: dict[str, int] = {name: 0 for name in ProxyCounters.__dataclass_fields__}
        self._counts_changed = threading.Condition()

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def url(self, *, password: Optional[str] = None, db: Optional[int] = None) -> str:
        """A redis:// URL that reaches the upstream server through this proxy."""
        auth = f":{password}@" if password else ""
        path = f"/{db}" if db is not None else ""
        return f"redis://{auth}{self.host}:{self.port}{path}"

    def start(self) -> TcpProxy:
        if self._thread is not None:
            return self
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # reported to start() in the caller's thread
                failure.append(exc)
                started.set()
                loop.close()
                self._stopped.set()
                return
            loop.call_later(self.lifetime_s, lambda: asyncio.ensure_future(self._shutdown()))
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.close()
                self._stopped.set()

        self._thread = threading.Thread(target=run, name="tcp-proxy", daemon=True)
        self._thread.start()
        if not started.wait(_CONTROL_TIMEOUT_S) or failure:
            self._thread = None
            raise ProxyError(f"the proxy did not start listening: {failure[0]!r}" if failure
                             else "the proxy did not start listening in time")
        return self

    def close(self) -> None:
        """End every connection, stop listening and join the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not self._stopped.is_set():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_CONTROL_TIMEOUT_S)
            except (RuntimeError, TimeoutError, asyncio.CancelledError):
                pass  # the loop already stopped (lifetime over) or is shutting down
        thread.join(_CONTROL_TIMEOUT_S)
        self._thread = None

    def running(self) -> bool:
        return self._thread is not None and not self._stopped.is_set()

    def wait_stopped(self, timeout_s: float) -> bool:
        """Waits for the loop thread to end (close(), or lifetime_s passing); True if it did."""
        return self._stopped.wait(timeout_s)

    # -- faults ------------------------------------------------------------------------------------

    def set_latency(self, seconds: float, direction: Which = "both") -> None:
        if seconds < 0:
            raise ValueError("latency must be >= 0")

        async def apply() -> None:
            for d in _directions(direction):
                self._latency[d] = seconds
        self._control(apply())

    def stall(self, direction: Which = "down") -> None:
        """Hold every byte going `direction` until resume(); the connections stay open."""
        self._set_stalled(direction, True)

    def resume(self, direction: Which = "both") -> None:
        self._set_stalled(direction, False)

    def _set_stalled(self, direction: Which, stalled: bool) -> None:
        async def apply() -> None:
            for d in _directions(direction):
                self._stalled[d] = stalled
            for link in list(self._links):
                for pipe in link.pipes.values():
                    await pipe.notify()
        self._control(apply())

    def cut_all(self, *, reset: bool = True) -> int:
        """End every open connection now; bytes held in the proxy are lost. Returns how many."""
        async def apply() -> int:
            links, holes = list(self._links), list(self._holes)
            for link in links:
                link.abort(reset=reset)
            for writer in holes:
                if reset:
                    _reset_on_close(writer)
                writer.close()
            self._count("cuts", len(links) + len(holes))
            return len(links) + len(holes)
        return self._control(apply())

    def cut_after(self, nbytes: int, direction: Direction = "down") -> None:
        """Forward `nbytes` more bytes in `direction` (any connection), then close that
        connection. One shot: later bytes flow normally."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")

        async def apply() -> None:
            self._cut_budget[direction] = nbytes
        self._control(apply())

    def stall_after(self, nbytes: int, direction: Direction = "up") -> None:
        """Forward `nbytes` more bytes in `direction` (any connection), then stall that
        direction as stall() does: a request cut in two, half of it at the server."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")

        async def apply() -> None:
            if nbytes == 0:
                self._stalled[direction] = True
            else:
                self._stall_budget[direction] = nbytes
        self._control(apply())

    def half_close(self, direction: Direction) -> int:
        """Shut `direction` down on every open connection: "down", the client reads end of stream
        while its requests still reach the server; "up", the server reads end of stream."""
        async def apply() -> int:
            links = list(self._links)
            for link in links:
                await link.half_close(direction)
            self._count("cuts", len(links))
            return len(links)
        return self._control(apply())

    def refuse_new(self) -> None:
        """Stop listening: new connects are refused by the kernel; open connections carry on."""
        async def apply() -> None:
            # No wait_closed(): from Python 3.12 it also waits for open connections to end.
            if self._server is not None:
                self._server.close()
                self._server = None
        self._control(apply())

    def accept_new(self) -> None:
        """Listen again, on the same port."""
        async def apply() -> None:
            if self._server is None:
                await self._listen()
        self._control(apply())

    def black_hole(self, on: bool = True) -> None:
        """New connections are accepted (the client's connect succeeds) and then ignored:
        nothing is forwarded and nothing comes back. Open connections are not affected."""
        async def apply() -> None:
            self._black_hole = on
        self._control(apply())

    # -- observation -------------------------------------------------------------------------------

    def counters(self) -> ProxyCounters:
        with self._counts_changed:
            return ProxyCounters(**self._counts)

    def wait_until(self, predicate: Callable[[ProxyCounters], bool], timeout_s: float) -> ProxyCounters:
        """Blocks until predicate(counters) holds, woken by every change; raises TimeoutError
        with the last counters when the deadline passes first."""
        deadline = time.monotonic() + timeout_s
        with self._counts_changed:
            while True:
                snapshot = ProxyCounters(**self._counts)
                if predicate(snapshot):
                    return snapshot
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"proxy condition not reached in {timeout_s} s: {snapshot}")
                self._counts_changed.wait(left)

    # -- loop side ---------------------------------------------------------------------------------

    def _control(self, coro: Coroutine[Any, Any, _T]) -> _T:
        loop = self._loop
        if loop is None or not self.running():
            coro.close()
            raise ProxyError("the proxy is not running")
        try:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(_CONTROL_TIMEOUT_S)
        except TimeoutError as exc:
            raise ProxyError("the proxy loop did not apply a control in time") from exc

    def _count(self, name: str, amount: int) -> None:
        if amount == 0:
            return
        with self._counts_changed:
            self._counts[name] += amount
            self._counts_changed.notify_all()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._count("accepted", 1)
        self._count("active", 1)
        try:
            if self._black_hole:
                await self._swallow(reader, writer)
            else:
                await self._forward(reader, writer)
        except asyncio.CancelledError:
            writer.close()
        finally:
            self._count("active", -1)
            if task is not None:
                self._handlers.discard(task)

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._holes.add(writer)
        try:
            # Read and drop, so the client's writes never block: it waits on replies that never come.
            while await reader.read(_READ_SIZE):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self._holes.discard(writer)
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.upstream_unix_path is not None:
                opening = asyncio.open_unix_connection(self.upstream_unix_path)
            else:
                opening = asyncio.open_connection(self.upstream_host, self.upstream_port)
            server_reader, server_writer = await asyncio.wait_for(opening, self.upstream_connect_timeout_s)
        except (OSError, asyncio.TimeoutError):
            # The server is down: the client sees its connection reset, as if refused late.
            self._count("upstream_failures", 1)
            _reset_on_close(writer)
            writer.close()
            return
        link = _Link(self, reader, writer, server_reader, server_writer)
        self._links.add(link)
        try:
            await link.run()
        finally:
            self._links.discard(link)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            link.abort(reset=False)
        for writer in list(self._holes):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=_CONTROL_TIMEOUT_S)
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.stop)


__all__ = ["Direction", "ProxyCounters", "ProxyError", "TcpProxy", "Which"]
