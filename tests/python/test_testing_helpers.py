"""The test and demo plumbing itself: RedisServer (unix socket and TCP, restart on the same address,
kill, SIGSTOP, password, a refused start) and UvicornThread (port known up front, real HTTP, a
clean stop). The demo and every Redis test lean on these, so they get tests of their own."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import tdscache
from tdscache.testing import RedisReplyError, RedisServer, RedisServerError, UvicornThread


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_unix_socket_server_lives_in_its_own_dir_and_close_removes_it() -> None:
    server = RedisServer(unix_socket=True)
    server.start()
    try:
        pid, directory = server.pid, server.dir
        assert directory is not None and server.socket_path is not None and server.socket_path.is_socket()
        assert server.url == f"unix://{server.socket_path}"
        assert server.command("SET", "k", "v") == "OK" and server.command("GET", "k") == b"v"
        tdscache.Cache(server.url).ping()  # the library reaches it through the URL
    finally:
        server.close()
    assert not alive(pid) and not directory.exists() and not server.running()


def test_restart_comes_back_on_the_same_port_with_no_data() -> None:
    with RedisServer() as server:
        port = server.port
        server.command("SET", "k", "v")
        server.restart()
        assert server.port == port and server.ping() and server.command("GET", "k") is None


def test_kill_ends_the_process_and_start_brings_it_back() -> None:
    with RedisServer() as server:
        pid = server.pid
        server.kill()
        assert not server.running() and not alive(pid) and not server.ping()
        with pytest.raises(OSError):
            server.command("PING")
        server.start()
        assert server.ping() and server.pid != pid


def test_sigstop_makes_the_server_hang_until_sigcont() -> None:
    with RedisServer() as server:
        server.sigstop()
        try:
            assert server.ping() is False  # times out: connected, but nothing answers
        finally:
            server.sigcont()
        assert server.ping()


def test_close_also_ends_a_stopped_server() -> None:
    server = RedisServer()
    server.start()
    pid = server.pid
    server.sigstop()
    server.close()
    assert not alive(pid)


def test_password_is_required_and_sent_by_command() -> None:
    with RedisServer(password="s3cret") as server:
        assert server.url == f"redis://:s3cret@127.0.0.1:{server.port}"
        assert server.command("PING") == "PONG"
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
            raw.sendall(b"*1\r\n$4\r\nPING\r\n")
            assert raw.recv(100).startswith(b"-NOAUTH")
        tdscache.Cache(server.url).ping()


def test_error_replies_raise() -> None:
    with RedisServer(unix_socket=True) as server:
        with pytest.raises(RedisReplyError, match="unknown command"):
            server.command("NOSUCHCOMMAND")


def test_a_server_that_cannot_start_raises_with_its_log_and_leaves_no_process() -> None:
    server = RedisServer(unix_socket=True, extra_args=["--no-such-option", "1"])
    try:
        with pytest.raises(RedisServerError, match="no-such-option"):
            server.start()
        assert not server.running()
    finally:
        server.close()


def test_commandstats_count_commands() -> None:
    with RedisServer(unix_socket=True) as server:
        server.reset_stats()
        for _ in range(3):
            server.command("GET", "x")
        assert server.info_commandstats()["get"]["calls"] == 3


def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello from {os.getpid()}")


def test_uvicorn_thread_serves_on_a_port_known_before_start_and_stops_cleanly() -> None:
    app = Starlette(routes=[Route("/", hello)])
    server = UvicornThread(app)
    port = server.port
    assert port > 0 and server.url == f"http://127.0.0.1:{port}"
    with server:
        answer = httpx.get(server.url + "/")
        assert answer.status_code == 200 and answer.text == f"hello from {os.getpid()}"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_uvicorn_thread_refuses_a_port_in_use() -> None:
    with UvicornThread(Starlette()) as first:
        with pytest.raises(OSError):
            UvicornThread(Starlette(), port=first.port)
