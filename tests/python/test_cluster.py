"""tdscache.Cache against a real 3-primary Redis Cluster through redis+cluster://: check, commit,
invalidate, states and batch markers, spread over every node, and a killed primary whose entities
(and only those) come back cache_check_error. The cluster is started once for the module.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Iterator

import pytest

import tdscache
from tdscache.testing import RedisReplyError, RedisServer, free_tcp_port

pytestmark = pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli not installed")

NODES = 3
PREFIX = "tds:entity:state"


def _crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The cluster spec's slot of a key without hash tags (ours have none)."""
    return _crc16_xmodem(key.encode()) % 16384


class Cluster:
    """Three RedisServer processes joined by redis-cli --cluster create."""

    def __init__(self) -> None:
        self.nodes: list[RedisServer] = []

    def start(self) -> None:
        for _ in range(NODES):
            # The bus port is given: port + 10000 may not exist for the kernel's high ports.
            node = RedisServer(extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                           "--cluster-port", str(free_tcp_port()),
                                           "--cluster-node-timeout", "3000",
                                           "--cluster-require-full-coverage", "no"])
            node.start()
            self.nodes.append(node)
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        self.wait_ok()

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                try:
                    info = node.command("CLUSTER", "INFO")
                except (OSError, ConnectionError, RedisReplyError) as exc:
                    states.append(repr(exc))
                    continue
                states.append(info.decode() if isinstance(info, bytes) else str(info))
            last = states[-1]
            if all("cluster_state:ok" in s and f"cluster_known_nodes:{NODES}" in s for s in states):
                return
            time.sleep(0.02)  # polling interval of a loop bounded by the deadline
        raise RuntimeError(f"cluster not ok after {timeout_s} s: {last}")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def owners(self) -> list[int]:
        """Slot -> node index, from CLUSTER SLOTS."""
        owner = [-1] * 16384
        ports = [n.port for n in self.nodes]
        for first, last, primary, *_ in self.nodes[0].command("CLUSTER", "SLOTS"):
            index = ports.index(int(primary[1]))
            for slot in range(int(first), int(last) + 1):
                owner[slot] = index
        return owner

    def dbsizes(self) -> list[int]:
        return [int(n.command("DBSIZE")) for n in self.nodes]

    def close(self) -> None:
        for node in self.nodes:
            node.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.close()


@pytest.fixture
def fresh_cluster(cluster: Cluster) -> Cluster:
    for node in cluster.nodes:
        if not node.running():
            node.restart()  # same port and nodes.conf: it rejoins with its slots
    cluster.wait_ok()
    for node in cluster.nodes:
        node.flushall()
    return cluster


def digests(ids: list[str], version: str) -> list[bytes]:
    hasher = tdscache.Hasher()
    return [hasher.digest({"item_id": i, "name": f"item {i}", "version": version}) for i in ids]


def test_crc16_matches_the_cluster(cluster: Cluster) -> None:
    for key in ("123456789", f"{PREFIX}:product:2646610000000113574", "x"):
        assert key_slot(key) == int(cluster.nodes[0].command("CLUSTER", "KEYSLOT", key))


def test_check_commit_invalidate_through_a_cluster_url(fresh_cluster: Cluster) -> None:
    cache = tdscache.Cache(fresh_cluster.url)
    ids = [str(2646610000000000000 + i) for i in range(3000)]
    first = digests(ids, "v1")

    report = cache.check("product", ids, first)
    assert report.cache_errors == 0, report.error
    assert set(report.reasons) == {"no_cache_entry"}
    done = cache.commit(report, report.indices_to_sync())
    assert (done.written, done.conflicts, done.errors) == (3000, 0, 0), done.error
    assert all(size > 700 for size in fresh_cluster.dbsizes())  # every node holds a share

    second = list(first)
    for i in range(0, 3000, 3):
        second[i] = digests([ids[i]], "v2")[0]
    again = cache.check("product", ids, second)
    assert again.cache_errors == 0, again.error
    assert again.reasons == ["content_changed" if i % 3 == 0 else "unchanged" for i in range(3000)]
    assert cache.commit(again, again.indices_to_sync()).written == 1000
    assert cache.check("product", ids, second).skipped == 3000

    state = cache.get_state("product", ids[5])
    assert state is not None and state["entity_id"] == ids[5] and state["sync_count"] == 1
    cache.mark_batch_complete("product", "b1", {"synced": 1000})
    assert cache.was_batch_synced_recently("product", 60)
    cache.ping()

    cache.warm("customer", ["c1", "c2"], [b"\x01" * 32, b"\x02" * 32])
    assert cache.count_states() == {"product": 3000, "customer": 2}  # every primary scanned
    assert cache.invalidate("product", ids[0]) == 1
    assert cache.invalidate("product") == 2999
    assert sum(fresh_cluster.dbsizes()) == 2 + 1  # the customers and the batch marker


def test_killed_primary_fails_only_its_own_entities(fresh_cluster: Cluster) -> None:
    cache = tdscache.Cache(fresh_cluster.url, breaker_failures=2)
    ids = [str(3646610000000000000 + i) for i in range(1500)]
    values = digests(ids, "v1")
    seeded = cache.check("product", ids, values)
    assert cache.commit(seeded, seeded.indices_to_sync()).written == 1500
    owners = fresh_cluster.owners()
    dead = 1
    on_dead = [owners[key_slot(f"{PREFIX}:product:{i}")] == dead for i in ids]
    assert 300 < sum(on_dead) < 700
    fresh_cluster.nodes[dead].kill()

    for _ in range(3):  # more than breaker_failures: one dead node does not open the breaker
        report = cache.check("product", ids, values)
        assert report.reasons == ["cache_check_error" if d else "unchanged" for d in on_dead]
        assert report.error is not None
