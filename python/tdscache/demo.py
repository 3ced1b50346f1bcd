"""`tdscache demo`, the project's main job: a private redis-server, the Zoho simulator over real HTTP
and SQLite in a temp dir; the product bulk sync run three times through the FastAPI endpoint with
the cache and three times without it; a table of what each run wrote; a check that the database
holds exactly what Zoho serves. Everything it starts is stopped and removed, also on Ctrl-C.
Argument parsing lives in cli.py; the sync logic lives in the orchestrator and the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import httpx
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .cache import AsyncCache
from .fastapi import create_app
from .service import redact_url
from .testing import RedisServer, SimulatorConfig, UvicornThread, client_config_for, create_app as create_simulator
from .zoho.cached import CachedZohoSyncOrchestrator
from .zoho.client import UnifiedZohoClient
from .zoho.db import SyncDatabase
from .zoho.types import EntityType

ENTITY = EntityType.PRODUCTS
SIM_KEY = "items"  # the simulator's dataset behind PRODUCTS
CACHED, UNCACHED = "cached", "uncached"  # the two scenarios
# Zoho's documented limit per organization; the client waits out 429s as Retry-After asks.
ZOHO_RATE_LIMIT_PER_MINUTE = 100
# The other data sets are not synced by the demo; small sizes keep the simulator's start-up short.
_SIDE_COUNT = 5


@dataclass
class DemoOptions:
    products: int = 1312
    fraction: float = 0.05
    redis_url: Optional[str] = None
    keep: bool = False
    rate_limit_per_minute: int = ZOHO_RATE_LIMIT_PER_MINUTE
    seed: int = 7


@dataclass
class RunRecord:
    scenario: str
    label: str
    duration_s: float
    synced: int
    skipped: int
    failed: int
    db_writes: int
    complete: bool
    # Problems found by the checks after the run; empty means the run did what it must.
    problems: list[str] = field(default_factory=list)


class DemoOrchestrator(CachedZohoSyncOrchestrator):
    """The cached orchestrator plus two observers: progress per page and the ids written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_entities_done: Optional[Callable[[int], None]] = None
        self.saved_ids: set[str] = set()

    async def _process_page(self, body: bytes, page_number: int, config: Any, result: Any) -> None:
        before = result.total_processed + result.total_skipped + result.total_failed
        try:
            await super()._process_page(body, page_number, config, result)
        finally:
            if self.on_entities_done is not None:
                self.on_entities_done(result.total_processed + result.total_skipped + result.total_failed - before)

    async def _save_entity(self, entity: dict[str, Any], config: Any) -> Any:
        local_id = await super()._save_entity(entity, config)
        self.saved_ids.add(str(entity[config.entity_type.id_field]))
        return local_id


