"""Fault injection through the Python API against real servers (killed, stopped, full, evicting,
replicas, killed connections, cluster failovers) and TcpProxy (latency, cuts, half-close, black
hole): decisions fail open, nothing raises, every call ends within a bound from its timeouts.
Results are tabled in docs/reliability.md; the core's own fault paths are in client_fault_test.cpp.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

import pytest

import tdscache
from tdscache.testing import RedisServer
from tdscache.testing.tcp_proxy import ProxyCounters, ProxyError, TcpProxy

T = TypeVar("T")

CONNECT_MS = 300
COMMAND_MS = 300
ID_BASE = 2646610000000000000
# Status codes of capi/tdscache.h (pinned).
CONNECT_FAILED, TIMEOUT, IO, SERVER_ERROR = -15, -16, -17, -21
LINK_LOST = {IO, CONNECT_FAILED}  # a dropped link, or the one reconnect it earns being refused
# How long a test waits for a fault to take hold (bytes to reach the proxy, a server to answer).
# Generous: this only bounds a failing test, a passing one never waits for it.
SETUP_DEADLINE_S = 10.0

# Per fault, what happened (rows of docs/reliability.md); written to $TDSCACHE_RELIABILITY_LOG.
OBSERVED: list[dict[str, Any]] = []


def bound_s(connect_ms: int = CONNECT_MS, command_ms: int = COMMAND_MS) -> float:
    """The longest a faulted call may take: a call is one attempt plus at most one retry on a
    fresh connection, each a connect (handshake included) and an idle wait; tripled, plus a
    second, for a loaded 2-core box. A correctness bound, not a benchmark."""
    return 3 * (connect_ms + command_ms) / 1000 + 1.0


def timed(call: Callable[[], T], bound: float) -> tuple[T, float]:
    """Runs call() in a thread and returns (its result, seconds taken). A call that outlives the
    bound by far fails the test instead of hanging the suite; exceptions propagate."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", call()))
        except BaseException as exc:  # re-raised in the test's thread
            outcome.append(("raised", exc))

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound + 10.0)
    took = time.monotonic() - started
    assert not thread.is_alive(), f"the call hung: still running after {took:.1f} s (bound {bound:.1f} s)"
    kind, value = outcome[0]
    if kind == "raised":
        raise value
    assert took <= bound, f"took {took:.2f} s, more than the bound {bound:.2f} s"
    return value, took


class Background:
    """A call started in a thread now, collected (with its duration) later."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._result: list[Any] = []
        self.started = time.monotonic()
        self.took = 0.0

        def run() -> None:
            try:
                self._result.append(("ok", call()))
            except BaseException as exc:  # re-raised by result()
                self._result.append(("raised", exc))
            self.took = time.monotonic() - self.started

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, bound: float) -> Any:
        self._thread.join(bound + 10.0)
        assert not self._thread.is_alive(), f"the call hung past {bound + 10.0:.1f} s"
        kind, value = self._result[0]
        if kind == "raised":
            raise value
        assert self.took <= bound, f"took {self.took:.2f} s, more than the bound {bound:.2f} s"
        return value


def record(fault: str, when: str, observed: str, took: Optional[float] = None, bound: Optional[float] = None) -> None:
    OBSERVED.append({"fault": fault, "when": when, "observed": observed,
                     "took_s": None if took is None else round(took, 3),
                     "bound_s": None if bound is None else round(bound, 3)})


@pytest.fixture(scope="module", autouse=True)
def _reliability_log() -> Iterator[None]:
    yield
    path = os.environ.get("TDSCACHE_RELIABILITY_LOG")
    if path:
        Path(path).write_text(json.dumps(OBSERVED, indent=1))


# -- entities and assertions -----------------------------------------------------------------------


def products(n: int, *, changed: bool = False) -> list[dict[str, Any]]:
    """n products; with changed=True the even ones have a new rate (the odd ones are as before)."""
    return [{"item_id": str(ID_BASE + i), "name": f"item {i:06d}", "sku": f"SKU-{i:06d}",
             "rate": 10 + (1 if changed and i % 2 == 0 else 0)} for i in range(n)]


def is_changed(i: int) -> bool:
    return i % 2 == 0


def seed(cache: tdscache.Cache, entities: Sequence[dict[str, Any]]) -> None:
    report = cache.check_entities("product", entities)
    done = cache.commit(report, report.indices_to_sync())
    assert done.written == len(entities), done.error


def assert_never_skips_a_change(report: tdscache.CheckReport) -> None:
    skipped = [i for i, why in enumerate(report.reasons) if is_changed(i) and why == "unchanged"]
    assert not skipped, f"changed entities reported unchanged: {skipped[:10]}"


def assert_all_fail_open(report: tdscache.CheckReport, statuses: set[int]) -> None:
    assert set(report.reasons) == {"cache_check_error"}, report.by_reason
    assert report.skipped == 0 and report.to_sync == len(report)
    assert report.error is not None and report.error[0] in statuses, report.error


def assert_exact(report: tdscache.CheckReport, indices: Sequence[int]) -> None:
    """The decisions at `indices` are the true ones (the entries were seeded with the old rates)."""
    for i in indices:
        expected = "content_changed" if is_changed(i) else "unchanged"
        assert report.reasons[i] == expected, (i, report.reasons[i])


def open_cache(url: str, **options: Any) -> tdscache.Cache:
    settings: dict[str, Any] = {"connect_timeout_ms": CONNECT_MS, "command_timeout_ms": COMMAND_MS,
                                # Per-call behaviour is under test here; the breaker has its own
                                # tests (client_fault_test.cpp) and would answer for the server.
                                "breaker_failures": 0}
    settings.update(options)
    return tdscache.Cache(url, **settings)


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = SETUP_DEADLINE_S) -> None:
    """Polls a condition on a server (no notification exists for it) until a deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)  # polling interval, bounded by the deadline


