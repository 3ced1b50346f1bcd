"""RedisServer: a throwaway redis-server for tests and the demo, started directly (no shell) on a free
loopback port or a unix socket in its own temp dir, with readiness polled under a deadline, and
fault levers (kill, stop, restart, SIGSTOP/SIGCONT). Talks raw RESP, so redis-py is not needed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

RespValue = Any  # str | int | bytes | None | list[RespValue]; RESP2 replies are recursive


class RedisReplyError(RuntimeError):
    """Redis answered with an error reply (-ERR ...)."""


class RedisServerError(RuntimeError):
    """The server could not be started or did not become ready."""


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago. Another process can take it before we bind, so callers
    retry on "address in use"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _encode_command(args: Sequence[str | bytes | int | float]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(stream: Any) -> RespValue:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed in the middle of a reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode("utf-8", "replace")
    if kind == b"-":
        raise RedisReplyError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None
        data: bytes = stream.read(length + 2)
        return data[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected RESP type byte {kind!r}")


class RedisServer:
    """One redis-server process. Not thread safe. Use as a context manager or call start()/close().

    stop() and kill() end the process but keep its directory, so restart() comes back on the same
    port or socket; close() also removes the directory.
    """

    def __init__(self, *, unix_socket: bool = False, port: int | None = None, password: str | None = None,
                 extra_args: Sequence[str] = (), executable: str = "redis-server",
                 ready_timeout_s: float = 10.0) -> None:
        self.unix_socket = unix_socket
        self.password = password
        self.extra_args = list(extra_args)
        self.executable = executable
        self.ready_timeout_s = ready_timeout_s
        self.host = "127.0.0.1"
        self._fixed_port = port
        self.port: int | None = None
        self.dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def socket_path(self) -> Path | None:
        return self.dir / "redis.sock" if self.unix_socket and self.dir is not None else None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RedisServerError("redis-server is not running")
        return self._process.pid

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.unix_socket:
            query = f"?password={self.password}" if self.password else ""
            return f"unix://{self.socket_path}{query}"
        return f"redis://{auth}{self.host}:{self.port}"

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running():
            return
        if shutil.which(self.executable) is None:
            raise RedisServerError(f"{self.executable} not found on PATH (apt-get install redis-server)")
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="tdscache-redis-"))
        # A port picked by free_tcp_port can be taken before redis binds it: pick again, a few times.
        attempts = 1 if (self.unix_socket or self._fixed_port or self.port) else 5
        for attempt in range(attempts):
            if not self.unix_socket and self.port is None:
                self.port = self._fixed_port or free_tcp_port(self.host)
            try:
                self._spawn_and_wait()
                return
            except RedisServerError:
                if attempt + 1 == attempts:
                    raise
                self.port = None

    def _arguments(self) -> list[str]:
        assert self.dir is not None
        args = [self.executable, "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        if self.unix_socket:
            args += ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        else:
            args += ["--port", str(self.port), "--bind", self.host]
        if self.password:
            args += ["--requirepass", self.password]
        return args + self.extra_args

    def _spawn_and_wait(self) -> None:
        self._process = subprocess.Popen(self._arguments(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.ready_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                message = f"redis-server exited with {self._process.returncode}: {self._log_tail()}"
                self.kill()
                raise RedisServerError(message)
            try:
                if self.command("PING") == "PONG":
                    return
            except (OSError, ConnectionError, RedisReplyError) as exc:
                last_error = exc
            time.sleep(0.01)  # polling interval of the readiness loop, bounded by the deadline
        self.kill()
        raise RedisServerError(f"redis-server not ready after {self.ready_timeout_s} s: {last_error!r}; "
                               f"{self._log_tail()}")

    def _log_tail(self) -> str:
        stderr = b""
        if self._process is not None and self._process.stderr is not None and self._process.poll() is not None:
            stderr = self._process.stderr.read() or b""
        log = self.dir / "redis.log" if self.dir is not None else None
        text = log.read_text(errors="replace") if log is not None and log.exists() else ""
        return (stderr.decode(errors="replace") + text)[-800:]

    def _end(self, sig: signal.Signals, timeout_s: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            # A SIGSTOPped server cannot act on SIGTERM until it is continued.
            os.kill(process.pid, signal.SIGCONT)
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
        self._process = None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM and wait (redis shuts down cleanly, no save: --save "")."""
        self._end(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """SIGKILL: the crash case, no shutdown work at all."""
        self._end(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port or socket, with an empty dataset."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def sigstop(self) -> None:
        """Freeze the server: connections stay open but nothing answers (a hung Redis)."""
        os.kill(self.pid, signal.SIGSTOP)
        self._wait_for_state(stopped=True)

    def sigcont(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self._wait_for_state(stopped=False)

    def _wait_for_state(self, stopped: bool, timeout_s: float = 5.0) -> None:
        """os.kill only queues the signal: poll /proc until the kernel reports the new state, so
        the caller's next request meets a server that is really stopped, or really running."""
        deadline = time.monotonic() + timeout_s
        path = f"/proc/{self.pid}/stat"
        while time.monotonic() < deadline:
            try:
                with open(path, "rb") as f:
                    stat = f.read()
            except OSError:
                return  # no /proc here: best effort
            state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
            if (state in (b"T", b"t")) == stopped:
                return
            time.sleep(0.001)

    # -- commands ----------------------------------------------------------------------------------

    def _connect(self, timeout_s: float) -> socket.socket:
        if self.unix_socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout_s)
            sock.connect(str(self.socket_path))
            return sock
        assert self.port is not None
        return socket.create_connection((self.host, self.port), timeout=timeout_s)

    def command(self, *args: str | bytes | int | float, timeout_s: float = 5.0) -> RespValue:
        """Send one command on a fresh connection and return the decoded reply. Error replies raise
        RedisReplyError. A fresh connection per call keeps this usable across restarts."""
        with self._connect(timeout_s) as sock, sock.makefile("rb") as stream:
            payload = b""
            if self.password:
                payload += _encode_command(["AUTH", self.password])
            sock.sendall(payload + _encode_command(args))
            if self.password:
                _read_reply(stream)
            return _read_reply(stream)

    def ping(self) -> bool:
        try:
            return bool(self.command("PING", timeout_s=1.0) == "PONG")
        except (OSError, ConnectionError, RedisReplyError):
            return False

    def flushall(self) -> None:
        self.command("FLUSHALL")

    def info(self, section: str = "") -> dict[str, str]:
        raw = self.command("INFO", section) if section else self.command("INFO")
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        fields = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value
        return fields

    def info_commandstats(self) -> dict[str, dict[str, float]]:
        """Per command: {"calls": .., "usec": .., "usec_per_call": .., ...}, keyed by lower-case
        command name ("get", "client|setname"). Counts since start or CONFIG RESETSTAT."""
        stats: dict[str, dict[str, float]] = {}
        for key, value in self.info("commandstats").items():
            if not key.startswith("cmdstat_"):
                continue
            numbers = {}
            for pair in value.split(","):
                name, _, number = pair.partition("=")
                try:
                    numbers[name] = float(number)
                except ValueError:
                    continue
            stats[key[len("cmdstat_"):]] = numbers
        return stats

    def reset_stats(self) -> None:
        self.command("CONFIG", "RESETSTAT")