class _ConsoleLogHandler(logging.Handler):
    """Log lines through the rich console, so they print above a live progress bar, unwrapped."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            style = "yellow" if record.levelno >= logging.WARNING else "dim"
            self.console.print(Text(self.format(record), style=style), soft_wrap=True)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _demo_logging(console: Console) -> Iterator[None]:
    handler = _ConsoleLogHandler(console)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    package = logging.getLogger("tdscache")
    saved = (package.level, package.propagate)
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    package.propagate = False
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(saved[0])
        package.propagate = saved[1]


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT both raise KeyboardInterrupt where the main thread is, so the cleanup in
    `finally` runs for both. SIGINT gets the handler too because asyncio.run's own one only
    cancels the main task, and a library under it may absorb that cancellation (an HTTP stack
    turning it into a response, a `finally` awaiting a cancelled future): the demo then ran to
    the end after Ctrl-C in one CI run (test_demo_interrupted_mid_run_stops_redis_and_removes_its_files)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(options: DemoOptions, console: Optional[Console] = None) -> int:
    """Runs the demo; returns the exit code (0: every check passed, 1: a check failed or the demo
    could not run, 130: interrupted)."""
    console = console or _default_console()
    with contextlib.ExitStack() as cleanup, _terminate_as_interrupt():
        try:
            workdir = Path(tempfile.mkdtemp(prefix="tdscache-demo-"))
            cleanup.callback(_remove_or_keep, workdir, options.keep, console)
            redis_url, key_prefix = _start_redis(options, cleanup, console)
            sim_config = SimulatorConfig(seed=options.seed, item_count=options.products,
                                         rate_limit_per_minute=options.rate_limit_per_minute,
                                         contact_count=_SIDE_COUNT, invoice_count=_SIDE_COUNT,
                                         salesorder_count=_SIDE_COUNT, bill_count=_SIDE_COUNT,
                                         purchaseorder_count=_SIDE_COUNT)
            simulator = UvicornThread(create_simulator(sim_config))
            cleanup.callback(simulator.stop)
            simulator.start()
            console.print(f"Zoho simulator on {simulator.url} ({options.products} products, "
                          f"rate limit {options.rate_limit_per_minute}/min)")
            console.print(f"SQLite databases in {workdir}")
            with _demo_logging(console):
                return asyncio.run(_run(options, console, redis_url, key_prefix, simulator.url, sim_config,
                                        workdir))
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopping everything the demo started[/yellow]")
            return 130
        except Exception as exc:  # the demo's own failure: report it, clean up, exit non-zero
            console.print(f"[red]demo failed: {exc!r}[/red]")
            return 1


def _default_console() -> Console:
    console = Console()
    if not console.is_terminal:
        # Piped or captured output: no terminal width to fit, and wrapped log lines or table
        # cells are harder to read (and to grep) than long ones.
        console.width = 120
    return console


def _remove_or_keep(workdir: Path, keep: bool, console: Console) -> None:
    if keep:
        console.print(f"kept {workdir} (cached.db, uncached.db)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _start_redis(options: DemoOptions, cleanup: contextlib.ExitStack, console: Console) -> tuple[str, Optional[str]]:
    """A private redis-server, or the given Redis with a key prefix of its own (so the demo never
    reads or deletes anyone else's states)."""
    if options.redis_url:
        prefix = f"tdscache-demo:{secrets.token_hex(4)}:entity:state"
        console.print(f"Redis at {redact_url(options.redis_url)} (demo keys under {prefix}:)")
        return options.redis_url, prefix
    server = RedisServer(unix_socket=True)
    cleanup.callback(server.close)
    server.start()
    console.print(f"redis-server pid {server.pid} on unix socket {server.socket_path}")
    return server.url, None


async def _run(options: DemoOptions, console: Console, redis_url: str, key_prefix: Optional[str],
               sim_url: str, sim_config: SimulatorConfig, workdir: Path) -> int:
    cache = AsyncCache(redis_url, **({"key_prefix": key_prefix} if key_prefix else {}))
    try:
        await cache.ping()
    except Exception as exc:
        console.print(f"[red]cannot use Redis at {redact_url(redis_url)}: {exc}[/red]")
        return 1
    records: list[RunRecord] = []
    async with contextlib.AsyncExitStack() as stack:
        if key_prefix:
            stack.push_async_callback(_drop_demo_keys, cache, options.keep)
        control = await stack.enter_async_context(httpx.AsyncClient(base_url=sim_url))
        zoho = await stack.enter_async_context(UnifiedZohoClient(client_config_for(sim_url, sim_config)))
        for scenario, cached in ((CACHED, True), (UNCACHED, False)):
            database = await stack.enter_async_context(
                SyncDatabase(sqlite_path=workdir / ("cached.db" if cached else "uncached.db")))
            orchestrator = DemoOrchestrator(zoho, database=database, cache=cache)
            if not cached:
                orchestrator.disable_caching()
            await _post(control, "/__sim/reset", {})
            records += await _three_runs(scenario, orchestrator, database, control, options, console)
    console.print(_table(records, options))
    problems = [f"{r.scenario}, {r.label}: {p}" for r in records for p in r.problems]
    if problems:
        for problem in problems:
            console.print(f"[red]FAILED {problem}[/red]")
        return 1
    _print_summary(records, console)
    return 0


async def _drop_demo_keys(cache: AsyncCache, keep: bool) -> None:
    if not keep:
        with contextlib.suppress(Exception):  # best effort: the keys also expire with their TTL
            await cache.invalidate(ENTITY.cache_type)


async def _post(control: httpx.AsyncClient, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = await control.post(path, json=payload)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


@dataclass
class _Scenario:
    """One series of three runs: its orchestrator (cache on or off), its database, and the clients
    to the app's endpoint and to the simulator's control endpoints."""

    name: str
    orchestrator: DemoOrchestrator
    database: SyncDatabase
    api: httpx.AsyncClient
    control: httpx.AsyncClient
    options: DemoOptions
    console: Console

    async def run(self, label: str, changed_ids: Optional[set[str]] = None) -> RunRecord:
        """One bulk sync through the endpoint, then its checks. changed_ids: the products Zoho
        changed since the last run (None: all of them are new to this database)."""
        products = self.options.products
        expected = products if changed_ids is None else len(changed_ids)
        if not self.orchestrator.cache_enabled:
            expected = products  # without the cache every run writes everything
        self.orchestrator.saved_ids = set()
        # A live bar only on a terminal: piped output would get its frames as stray lines.
        progress = Progress(TextColumn(f"{self.name}: {label}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=self.console, transient=True,
                            disable=not self.console.is_terminal)
        with progress:
            task = progress.add_task("sync", total=products)
            self.orchestrator.on_entities_done = lambda n: progress.advance(task, n)
            started = time.perf_counter()
            response = await self.api.post(f"/api/zoho/bulk-sync/{ENTITY.value}", json={})
            elapsed = time.perf_counter() - started
            self.orchestrator.on_entities_done = None
        answer = response.json()
        record = RunRecord(self.name, label, elapsed, answer["synced"], answer["skipped"], answer["failed"],
                           answer["db_writes"], answer["complete"])
        if response.status_code != 200:
            record.problems.append(f"bulk-sync answered {response.status_code}: {answer.get('errors')}")
        if (record.synced, record.skipped, record.failed) != (expected, products - expected, 0):
            record.problems.append(f"expected {expected} synced / {products - expected} skipped / 0 failed")
        if self.orchestrator.cache_enabled and changed_ids is not None and self.orchestrator.saved_ids != changed_ids:
            record.problems.append(f"wrote {len(self.orchestrator.saved_ids)} products, not exactly the "
                                   f"{len(changed_ids)} that changed")
        record.problems += await database_mismatches(self.database, self.control)
        verdict = ("[green]database = Zoho[/green]" if not record.problems
                   else "[red]" + "; ".join(record.problems) + "[/red]")
        self.console.print(f"POST /api/zoho/bulk-sync/{ENTITY.value} ({label}): {record.synced} synced, "
                           f"{record.skipped} skipped, {record.failed} failed, {record.db_writes} DB writes "
                           f"in {elapsed:.2f} s; {verdict}", soft_wrap=True)
        return record


async def _three_runs(name: str, orchestrator: DemoOrchestrator, database: SyncDatabase,
                      control: httpx.AsyncClient, options: DemoOptions, console: Console) -> list[RunRecord]:
    app = create_app(orchestrator=orchestrator)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as api:
        scenario = _Scenario(name, orchestrator, database, api, control, options, console)
        console.rule(f"[bold]{name}: three runs[/bold]")
        records = [await scenario.run("first sync"), await scenario.run("no changes", changed_ids=set())]
        changed = await _post(control, "/__sim/mutate", {"entity": SIM_KEY, "fraction": options.fraction, "seed": 1})
        changed_ids = {str(i) for i in changed["changed_ids"]}
        console.print(f"Zoho: {len(changed_ids)} of {options.products} products changed "
                      f"(rate and last_modified_time)")
        records.append(await scenario.run(f"{len(changed_ids)} changed", changed_ids=changed_ids))
    return records


async def database_mismatches(database: SyncDatabase, control: httpx.AsyncClient) -> list[str]:
    """Differences between the products table and what the simulator serves now: ids missing from
    the database, ids it should not hold, and rows whose data is stale."""
    response = await control.get(f"/__sim/records/{SIM_KEY}")
    response.raise_for_status()
    served = {str(r[ENTITY.id_field]): r for r in response.json()["records"]}
    stored = {row.zoho_id: row.data for row in await database.rows_for_warm(ENTITY)}
    problems = []
    missing = served.keys() - stored.keys()
    extra = stored.keys() - served.keys()
    stale = [i for i in served.keys() & stored.keys() if served[i] != stored[i]]
    for what, ids in (("missing from the database", missing), ("in the database but not in Zoho", extra),
                      ("stale in the database", stale)):
        if ids:
            problems.append(f"{len(ids)} products {what} (e.g. {sorted(ids)[0]})")
    return problems


def _table(records: list[RunRecord], options: DemoOptions) -> Table:
    table = Table(title=f"Product bulk sync: {options.products} products, "
                        f"{options.fraction:.0%} changed before run 3", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    # Short headers and cells: the table fits an 80-column terminal without truncation.
    for name in ("Scenario", "Run", "Time", "Synced", "Skipped", "Failed", "DB writes", "DB = Zoho"):
        table.add_column(name, justify="left" if name in ("Scenario", "Run") else "right", no_wrap=True)
    for i, r in enumerate(records):
        last_of_scenario = i + 1 == len(records) or records[i + 1].scenario != r.scenario
        table.add_row(r.scenario, r.label, f"{r.duration_s:.2f} s", str(r.synced), str(r.skipped), str(r.failed),
                      str(r.db_writes), "[green]yes[/green]" if not r.problems else "[red]NO[/red]",
                      end_section=last_of_scenario)
    return table


def _print_summary(records: list[RunRecord], console: Console) -> None:
    def totals(scenario: str) -> tuple[int, float]:
        rows = [r for r in records if r.scenario == scenario]
        return sum(r.db_writes for r in rows), sum(r.duration_s for r in rows)

    cached_writes, cached_time = totals(CACHED)
    plain_writes, plain_time = totals(UNCACHED)
    saved = 1 - cached_writes / plain_writes if plain_writes else 0.0
    console.print(f"With the cache: {cached_writes} database writes in {cached_time:.2f} s over three runs; "
                  f"without: {plain_writes} in {plain_time:.2f} s ({saved:.0%} fewer writes).", soft_wrap=True)
    console.print("[green]OK[/green]: after every run the database held exactly the simulator's records.")


__all__ = ["DemoOptions", "DemoOrchestrator", "RunRecord", "run_demo", "database_mismatches"]