def commandstat(server: RedisServer, name: str) -> int:
    return int(server.info_commandstats().get(name, {}).get("calls", 0))


def recover(cache: tdscache.Cache, entities: Sequence[dict[str, Any]]) -> tdscache.CheckReport:
    """Checks until the client is back (reconnect backoff may refuse the first attempts)."""
    deadline = time.monotonic() + SETUP_DEADLINE_S
    while True:
        report = cache.check_entities("product", entities)
        if report.cache_errors == 0 or time.monotonic() > deadline:
            return report
        time.sleep(0.01)  # polling interval, bounded by the deadline


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A server of the test's own: many tests here kill, stop or reconfigure it."""
    with RedisServer() as s:
        yield s


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", server.port or 0, lifetime_s=120.0) as p:
        yield p


def mget_reply_bytes(server: RedisServer, entities: Sequence[dict[str, Any]], chunk: int) -> int:
    """The RESP size of the replies to the MGETs of these entities' state keys, in chunks."""
    keys = [f"tds:entity:state:product:{e['item_id']}" for e in entities]
    total = 0
    for at in range(0, len(keys), chunk):
        values = server.command("MGET", *keys[at:at + chunk])
        total += len(f"*{len(values)}\r\n")
        total += sum(5 if v is None else len(f"${len(v)}\r\n") + len(v) + 2 for v in values)
    return total


def delta(after: ProxyCounters, before: ProxyCounters) -> tuple[int, int]:
    return after.forwarded_up - before.forwarded_up, after.forwarded_down - before.forwarded_down


# -- the proxy itself ------------------------------------------------------------------------------


def test_proxy_forwards_both_ways_and_counts_every_byte(server: RedisServer, proxy: TcpProxy) -> None:
    cache = open_cache(proxy.url())
    seed(cache, products(50))
    report = cache.check_entities("product", products(50, changed=True))
    assert_exact(report, range(50))
    counters = proxy.counters()
    assert counters.accepted == 1 and counters.active == 1
    assert counters.forwarded_up == counters.received_up > 0
    assert counters.forwarded_down == counters.received_down > 0


def test_proxy_stops_by_itself_after_its_lifetime(server: RedisServer) -> None:
    proxy = TcpProxy("127.0.0.1", server.port or 0, lifetime_s=0.2).start()
    assert proxy.wait_stopped(SETUP_DEADLINE_S), "the proxy outlived its lifetime"
    assert not proxy.running()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=1.0).close()
    with pytest.raises(ProxyError):
        proxy.stall()
    proxy.close()


# -- the server killed, restarted, stopped ---------------------------------------------------------


