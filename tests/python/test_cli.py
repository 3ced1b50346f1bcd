"""The `tdscache` console script against real redis-servers: hash, stats, inspect, invalidate and warm,
with their error messages and exit codes (in-process through main(), and the installed script
through subprocess), and `tdscache demo` run end to end, including Ctrl-C and SIGTERM cleanup."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import tdscache
from tdscache.cli import main
from tdscache.demo import database_mismatches
from tdscache.testing import RedisServer, ZohoSimulator, free_tcp_port
from tdscache.zoho import EntityType, SyncConfig, SyncDatabase, UnifiedZohoClient, ZohoSyncOrchestrator
from tdscache.zoho.cached import CachedZohoSyncOrchestrator

SCRIPT = Path(sys.executable).with_name("tdscache")
PRODUCT = {"item_id": 2646610000000113574, "name": "زيت زيتون Olive Oil 1L", "rate": 25.0, "status": "active",
           "last_modified_time": "2025-11-13T08:30:00+0300", "custom_fields": [{"label": "Origin", "value": "SA"}]}


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_script(*argv: str, stdin: bytes = b"", env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    return subprocess.run([str(SCRIPT), *argv], input=stdin, capture_output=True, timeout=timeout,
                          env=env if env is not None else os.environ.copy())


def unused_redis_url() -> str:
    return f"redis://127.0.0.1:{free_tcp_port()}/0"


# -- hash ------------------------------------------------------------------------------------------


def test_hash_prints_the_digest_the_cache_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "product.json"
    path.write_text(json.dumps(PRODUCT, ensure_ascii=False, indent=2), encoding="utf-8")
    assert run_main(capsys, "hash", str(path)) == (0, tdscache.hash_entity(PRODUCT) + "\n", "")
    code, out, _ = run_main(capsys, "hash", str(path), "--scheme", "jcs")
    assert code == 0 and out.strip() == tdscache.hash_entity(PRODUCT, "jcs") != tdscache.hash_entity(PRODUCT)


def test_hash_reads_stdin_and_canonical_output_hashes_to_the_digest() -> None:
    body = json.dumps(PRODUCT, ensure_ascii=False).encode()
    digest = run_script("hash", "-", stdin=body)
    assert digest.returncode == 0 and digest.stdout.decode().strip() == tdscache.hash_entity(PRODUCT)
    for scheme in ("legacy", "jcs"):
        canonical = run_script("hash", "-", "--canonical", "--scheme", scheme, stdin=body)
        assert canonical.returncode == 0
        assert canonical.stdout == tdscache.canonical_json(PRODUCT, scheme)
        assert hashlib.sha256(canonical.stdout).hexdigest() == tdscache.hash_entity(PRODUCT, scheme)


def test_hash_of_bad_json_names_the_byte_line_and_column(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'{\n  "a": [1, 2,, 3]\n}')
    code, out, err = run_main(capsys, "hash", str(path))
    assert code == 1 and out == ""
    assert f"tdscache hash: error: {path}: " in err
    assert "at byte 15 (line 2, column 14)" in err and "[json_malformed]" in err
    nan = run_script("hash", "-", stdin=b'{"rate": NaN}')
    assert nan.returncode == 1 and b"<stdin>: NaN and Infinity are not JSON numbers at byte 9" in nan.stderr


def test_hash_of_a_missing_file_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "hash", str(tmp_path / "nope.json"))
    assert code == 1 and "cannot read" in err and "No such file" in err


# -- stats, inspect, invalidate --------------------------------------------------------------------


def test_stats_reports_a_reachable_redis(fresh_redis: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "stats", "--redis-url", fresh_redis.url)
    assert code == 0 and re.search(r"^reachable\s+True$", out, re.M) and fresh_redis.url in out
    code, out, _ = run_main(capsys, "stats", "--redis-url", fresh_redis.url, "--json")
    report = json.loads(out)
    assert code == 0 and report["reachable"] is True and report["key_prefix"] == "tds:entity:state"


def test_stats_count_reports_states_per_type(fresh_redis: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tdscache.Cache(fresh_redis.url)
    cache.warm("product", [str(i) for i in range(1500)], [bytes([i % 256]) * 32 for i in range(1500)])
    cache.warm("customer", ["c:1", "c:2", "c*3"], [b"\x01" * 32] * 3)  # ':' and '*' in ids
    fresh_redis.command("SET", "tds:entity:stateless", "x")  # shares the prefix's text, not its ':'
    fresh_redis.command("SET", "other:product:1", "x")
    code, out, _ = run_main(capsys, "stats", "--redis-url", fresh_redis.url, "--json", "--count")
    assert code == 0 and json.loads(out)["states"] == {"customer": 3, "product": 1500}
    code, out, _ = run_main(capsys, "stats", "--redis-url", fresh_redis.url)
    assert code == 0 and "states" not in out  # counting is opt-in: it reads every key name
    assert cache.count_states() == {"customer": 3, "product": 1500}
    cache.invalidate("product")
    assert cache.count_states() == {"customer": 3}


def test_commands_fail_with_exit_1_when_redis_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_tcp_port()}/0"
    for argv in (["stats"], ["inspect", "products", "1"], ["invalidate", "products"]):
        code, out, err = run_main(capsys, *argv, "--redis-url", url)
        assert code == 1 and out == ""
        assert f"tdscache {argv[0]}: error: Redis at redis://***@127.0.0.1" in err and "unreachable" in err
        assert "s3cret" not in err


def test_redis_url_defaults_to_the_environment(fresh_redis: RedisServer, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", fresh_redis.url)
    code, out, _ = run_main(capsys, "stats")
    assert code == 0 and fresh_redis.url in out
    monkeypatch.setenv("REDIS_URL", unused_redis_url())
    assert run_main(capsys, "stats")[0] == 1


def test_a_bad_redis_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "stats", "--redis-url", "http://localhost:6379")
    assert code == 2 and "invalid Redis URL" in err and "unknown scheme 'http'" in err


def test_inspect_prints_a_state_and_exits_3_when_there_is_none(fresh_redis: RedisServer,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    tdscache.Cache(fresh_redis.url).warm("product", [PRODUCT["item_id"]], [tdscache.Hasher().digest(PRODUCT)],
                                         [PRODUCT["last_modified_time"]], ["17"])
    code, out, _ = run_main(capsys, "inspect", "products", str(PRODUCT["item_id"]), "--redis-url", fresh_redis.url)
    state = json.loads(out)
    assert code == 0 and state["content_hash"] == tdscache.hash_entity(PRODUCT) and state["local_id"] == "17"
    code, out, err = run_main(capsys, "inspect", "product", "1", "--redis-url", fresh_redis.url)
    assert (code, out) == (3, "") and "no cached state for product 1" in err


def test_inspect_of_a_corrupt_state_fails_and_says_it_will_resync(fresh_redis: RedisServer,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fresh_redis.command("SET", "tds:entity:state:product:5", "{broken")
    code, _, err = run_main(capsys, "inspect", "products", "5", "--redis-url", fresh_redis.url)
    assert code == 1 and "unreadable" in err and "will sync that entity" in err


def test_invalidate_deletes_one_state_or_every_state_of_a_type(fresh_redis: RedisServer,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    cache = tdscache.Cache(fresh_redis.url)
    cache.warm("product", ["1", "2", "3"], [b"\x01" * 32] * 3)
    cache.warm("customer", ["1"], [b"\x02" * 32])
    code, out, _ = run_main(capsys, "invalidate", "products", "2", "--redis-url", fresh_redis.url)
    assert code == 0 and out == "deleted 1 cached state (product 2)\n"
    code, out, _ = run_main(capsys, "invalidate", "items", "--redis-url", fresh_redis.url)
    assert code == 0 and out == "deleted 2 cached states (every product)\n"
    assert cache.get_state("customer", "1") is not None and cache.get_state("product", "1") is None


def test_an_unknown_type_is_used_as_written_with_a_note(fresh_redis: RedisServer,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    tdscache.Cache(fresh_redis.url).warm("vendor", ["8"], [b"\x03" * 32])
    code, out, err = run_main(capsys, "invalidate", "vendor", "8", "--redis-url", fresh_redis.url)
    assert code == 0 and "deleted 1" in out and "'vendor' is not a known entity type" in err


def test_usage_errors_exit_2_and_version_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(capsys,)[0] == 2
    assert run_main(capsys, "frobnicate")[0] == 2
    assert run_main(capsys, "demo", "--fraction", "1.5")[0] == 2
    assert run_main(capsys, "demo", "--products", "0")[0] == 2
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.strip() == f"tdscache {tdscache.__version__}"
    help_text = run_script("--help")
    assert help_text.returncode == 0 and b"Exit codes" in help_text.stdout


# -- warm --------------------------------------------------------------------------------------------


async def test_warm_from_the_database_makes_the_next_sync_skip_everything_unchanged(
        tmp_path: Path, zoho_client: UnifiedZohoClient, simulator: ZohoSimulator, fresh_redis: RedisServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sync.db"
    async with SyncDatabase(sqlite_path=path) as db:
        await ZohoSyncOrchestrator(zoho_client, database=db).sync_entity(SyncConfig(EntityType.PRODUCTS))
    simulator.mutate("items", count=13, seed=5)  # changed in Zoho after the database was filled

    code = await asyncio.to_thread(main, ["warm", "products", "--from-db", "--database-url", f"sqlite:///{path}",
                                          "--redis-url", fresh_redis.url])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "warmed 1312 product states from 1312 rows of items\n"

    async with SyncDatabase(sqlite_path=path) as db:
        cached = CachedZohoSyncOrchestrator(zoho_client, database=db, cache=tdscache.AsyncCache(fresh_redis.url))
        result = await cached.sync_entity(SyncConfig(EntityType.PRODUCTS))
    # Warm digests equal the raw-page digests: only what changed after the fill is written.
    assert (result.total_success, result.total_skipped) == (13, 1299)


def test_warm_reads_the_database_url_from_the_environment(tmp_path: Path, fresh_redis: RedisServer,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.db"

    async def fill() -> None:
        async with SyncDatabase(sqlite_path=path) as db:
            await db.upsert(EntityType.PRODUCTS, str(PRODUCT["item_id"]), {**PRODUCT, "zoho_synced_at": "x"})

    asyncio.run(fill())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    code, out, _ = run_main(capsys, "warm", "product", "--from-db", "--redis-url", fresh_redis.url)
    assert code == 0 and out.startswith("warmed 1 product states")
    state = tdscache.Cache(fresh_redis.url).get_state("product", PRODUCT["item_id"])
    assert state is not None and state["content_hash"] == tdscache.hash_entity(PRODUCT)  # zoho_synced_at dropped


def test_warm_errors(tmp_path: Path, fresh_redis: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    redis = ["--redis-url", fresh_redis.url]
    code, _, err = run_main(capsys, "warm", "products", *redis)
    assert code == 2 and "--from-db" in err
    code, _, err = run_main(capsys, "warm", "widgets", "--from-db", *redis)
    assert code == 2 and "unknown entity type 'widgets'" in err
    missing = tmp_path / "missing.db"
    code, _, err = run_main(capsys, "warm", "products", "--from-db", "--database-url", f"sqlite:///{missing}", *redis)
    assert code == 1 and f"no SQLite database at {missing}" in err and not missing.exists()
    code, _, err = run_main(capsys, "warm", "products", "--from-db", "--database-url", "mysql://h/db", *redis)
    assert code == 2 and "bad database URL" in err
    code, _, err = run_main(capsys, "warm", "products", "--from-db", "--database-url", f"sqlite:///{missing}",
                            "--redis-url", unused_redis_url())
    assert code == 1 and "unreachable" in err


# -- demo --------------------------------------------------------------------------------------------


def demo_env() -> dict[str, str]:
    env = os.environ.copy()
    env.pop("REDIS_URL", None)  # the demo must start its own server
    env["COLUMNS"] = "200"
    return env


def started_resources(output: str) -> tuple[int, Path, Path]:
    pid = re.search(r"redis-server pid (\d+) on unix socket (\S+)", output)
    workdir = re.search(r"SQLite databases in (\S+)", output)
    assert pid is not None and workdir is not None, output
    return int(pid.group(1)), Path(pid.group(2)).parent, Path(workdir.group(1))


def assert_cleaned_up(pid: int, *dirs: Path) -> None:
    assert not Path(f"/proc/{pid}").exists(), f"redis-server {pid} is still running"
    for directory in dirs:
        assert not directory.exists(), f"{directory} was left behind"


def test_demo_runs_end_to_end_with_a_small_catalogue() -> None:
    done = run_script("demo", "--products", "250", "--fraction", "0.1", env=demo_env())
    output = done.stdout.decode()
    assert done.returncode == 0, output + done.stderr.decode()
    assert "Processing 200 entities with cache checking (cache_enabled: True)" in output
    assert "Cache check complete: 50 total, 0 to sync, 50 skipped" in output
    assert "Cache Statistics: Hit Rate: 90.0%, Total Checked: 250, Skipped: 225, Synced: 25" in output
    runs = re.findall(r"POST /api/zoho/bulk-sync/products \(([^)]*)\): (\d+) synced, (\d+) skipped, (\d+) failed, "
                      r"(\d+) DB writes in [\d.]+ s; database = Zoho", output)
    assert [tuple(map(int, r[1:])) for r in runs] == [
        (250, 0, 0, 250), (0, 250, 0, 0), (25, 225, 0, 25),  # with the cache
        (250, 0, 0, 250), (250, 0, 0, 250), (250, 0, 0, 250),  # without
    ]
    assert "OK: after every run the database held exactly the simulator's records." in output
    assert "With the cache: 275 database writes" in output and "without: 750" in output
    assert_cleaned_up(*started_resources(output))


def test_demo_default_run_is_the_readme_scenario() -> None:
    done = run_script("demo", env=demo_env())
    output = done.stdout.decode()
    assert done.returncode == 0, output + done.stderr.decode()
    assert "Zoho: 66 of 1312 products changed" in output
    assert "(66 changed): 66 synced, 1246 skipped, 0 failed, 66 DB writes" in output
    assert "Cache Statistics: Hit Rate: 100.0%, Total Checked: 1312, Skipped: 1312, Synced: 0" in output
    assert re.search(r"^ ?cached\s+no changes\s+[\d.]+ s\s+0\s+1312\s+0\s+0\s+yes\s*$", output, re.M)
    assert re.search(r"^ ?uncached\s+66 changed\s+[\d.]+ s\s+1312\s+0\s+0\s+1312\s+yes\s*$", output, re.M)
    assert_cleaned_up(*started_resources(output))


def test_demo_on_a_given_redis_keeps_to_its_own_keys(fresh_redis: RedisServer) -> None:
    fresh_redis.command("SET", "tds:entity:state:product:1", "someone else's state")
    done = run_script("demo", "--products", "120", "--redis-url", fresh_redis.url, env=demo_env())
    output = done.stdout.decode()
    assert done.returncode == 0, output + done.stderr.decode()
    assert "demo keys under tdscache-demo:" in output and "redis-server pid" not in output
    assert fresh_redis.command("KEYS", "*") == [b"tds:entity:state:product:1"]


def test_demo_fails_with_exit_1_when_the_given_redis_is_unreachable() -> None:
    done = run_script("demo", "--products", "10", "--redis-url", unused_redis_url(), env=demo_env())
    assert done.returncode == 1 and b"cannot use Redis" in done.stdout


def test_demo_keep_leaves_the_databases(tmp_path: Path) -> None:
    done = run_script("demo", "--products", "30", "--keep", env=demo_env())
    output = done.stdout.decode()
    assert done.returncode == 0, output
    pid, redis_dir, workdir = started_resources(output)
    try:
        assert (workdir / "cached.db").is_file() and (workdir / "uncached.db").is_file()
        assert_cleaned_up(pid, redis_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_interrupted_mid_run_stops_redis_and_removes_its_files(sig: signal.Signals) -> None:
    process = subprocess.Popen([str(SCRIPT), "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=demo_env(), text=True)
    assert process.stdout is not None
    seen = ""
    try:
        for line in process.stdout:
            seen += line
            if "Processing" in line:  # the first sync is under way
                process.send_signal(sig)
                break
        seen += process.stdout.read()
        assert process.wait(timeout=60) == 130, seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "interrupted: stopping everything the demo started" in seen
    assert_cleaned_up(*started_resources(seen))


async def test_database_mismatches_finds_missing_extra_and_stale_rows(
        sim_http: httpx.AsyncClient, simulator: ZohoSimulator, sqlite_db: SyncDatabase) -> None:
    records: list[dict[str, Any]] = simulator.records("items")
    await sqlite_db.upsert_many(EntityType.PRODUCTS, [(str(r["item_id"]), r) for r in records])
    assert await database_mismatches(sqlite_db, sim_http) == []

    first, second = str(records[0]["item_id"]), str(records[1]["item_id"])
    await sqlite_db.upsert(EntityType.PRODUCTS, first, {**records[0], "rate": -1})
    await sqlite_db.upsert(EntityType.PRODUCTS, "1", {"item_id": 1})
    simulator.mutate("items", ids=[records[1]["item_id"]])
    problems = await database_mismatches(sqlite_db, sim_http)
    assert problems == [f"1 products in the database but not in Zoho (e.g. 1)",
                        f"2 products stale in the database (e.g. {min(first, second)})"]
    await sqlite_db.truncate(EntityType.PRODUCTS)
    assert (await database_mismatches(sqlite_db, sim_http))[0].startswith("1312 products missing from the database")