def test_kill_while_check_replies_flow_keeps_the_answered_decisions_and_fails_open_for_the_rest(
        server: RedisServer, proxy: TcpProxy) -> None:
    n, chunk = 4000, 500  # 8 MGETs of equal size: equal ids and states
    cache = open_cache(proxy.url(), mget_chunk=chunk, command_timeout_ms=5000)
    seed(cache, products(n))
    changed = products(n, changed=True)
    before = proxy.counters()
    assert_exact(cache.check_entities("product", changed), range(n))
    up, _ = delta(proxy.counters(), before)
    # Half of the MGETs reach the server, then the request stalls in the proxy; once the
    # replies to that half are through, the server dies.
    proxy.stall_after(int(up * 0.55), "up")
    first_half = mget_reply_bytes(server, changed[: n // 2], chunk)
    start = proxy.counters()
    pending = Background(lambda: cache.check_entities("product", changed))
    proxy.wait_until(lambda c: c.forwarded_down - start.forwarded_down >= first_half, SETUP_DEADLINE_S)
    server.kill()
    report = pending.result(bound_s(CONNECT_MS, 5000))
    answered = [i for i, why in enumerate(report.reasons) if why != "cache_check_error"]
    assert answered == list(range(n // 2)), "the four answered MGETs keep their decisions"
    assert_exact(report, answered)
    assert report.cache_errors == n // 2 and report.error is not None and report.error[0] in LINK_LOST
    assert_never_skips_a_change(report)
    # The kill, not the 5 s command timeout, ended the call.
    assert pending.took < 2.0, pending.took
    record("Redis killed (SIGKILL)", "during a check, 4 of 8 MGET replies delivered",
           f"answered half decided exactly, the rest cache_check_error ({report.error[1][:60]}...)",
           pending.took, bound_s(CONNECT_MS, 5000))


def test_kill_during_a_commit_reports_errors_and_the_restarted_server_resyncs_everything(
        server: RedisServer, proxy: TcpProxy) -> None:
    n = 2000
    cache = open_cache(proxy.url(), command_timeout_ms=5000)
    entities = products(n)
    report = cache.check_entities("product", entities)
    assert report.by_reason == {"no_cache_entry": n}
    server.sigstop()  # the commit's scripts reach the server's socket and wait there
    before = proxy.counters()
    pending = Background(lambda: cache.commit(report, report.indices_to_sync()))
    proxy.wait_until(lambda c: c.forwarded_up > before.forwarded_up, SETUP_DEADLINE_S)
    os.kill(server.pid, signal.SIGKILL)  # still stopped: it never runs another instruction
    server.kill()  # reaps it
    done = pending.result(bound_s(CONNECT_MS, 5000))
    assert done.errors == n and done.written == 0 and set(done.outcomes) == {"error"}
    assert done.error is not None and done.error[0] in LINK_LOST, done.error
    server.start()  # same port, empty: whatever the killed server held is gone
    after = recover(cache, entities)
    assert after.by_reason == {"no_cache_entry": n}, "everything syncs again"
    record("Redis killed (SIGKILL)", "during a commit (scripts queued at the stopped server)",
           f"every item 'error' ({done.error[1][:50]}...); after restart every entity no_cache_entry",
           pending.took, bound_s(CONNECT_MS, 5000))


def test_restart_during_a_check_never_answers_from_the_old_data(server: RedisServer, proxy: TcpProxy) -> None:
    n = 1000
    cache = open_cache(proxy.url())
    seed(cache, products(n))
    changed = products(n, changed=True)
    proxy.stall_after(0, "up")  # the check's MGETs wait in the proxy
    before = proxy.counters()
    pending = Background(lambda: cache.check_entities("product", changed))
    proxy.wait_until(lambda c: c.received_up > before.received_up, SETUP_DEADLINE_S)
    server.restart()
    proxy.resume()
    report = pending.result(bound_s())
    # The old connection died with the old server; the client may retry on a fresh one and
    # get answers from the empty server. Either way nothing is unchanged: nothing is cached.
    assert set(report.reasons) <= {"cache_check_error", "no_cache_entry"}, report.by_reason
    assert recover(cache, changed).by_reason == {"no_cache_entry": n}
    record("Redis restarted (SIGTERM, start on the same port)", "during a check (request in flight)",
           f"decisions {report.by_reason} (the dead link's retry was refused, or read the empty server)",
           pending.took, bound_s())


def test_sigstop_during_a_check_costs_one_command_timeout_and_syncs_everything(server: RedisServer) -> None:
    n = 2000
    cache = open_cache(server.url)
    seed(cache, products(n))
    server.sigstop()
    try:
        report, took = timed(lambda: cache.check_entities("product", products(n, changed=True)), bound_s())
    finally:
        server.sigcont()
    assert_all_fail_open(report, {TIMEOUT})
    assert took >= COMMAND_MS / 1000 * 0.9, "the timeout, not a crash, ended the call"
    assert_exact(recover(cache, products(n, changed=True)), range(n))
    record("Redis stopped (SIGSTOP)", "during a check", f"every entity cache_check_error (timeout)", took, bound_s())


def test_sigstop_during_a_commit_reports_a_timeout_and_what_lands_later_is_still_true(server: RedisServer) -> None:
    n = 1000
    cache = open_cache(server.url)
    entities = products(n)
    report = cache.check_entities("product", entities)
    evals_before = commandstat(server, "evalsha")
    server.sigstop()
    try:
        done, took = timed(lambda: cache.commit(report, report.indices_to_sync()), bound_s())
    finally:
        server.sigcont()
    assert done.errors == n and done.error is not None and done.error[0] == TIMEOUT, done.error
    # The server runs the scripts it had received once it continues, although the client gave
    # up. Those states are true (the database was written before the commit), so a late write
    # may turn into "unchanged"; content that changed since is never unchanged.
    wait_for(lambda: commandstat(server, "evalsha") > evals_before or server.ping(), "the server to continue")
    after = cache.check_entities("product", entities)
    assert set(after.reasons) <= {"unchanged", "no_cache_entry"}, after.by_reason
    moved = cache.check_entities("product", products(n, changed=True))
    assert_never_skips_a_change(moved)
    record("Redis stopped (SIGSTOP)", "during a commit",
           f"every item 'error' (timeout); after SIGCONT: {after.by_reason}", took, bound_s())


# -- memory ----------------------------------------------------------------------------------------


def test_noeviction_refuses_commits_with_oom_reported_and_checks_stay_correct() -> None:
    with RedisServer(extra_args=["--maxmemory-policy", "noeviction"]) as server:
        n = 500
        cache = open_cache(server.url)
        seed(cache, products(n))
        server.command("CONFIG", "SET", "maxmemory", "1")  # below what it already uses
        changed = products(n, changed=True)
        report = cache.check_entities("product", changed)
        assert_exact(report, range(n))
        to_sync = report.indices_to_sync()
        done, took = timed(lambda: cache.commit(report, to_sync), bound_s())
        assert done.errors == len(to_sync) and done.written == 0
        assert done.error is not None and done.error[0] == SERVER_ERROR and "OOM" in done.error[1], done.error
        assert_exact(cache.check_entities("product", changed), range(n))  # nothing moved
        record("maxmemory, noeviction", "commit", f"every item 'error' ({done.error[1][:40]}...); checks exact",
               took, bound_s())


def test_allkeys_lru_evictions_only_ever_cost_syncs() -> None:
    # A single worker per entity, rounds of: the source changes, check, write the database,
    # commit. Memory is capped so states keep being evicted. The invariant is checked after
    # every round on every entity; evictions must show up as extra syncs, never as skips.
    import random

    rng = random.Random(int(os.environ.get("TDSCACHE_MODEL_SEED") or 8))
    n, rounds = 3000, 12
    with RedisServer(extra_args=["--maxmemory-policy", "allkeys-lru"]) as server:
        cache = open_cache(server.url)
        rates = [10] * n
        source = lambda: [{**p, "rate": rates[i]} for i, p in enumerate(products(n))]  # noqa: E731
        database: dict[int, int] = {}
        seed(cache, source())
        database.update(enumerate(rates))
        used = int(server.info("memory")["used_memory"])
        server.command("CONFIG", "SET", "maxmemory", str(int(used * 0.8)))
        extra_syncs = 0
        for _ in range(rounds):
            for i in rng.sample(range(n), n // 10):
                rates[i] = rng.choice((10, 20, 30))  # often back to an earlier version
            entities = source()
            report = cache.check_entities("product", entities)
            for i, why in enumerate(report.reasons):
                assert not (why == "unchanged" and database.get(i) != rates[i]), f"entity {i} skipped while stale"
                if database.get(i) == rates[i] and why != "unchanged":
                    extra_syncs += 1
            to_sync = report.indices_to_sync()
            for i in to_sync:
                database[i] = rates[i]
            done = cache.commit(report, to_sync)
            assert done.errors == 0, done.error
        evicted = int(server.info("stats")["evicted_keys"])
        assert evicted > 0, "the cap never evicted anything: the test proved nothing"
        assert extra_syncs > 0, "evictions must have cost syncs"
        record("maxmemory, allkeys-lru", f"{rounds} rounds x {n} entities, 10% changed per round",
               f"{evicted} keys evicted, {extra_syncs} extra syncs, 0 changed entities skipped")


# -- replicas --------------------------------------------------------------------------------------


def start_replicating_at_once(server: RedisServer) -> None:
    # Redis waits 5 s by default before a diskless full sync, hoping more replicas will join.
    server.command("CONFIG", "SET", "repl-diskless-sync-delay", "0")


def test_a_replica_answers_checks_and_refuses_commits_with_readonly(server: RedisServer) -> None:
    n = 300
    start_replicating_at_once(server)
    seed(open_cache(server.url), products(n))
    with RedisServer(extra_args=["--replicaof", "127.0.0.1", str(server.port)]) as replica:
        wait_for(lambda: replica.info("replication").get("master_link_status") == "up"
                 and replica.command("DBSIZE") == n, "the replica to sync")
        cache = open_cache(replica.url)
        changed = products(n, changed=True)
        report, took_check = timed(lambda: cache.check_entities("product", changed), bound_s())
        assert_exact(report, range(n))
        done, took = timed(lambda: cache.commit(report, report.indices_to_sync()), bound_s())
        assert done.errors == n // 2 and done.written == 0
        assert done.error is not None and done.error[0] == SERVER_ERROR and "READONLY" in done.error[1], done.error
        assert_exact(cache.check_entities("product", changed), range(n))
        record("a replica (--replicaof) as the endpoint", "check and commit",
               f"checks exact; every commit item 'error' ({done.error[1][:45]}...)", took, bound_s())


def test_a_replica_cut_off_from_its_primary_can_vouch_for_an_old_version(server: RedisServer) -> None:
    # Why tdscache must be pointed at the primary: a replica that lags serves an older state,
    # and an entity that went back to that older content (A -> B -> A) then reads unchanged
    # although the database holds B. This pins the hazard docs/reliability.md warns about.
    start_replicating_at_once(server)
    with TcpProxy("127.0.0.1", server.port or 0, lifetime_s=60.0) as link, \
            RedisServer(extra_args=["--replicaof", "127.0.0.1", str(link.port)]) as replica:
        primary = open_cache(server.url)
        version_a = products(1)
        version_b = products(1, changed=True)
        seed(primary, version_a)  # database: A
        wait_for(lambda: replica.command("DBSIZE") == 1, "the replica to copy A's state")
        link.stall("both")  # replication stops
        report = primary.check_entities("product", version_b)
        assert primary.commit(report, [0]).written == 1  # database: B, primary's state: B
        on_replica = open_cache(replica.url).check_entities("product", version_a)  # source back at A
        assert on_replica.reasons == ["unchanged"], "the lagging replica vouches for A; the database holds B"
        assert primary.check_entities("product", version_a).reasons == ["content_changed"]
        link.resume()


# -- killed connections ----------------------------------------------------------------------------


def kill_normal_clients(server: RedisServer) -> None:
    """CLIENT KILL of every client connection but our own, once at least one is there (a
    connection the kernel completed may not be accepted by the server yet)."""
    wait_for(lambda: int(server.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")) >= 1,
             "a client connection to kill")


def test_client_kill_between_calls_is_repaired_by_one_silent_reconnect(server: RedisServer) -> None:
    n = 200
    cache = open_cache(server.url)
    seed(cache, products(n))
    attempts = cache._client.connect_attempts()
    kill_normal_clients(server)
    changed = products(n, changed=True)
    report, took = timed(lambda: cache.check_entities("product", changed), bound_s())
    assert report.cache_errors == 0, report.error
    assert_exact(report, range(n))
    assert cache._client.connect_attempts() == attempts + 1
    kill_normal_clients(server)
    assert cache.commit(report, report.indices_to_sync()).written == n // 2
    record("CLIENT KILL", "between calls", "the next check and commit reconnect once and answer exactly",
           took, bound_s())


def test_client_kill_during_a_check_on_a_fresh_connection_fails_open(server: RedisServer, proxy: TcpProxy) -> None:
    n = 200
    seed(open_cache(server.url), products(n))
    cache = open_cache(proxy.url())  # no connection yet: this check opens it
    proxy.stall_after(0, "up")
    before = proxy.counters()
    pending = Background(lambda: cache.check_entities("product", products(n, changed=True)))
    proxy.wait_until(lambda c: c.received_up > before.received_up, SETUP_DEADLINE_S)
    kill_normal_clients(server)  # the proxy's link to the server
    proxy.resume()
    report = pending.result(bound_s())
    assert_all_fail_open(report, LINK_LOST)
    assert_exact(recover(cache, products(n, changed=True)), range(n))
    record("CLIENT KILL", "during a check, on the connection that check opened",
           f"every entity cache_check_error ({report.error[1][:50]}...)", pending.took, bound_s())


def test_client_kill_during_a_call_on_a_used_connection_is_retried_once(server: RedisServer, proxy: TcpProxy) -> None:
    n = 200
    cache = open_cache(proxy.url())
    seed(cache, products(n))
    changed = products(n, changed=True)
    for phase in ("check", "commit"):
        report = cache.check_entities("product", changed) if phase == "commit" else None
        proxy.stall_after(0, "up")
        before = proxy.counters()
        if report is None:
            pending = Background(lambda: cache.check_entities("product", changed))
        else:
            seen = report
            pending = Background(lambda: cache.commit(seen, seen.indices_to_sync()))
        proxy.wait_until(lambda c: c.received_up > before.received_up, SETUP_DEADLINE_S)
        kill_normal_clients(server)
        proxy.resume()
        outcome = pending.result(bound_s())
        # Nothing had reached the server, and the dead link was an idle one: the call is sent
        # again on a fresh connection and succeeds as if nothing happened.
        if phase == "check":
            assert outcome.cache_errors == 0, outcome.error
            assert_exact(outcome, range(n))
        else:
            assert outcome.written == n // 2, outcome.error
        record("CLIENT KILL", f"during a {phase} (request held before the server), on a used connection",
               "retried once on a fresh connection; exact", pending.took, bound_s())
    assert cache.check_entities("product", changed).reasons == ["unchanged"] * n


# -- the network: the proxy's faults ---------------------------------------------------------------


def test_latency_beyond_the_command_timeout_fails_open_and_below_it_answers(server: RedisServer,
                                                                           proxy: TcpProxy) -> None:
    n = 1000
    cache = open_cache(proxy.url())
    seed(cache, products(n))
    changed = products(n, changed=True)
    proxy.set_latency(2 * COMMAND_MS / 1000, "down")
    report, took = timed(lambda: cache.check_entities("product", changed), bound_s())
    assert_all_fail_open(report, {TIMEOUT})
    assert took >= COMMAND_MS / 1000 * 0.9
    record("latency 2x command_timeout (proxy)", "check", "every entity cache_check_error (timeout)", took, bound_s())
    proxy.set_latency(COMMAND_MS / 4000, "both")
    slow, took = timed(lambda: recover(cache, changed), bound_s())
    assert_exact(slow, range(n))
    record("latency 1/4 command_timeout (proxy)", "check", "exact decisions", took, bound_s())


def even_cut_starts(n: int, chunk: int) -> list[int]:
    """Where each MGET of a check starts: ceil(n / chunk) of them, as even as the count allows,
    the later ones one key longer (the client's layout, docs/design.md "Decisions")."""
    count = -(-n // chunk)
    base, longer_from = n // count, count - n % count
    return [i * base + max(0, i - longer_from) for i in range(count + 1)]


# 4,000 keys are eight replies of 500; 4,100 are nine of 455 or 456, where a reply's first key
# is not a multiple of the chunk, so a cut must be placed by the layout, not by i * chunk.
@pytest.mark.parametrize("n", [4000, 4100])
def test_connection_cut_mid_reply_keeps_the_complete_replies_and_fails_open_for_the_rest(
        server: RedisServer, proxy: TcpProxy, n: int) -> None:
    chunk = 500
    starts = even_cut_starts(n, chunk)
    assert (n == 4000) == (starts[4] == 4 * chunk), starts
    cache = open_cache(proxy.url(), mget_chunk=chunk)
    seed(cache, products(n))
    changed = products(n, changed=True)
    before = proxy.counters()
    assert_exact(cache.check_entities("product", changed), range(n))
    _, down = delta(proxy.counters(), before)
    # Every value is the same size, so the middle of the fifth reply is this far into the bytes.
    proxy.cut_after(int(down * (starts[4] + starts[5]) / 2 / n), "down")
    report, took = timed(lambda: cache.check_entities("product", changed), bound_s())
    answered = [i for i, why in enumerate(report.reasons) if why != "cache_check_error"]
    assert answered == list(range(starts[4])), "the four complete replies keep their decisions"
    assert_exact(report, answered)
    assert report.error is not None and report.error[0] in LINK_LOST, report.error
    assert_never_skips_a_change(report)
    assert_exact(recover(cache, changed), range(n))
    record("connection cut mid-reply (proxy, FIN)", "check, inside the 5th of 8 MGET replies",
           "4 complete replies decided exactly, the rest cache_check_error", took, bound_s())


def test_a_commit_whose_reply_is_lost_is_replayed_as_a_conflict_and_the_entities_resync(
        server: RedisServer, proxy: TcpProxy) -> None:
    n = 256  # 4 script calls of 64 keys
    cache = open_cache(proxy.url())
    entities = products(n)
    report = cache.check_entities("product", entities)
    evals = commandstat(server, "evalsha")
    proxy.stall("down")
    pending = Background(lambda: cache.commit(report, report.indices_to_sync()))
    wait_for(lambda: commandstat(server, "evalsha") >= evals + n // 64, "the commit scripts to run")
    proxy.cut_all()  # the replies die in the proxy
    proxy.resume()
    done = pending.result(bound_s())
    # The scripts ran and wrote; the client never heard, sent them again on a fresh connection,
    # and the replay found its own values where it expected "missing": a conflict, retracted.
    assert done.conflicts == n and done.written == 0, done
    after = cache.check_entities("product", entities)
    assert after.by_reason == {"no_cache_entry": n}, "an extra sync, never a skip"
    record("reply lost after the commit ran (proxy cut)", "commit",
           "replayed on a fresh connection: every item 'conflict', the next check syncs them",
           pending.took, bound_s())


def test_half_close_toward_the_client_fails_the_call_at_once_not_after_the_timeout(
        server: RedisServer, proxy: TcpProxy) -> None:
    n = 200
    seed(open_cache(server.url), products(n))
    cache = open_cache(proxy.url(), command_timeout_ms=5000)
    proxy.stall_after(0, "up")
    before = proxy.counters()
    pending = Background(lambda: cache.check_entities("product", products(n, changed=True)))
    proxy.wait_until(lambda c: c.received_up > before.received_up, SETUP_DEADLINE_S)
    assert proxy.half_close("down") == 1  # the client reads end of stream; its writes still go
    report = pending.result(bound_s(CONNECT_MS, 5000))
    assert_all_fail_open(report, LINK_LOST)
    assert pending.took < 2.0, "end of stream must end the call, not the 5 s timeout"
    proxy.resume()
    assert_exact(recover(cache, products(n, changed=True)), range(n))
    record("half-close toward the client (proxy)", "during a check (fresh connection)",
           "every entity cache_check_error at once (end of stream)", pending.took, bound_s(CONNECT_MS, 5000))


def test_half_close_of_an_idle_connection_is_repaired_on_the_next_call(server: RedisServer, proxy: TcpProxy) -> None:
    n = 200
    cache = open_cache(proxy.url())
    seed(cache, products(n))
    for direction in ("down", "up"):
        assert proxy.half_close(direction) == 1  # type: ignore[arg-type]
        report, took = timed(lambda: cache.check_entities("product", products(n, changed=True)), bound_s())
        assert report.cache_errors == 0, (direction, report.error)
        assert_exact(report, range(n))
        record(f"half-close toward the {'client' if direction == 'down' else 'server'} (proxy)",
               "between calls", "the next call is retried on a fresh connection; exact", took, bound_s())


@pytest.mark.parametrize("password", [None, "s3cret"], ids=["no-auth", "auth"])
def test_a_black_hole_fails_open_within_the_configured_timeout(password: Optional[str]) -> None:
    # Without AUTH the first wait is the command's (command_timeout); with AUTH it is the
    # handshake's (connect_timeout). Different values show which one bounds the call.
    connect_ms, command_ms = 300, 900
    with RedisServer(password=password) as server, TcpProxy("127.0.0.1", server.port or 0, lifetime_s=60.0) as proxy:
        proxy.black_hole()
        cache = open_cache(proxy.url(password=password), connect_timeout_ms=connect_ms, command_timeout_ms=command_ms)
        bound = bound_s(connect_ms, command_ms)
        report, took = timed(lambda: cache.check_entities("product", products(100)), bound)
        assert_all_fail_open(report, {TIMEOUT})
        waited = (connect_ms if password else command_ms) / 1000
        assert waited * 0.9 <= took <= waited + 0.5, (took, waited)
        done, _ = timed(lambda: cache.commit(report, report.indices_to_sync()), bound)
        assert done.written == 0 and done.errors + done.conflicts == 100
        record(f"black hole (proxy accepts, never answers), {'AUTH' if password else 'no AUTH'}",
               "connect + first check", f"every entity cache_check_error after {'connect' if password else 'command'}_timeout",
               took, bound)


def test_refused_connects_fail_open_at_once_and_the_client_returns_when_listening_resumes(
        server: RedisServer, proxy: TcpProxy) -> None:
    n = 100
    seed(open_cache(server.url), products(n))
    proxy.refuse_new()
    cache = open_cache(proxy.url())
    report, took = timed(lambda: cache.check_entities("product", products(n)), bound_s())
    assert_all_fail_open(report, {CONNECT_FAILED})
    assert took < 0.5, "a refused connect costs no timeout"
    proxy.accept_new()
    back = recover(cache, products(n, changed=True))
    assert back.cache_errors == 0 and back.error is None
    assert_exact(back, range(n))
    record("connects refused (proxy stops listening)", "check", "every entity cache_check_error (connect_failed) at once; back after the backoff",
           took, bound_s())


async def test_an_async_check_on_a_stalled_server_leaves_the_event_loop_free(server: RedisServer,
                                                                            proxy: TcpProxy) -> None:
    cache = tdscache.AsyncCache(proxy.url(), connect_timeout_ms=CONNECT_MS, command_timeout_ms=COMMAND_MS,
                                breaker_failures=0)
    await cache.ping()
    proxy.stall("down")
    started = time.monotonic()
    check = asyncio.ensure_future(cache.check_entities("product", products(500)))
    ticks = 0
    while not check.done():
        await asyncio.sleep(0.01)
        ticks += 1
    report = await check
    took = time.monotonic() - started
    assert_all_fail_open(report, {TIMEOUT})
    assert ticks >= 10, f"the loop ran only {ticks} times while the check waited {took:.2f} s"
    assert took <= bound_s()
    proxy.resume()


# -- Redis Cluster failover ------------------------------------------------------------------------


class ReplicatedCluster:
    """A throwaway Redis Cluster of 3 primaries with one replica each, on free loopback ports
    (each node a RedisServer in its own temp dir, bus port chosen up front), created with
    redis-cli --cluster create. Node timeout short, so a killed primary fails over in seconds."""

    def __init__(self, primaries: int = 3, node_timeout_ms: int = 1000) -> None:
        self.nodes: list[RedisServer] = []
        for _ in range(2 * primaries):
            self.nodes.append(RedisServer(extra_args=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(tdscache.testing.free_tcp_port()),
                "--cluster-node-timeout", str(node_timeout_ms),
                "--repl-diskless-sync-delay", "0",  # replicas sync at once, not after 5 s
                # Surviving primaries keep serving their slots while one is down.
                "--cluster-require-full-coverage", "no"]))

    def __enter__(self) -> "ReplicatedCluster":
        try:
            for node in self.nodes:
                node.start()
            create = ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
                      "--cluster-replicas", "1", "--cluster-yes"]
            run = subprocess.run(create, capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stdout + run.stderr
            wait_for(self.healthy, "the cluster to be ok with every replica linked", 30.0)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for node in self.nodes:
            node.close()

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def running(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.running()]

    def healthy(self) -> bool:
        try:
            for node in self.running():
                info = node.command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info or "cluster_slots_assigned:16384" not in info:
                    return False
                replication = node.info("replication")
                if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                    return False
            return True
        except (OSError, ConnectionError, tdscache.testing.RedisReplyError):
            return False

    def role(self, node: RedisServer) -> str:
        return node.info("replication").get("role", "?")

    def primary_with_replica(self) -> tuple[RedisServer, RedisServer]:
        for replica in self.running():
            info = replica.info("replication")
            if info.get("role") == "slave":
                port = int(info["master_port"])
                return next(n for n in self.nodes if n.port == port), replica
        raise AssertionError("no replica in the cluster")

    def replicated(self, primary: RedisServer, replica: RedisServer) -> bool:
        return bool(primary.command("DBSIZE") == replica.command("DBSIZE")
                    and primary.info("replication").get("master_repl_offset")
                    == replica.info("replication").get("slave_repl_offset"))


class CheckLoop:
    """Checks the same entities over and over from a thread while a fault plays out; every
    report is kept, with the time it took."""

    def __init__(self, cache: tdscache.Cache, entities: list[dict[str, Any]]) -> None:
        self.reports: list[tuple[tdscache.CheckReport, float]] = []
        self._stop = threading.Event()
        self._failure: list[BaseException] = []

        def run() -> None:
            try:
                while not self._stop.is_set():
                    started = time.monotonic()
                    report = cache.check_entities("product", entities)
                    self.reports.append((report, time.monotonic() - started))
            except BaseException as exc:  # re-raised by stop()
                self._failure.append(exc)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> list[tuple[tdscache.CheckReport, float]]:
        self._stop.set()
        self._thread.join(SETUP_DEADLINE_S)
        assert not self._thread.is_alive(), "a check hung"
        if self._failure:
            raise self._failure[0]
        return self.reports


def assert_fail_open_or_exact(reports: list[tuple[tdscache.CheckReport, float]], bound: float,
                              synced: frozenset[int] = frozenset()) -> int:
    """Every report of a CheckLoop: each entity exact or cache_check_error, never a skipped
    change, each call within the bound. `synced`: changed entities whose new content was
    committed before the loop (they are unchanged now). Returns how many reports had errors."""
    with_errors = 0
    for report, took in reports:
        assert took <= bound, f"a check took {took:.2f} s (bound {bound:.2f} s)"
        for i, why in enumerate(report.reasons):
            expected = "content_changed" if is_changed(i) and i not in synced else "unchanged"
            assert why in (expected, "cache_check_error"), (i, why)
        with_errors += report.cache_errors > 0
    return with_errors


@contextlib.contextmanager
def seeded_cluster(n: int) -> Iterator[tuple[ReplicatedCluster, tdscache.Cache, RedisServer, RedisServer]]:
    """A cluster holding the states of products(n), one primary and its caught-up replica."""
    with ReplicatedCluster() as cluster:
        cache = open_cache(cluster.url)
        seed(cache, products(n))
        primary, replica = cluster.primary_with_replica()
        wait_for(lambda: cluster.replicated(primary, replica), "the replica to catch up")
        yield cluster, cache, primary, replica


def test_a_manual_cluster_failover_under_load_never_skips_a_change() -> None:
    n = 3000
    changed = products(n, changed=True)
    with seeded_cluster(n) as (cluster, cache, primary, replica):
        loop = CheckLoop(cache, changed)
        started = time.monotonic()
        replica.command("CLUSTER", "FAILOVER")  # coordinated: no write is lost
        wait_for(lambda: cluster.role(replica) == "master" and cluster.role(primary) == "slave",
                 "the replica to take over", 30.0)
        wait_for(lambda: bool(loop.reports) and loop.reports[-1][0].cache_errors == 0
                 and time.monotonic() - started > 0.2, "a clean check after the failover", 30.0)
        reports = loop.stop()
        with_errors = assert_fail_open_or_exact(reports, bound_s())
        assert_exact(reports[-1][0], range(n))
        done = cache.commit(reports[-1][0], reports[-1][0].indices_to_sync())
        assert done.written == n // 2, done.error
        assert cache.check_entities("product", changed).by_reason == {"unchanged": n}
        record("Redis Cluster manual failover (CLUSTER FAILOVER)", f"{len(reports)} checks of {n} entities running",
               f"{with_errors} checks had cache_check_error entities, every other decision exact; "
               "commits after it land on the new primary", max(t for _, t in reports), bound_s())


def test_a_killed_cluster_primary_fails_open_for_its_slots_until_its_replica_takes_over() -> None:
    n = 3000
    changed = products(n, changed=True)
    with seeded_cluster(n) as (cluster, cache, primary, replica):
        primary.kill()
        outage = cache.check_entities("product", changed)
        lost = {i for i, why in enumerate(outage.reasons) if why == "cache_check_error"}
        assert 0 < len(lost) < n, "only the dead primary's entities fail"
        assert_exact(outage, sorted(set(range(n)) - lost))
        during = cache.commit(outage, outage.indices_to_sync())
        assert during.errors > 0 and during.written > 0, "commits to the live primaries still land"
        written = frozenset(i for i, outcome in zip(outage.indices_to_sync(), during.outcomes) if outcome == "written")
        loop = CheckLoop(cache, changed)
        wait_for(lambda: cluster.role(replica) == "master", "the replica to be promoted", 30.0)
        wait_for(lambda: bool(loop.reports) and loop.reports[-1][0].cache_errors == 0,
                 "a clean check after the promotion", 30.0)
        reports = loop.stop()
        with_errors = assert_fail_open_or_exact(reports, bound_s(), written)
        # The promoted replica holds every state the dead primary had replicated, and the
        # commits that landed during the outage made their entities unchanged.
        assert reports[-1][0].cache_errors == 0
        record("Redis Cluster primary killed (automatic failover)", f"{len(reports)} checks of {n} entities running",
               f"its slots' entities cache_check_error until the replica took over ({with_errors} checks), "
               "then exact from the replicated states", max(t for _, t in reports), bound_s())
