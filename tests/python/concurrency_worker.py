"""The concurrency model behind test_concurrency_model.py (and the eviction rounds of test_faults.py):
a "Zoho" source table, a target database table, workers that check / write / commit, a writer that
mutates the source, and the verifier of the one invariant. Importable by spawned processes, so it
holds no pytest code and no state at import time.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.connection
import queue
import random
import sqlite3
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence

import tdscache

ENTITY_TYPE = "product"
ID_BASE = 2646610000000000000  # 19-digit ids, like Zoho's
# Few distinct contents per entity, so a mutation often brings back an earlier version: the
# A -> B -> A case is where a digest cache is easiest to fool.
RATES = (10, 20, 30)
# Every wait on a round barrier or a turn is bounded: a participant that died must fail the
# test, not hang it.
BARRIER_TIMEOUT_S = 60.0
STEPS_PER_CYCLE = 4  # read the source, check, write the database, commit

VARIANTS = ("correct", "stale_digest", "unconditional")


class Barrier(Protocol):
    def wait(self, timeout: Optional[float] = None) -> int: ...
    def abort(self) -> None: ...


@dataclass(frozen=True)
class ModelConfig:
    redis_url: str
    source_path: str
    target_path: str
    key_prefix: str
    seed: int
    entity_count: int = 6
    # correct: commit(report, written), the protocol. stale_digest: commits, unconditionally,
    # the digest of a fresh read of the source instead of the version written. unconditional:
    # commits the checked digests without the check's observation, so two workers race freely.
    variant: str = "correct"
    # Free-running rounds: pauses of up to this many seconds at random points of a cycle, so
    # the writer's mutations and the other workers' steps land between a worker's steps.
    jitter_s: float = 0.0004
    max_mutations: int = 3  # per round
    # Scheduled rounds (threads only): every step waits for its turn in a seeded random
    # interleaving, so the seed replays the exact round. No jitter then.
    scheduled: bool = False

    def entity_ids(self) -> list[str]:
        return [str(ID_BASE + i) for i in range(self.entity_count)]


def body_of(entity_id: str, rate: int) -> str:
    """The source's JSON text of one entity version (sorted keys: one text per content)."""
    return json.dumps({"item_id": entity_id, "name": f"item {entity_id[-4:]}", "rate": rate,
                       "sku": f"SKU-{entity_id[-6:]}"}, sort_keys=True)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    # Durability is not under test; fsyncs would only slow the rounds down.
    conn.execute("PRAGMA synchronous = OFF")
    return conn


def create_stores(config: ModelConfig) -> None:
    """The source (every entity at its first version) and an empty target database, WAL mode so
    readers never block the writer."""
    with _connect(config.source_path) as source:
        source.execute("PRAGMA journal_mode = WAL")
        source.execute("CREATE TABLE IF NOT EXISTS source (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        source.execute("DELETE FROM source")
        source.executemany("INSERT INTO source VALUES (?, ?)",
                           [(i, body_of(i, RATES[0])) for i in config.entity_ids()])
    with _connect(config.target_path) as target:
        target.execute("PRAGMA journal_mode = WAL")
        target.execute("CREATE TABLE IF NOT EXISTS target (id TEXT PRIMARY KEY, body TEXT NOT NULL, digest TEXT NOT NULL)")
        target.execute("DELETE FROM target")


def open_cache(config: ModelConfig) -> tdscache.Cache:
    return tdscache.Cache(config.redis_url, key_prefix=config.key_prefix, command_timeout_ms=5000,
                          connect_timeout_ms=5000)


@dataclass
class Tally:
    """What one participant did; summed over participants."""

    cycles: int = 0
    synced: int = 0
    skipped: int = 0
    written: int = 0
    conflicts: int = 0
    commit_errors: int = 0
    check_errors: int = 0
    mutations: int = 0

    def add(self, other: "Tally") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Turnstile:
    """A seeded schedule for one round: the order in which participants take their steps. Each
    step waits for its turn, so a round runs one exact interleaving, the same one for the same seed
    (threads only). Without a plan, steps run freely."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._plan: list[str] = []
        self._at = 0

    @staticmethod
    def plan_for(rng: random.Random, workers: int, max_mutations: int) -> list[str]:
        # A uniform shuffle of everybody's steps is a uniform interleaving of their programs.
        tokens = [f"worker:{i}" for i in range(workers) for _ in range(STEPS_PER_CYCLE)]
        tokens += ["writer:0"] * rng.randint(0, max_mutations)
        rng.shuffle(tokens)
        return tokens

    def set_plan(self, plan: list[str]) -> None:
        with self._changed:
            self._plan, self._at = plan, 0
            self._changed.notify_all()

    def turns(self, who: str) -> int:
        with self._changed:
            return self._plan.count(who)

    @contextlib.contextmanager
    def turn(self, who: str) -> Iterator[None]:
        with self._changed:
            if not self._changed.wait_for(lambda: self._at < len(self._plan) and self._plan[self._at] == who,
                                           BARRIER_TIMEOUT_S):
                raise TimeoutError(f"{who} never got its turn at step {self._at} of {self._plan}")
        try:
            yield
        finally:
            with self._changed:
                self._at += 1
                self._changed.notify_all()


def _free(who: str) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class Worker:
    """One sync worker: read the source, check, write the entities that must sync, commit what
    was written."""

    def __init__(self, config: ModelConfig, index: int, cache: Optional[tdscache.Cache] = None) -> None:
        self.config = config
        self.name = f"worker:{index}"
        self.rng = random.Random(f"{config.seed}:{self.name}")
        self.cache = cache if cache is not None else open_cache(config)
        self.source = _connect(config.source_path)
        self.target = _connect(config.target_path)
        self.ids = config.entity_ids()
        self.tally = Tally()

    def close(self) -> None:
        self.source.close()
        self.target.close()

    def _jitter(self) -> None:
        if not self.config.scheduled and self.config.jitter_s > 0 and self.rng.random() < 0.5:
            time.sleep(self.rng.uniform(0, self.config.jitter_s))

    def _read(self, ids: Sequence[str]) -> list[str]:
        marks = ",".join("?" * len(ids))
        rows = dict(self.source.execute(f"SELECT id, body FROM source WHERE id IN ({marks})", list(ids)))
        return [rows[i] for i in ids]

    def cycle(self, turn: Callable[[str], contextlib.AbstractContextManager[None]] = _free) -> None:
        ids = self.rng.sample(self.ids, self.rng.randint(1, len(self.ids)))
        self._jitter()  # so that some workers read the source before a mutation and some after
        with turn(self.name):
            bodies = self._read(ids)
        entities = [json.loads(b) for b in bodies]
        with turn(self.name):
            report = self.cache.check_entities(ENTITY_TYPE, entities)
        self._jitter()
        to_sync = report.indices_to_sync()
        digests = self.cache.hasher.digest_many(entities)
        with turn(self.name):
            self.target.execute("BEGIN IMMEDIATE")
            self.target.executemany("INSERT OR REPLACE INTO target VALUES (?, ?, ?)",
                                    [(ids[i], bodies[i], digests[i].hex()) for i in to_sync])
            self.target.execute("COMMIT")
        self._jitter()
        with turn(self.name):
            synced_ids = [ids[i] for i in to_sync]
            if self.config.variant == "correct":
                done = self.cache.commit(report, to_sync)
            elif self.config.variant == "stale_digest":
                fresh = [json.loads(b) for b in self._read(synced_ids)]
                done = self.cache.commit_unconditional(ENTITY_TYPE, synced_ids, self.cache.hasher.digest_many(fresh))
            else:
                done = self.cache.commit_unconditional(ENTITY_TYPE, synced_ids, [digests[i] for i in to_sync])
        t = self.tally
        t.cycles += 1
        t.synced += len(to_sync)
        t.skipped += report.skipped
        t.check_errors += report.cache_errors
        t.written += done.written
        t.conflicts += done.conflicts
        t.commit_errors += done.errors


class Writer:
    """The "Zoho" side: a few mutations per round, at random moments of the round (or at its
    turns, in a scheduled round)."""

    name = "writer:0"

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.rng = random.Random(f"{config.seed}:{self.name}")
        self.source = _connect(config.source_path)
        self.ids = config.entity_ids()
        self.tally = Tally()

    def close(self) -> None:
        self.source.close()

    def burst(self, mutations: int, turn: Callable[[str], contextlib.AbstractContextManager[None]] = _free) -> None:
        for n in range(mutations):
            # The first mutation lands as the round starts, so the entity's cached state is stale
            # for most readers; the later ones land while workers are between their steps.
            if n > 0 and not self.config.scheduled and self.config.jitter_s > 0:
                time.sleep(self.rng.uniform(0, 2 * self.config.jitter_s))
            with turn(self.name):
                entity_id = self.rng.choice(self.ids)
                self.source.execute("UPDATE source SET body = ? WHERE id = ?",
                                    (body_of(entity_id, self.rng.choice(RATES)), entity_id))
            self.tally.mutations += 1


@dataclass
class Verdict:
    """One verification: the entities whose source differs from the database, and those of them
    the check called unchanged (false skips: the bug that must never happen)."""

    stale: list[str] = field(default_factory=list)
    false_skips: list[str] = field(default_factory=list)
    unchanged: int = 0
    reasons: dict[str, str] = field(default_factory=dict)


class Verifier:
    """Checks the invariant at a quiet moment: for every entity, the check with the source's
    current digest may say unchanged only if the database holds exactly the source's content."""

    def __init__(self, config: ModelConfig, cache: Optional[tdscache.Cache] = None) -> None:
        self.config = config
        self.cache = cache if cache is not None else open_cache(config)
        self.source = _connect(config.source_path)
        self.target = _connect(config.target_path)
        self.ids = config.entity_ids()

    def close(self) -> None:
        self.source.close()
        self.target.close()

    def verify(self) -> Verdict:
        source = dict(self.source.execute("SELECT id, body FROM source"))
        target = {i: b for i, b, _ in self.target.execute("SELECT id, body, digest FROM target")}
        report = self.cache.check_entities(ENTITY_TYPE, [json.loads(source[i]) for i in self.ids])
        verdict = Verdict()
        for entity_id, why in zip(self.ids, report.reasons):
            verdict.reasons[entity_id] = why
            if why == "unchanged":
                verdict.unchanged += 1
            if target.get(entity_id) != source[entity_id]:
                verdict.stale.append(entity_id)
                if why == "unchanged":
                    verdict.false_skips.append(entity_id)
        return verdict


@dataclass
class RoundsResult:
    rounds: int = 0
    false_skips: int = 0       # (round, entity) pairs reported unchanged while stale
    false_skip_events: int = 0  # of those, the ones that were not already so the round before
    stale_seen: int = 0
    unchanged_seen: int = 0
    first_false_skip: Optional[str] = None  # "round N: entity E (source ..., database ...)"
    tally: Tally = field(default_factory=Tally)
    # Per round, every entity's reason at verification: equal traces mean equal runs.
    trace: list[tuple[tuple[str, str], ...]] = field(default_factory=list)


def participant_loop(config: ModelConfig, role: str, index: int, rounds: int, start: Barrier,
                     end: Barrier, results: Any, turnstile: Optional[Turnstile] = None) -> None:
    """The body of one thread or process: `rounds` times, wait for the round to start, act, wait
    for it to end. Puts (role, index, Tally or a traceback text) on `results` when done. Any
    failure breaks the barriers, so nobody waits for it."""
    actor: Worker | Writer | None = None
    turn = turnstile.turn if turnstile is not None else _free
    mutations = random.Random(f"{config.seed}:mutations")
    try:
        actor = Worker(config, index) if role == "worker" else Writer(config)
        for _ in range(rounds):
            start.wait(BARRIER_TIMEOUT_S)
            if isinstance(actor, Worker):
                actor.cycle(turn)
            elif turnstile is not None:
                actor.burst(turnstile.turns(actor.name), turn)
            else:
                actor.burst(mutations.randint(0, config.max_mutations))
            end.wait(BARRIER_TIMEOUT_S)
        results.put((role, index, actor.tally))
    except threading.BrokenBarrierError:
        results.put((role, index, "the round barrier broke (another participant failed)"))
    except BaseException:  # reported to the verifying side, which fails the test with it
        results.put((role, index, traceback.format_exc()))
        start.abort()
        end.abort()
    finally:
        if actor is not None:
            actor.close()


def verify_rounds(config: ModelConfig, workers: int, rounds: int, start: Barrier, end: Barrier,
                  turnstile: Optional[Turnstile] = None) -> RoundsResult:
    """The verifying side of participant_loop: plans each round (when scheduled), and after each
    round, while everyone waits at the next start, checks the invariant."""
    verifier: Optional[Verifier] = None
    schedules = random.Random(f"{config.seed}:schedule")
    result = RoundsResult()
    previous: set[str] = set()
    try:
        verifier = Verifier(config)
        for round_number in range(rounds):
            if turnstile is not None:
                turnstile.set_plan(Turnstile.plan_for(schedules, workers, config.max_mutations))
            start.wait(BARRIER_TIMEOUT_S)
            end.wait(BARRIER_TIMEOUT_S)
            verdict = verifier.verify()
            result.rounds += 1
            result.stale_seen += len(verdict.stale)
            result.unchanged_seen += verdict.unchanged
            result.false_skips += len(verdict.false_skips)
            result.false_skip_events += len(set(verdict.false_skips) - previous)
            previous = set(verdict.false_skips)
            result.trace.append(tuple(sorted(verdict.reasons.items())))
            if verdict.false_skips and result.first_false_skip is None:
                result.first_false_skip = describe_false_skip(verifier, round_number, verdict.false_skips[0])
    except BaseException:
        # Release the participants at once instead of leaving them to their barrier timeout.
        start.abort()
        end.abort()
        raise
    finally:
        if verifier is not None:
            verifier.close()
    return result


def describe_false_skip(verifier: Verifier, round_number: int, entity_id: str) -> str:
    source = verifier.source.execute("SELECT body FROM source WHERE id = ?", (entity_id,)).fetchone()
    target = verifier.target.execute("SELECT body FROM target WHERE id = ?", (entity_id,)).fetchone()
    state = verifier.cache.get_state(ENTITY_TYPE, entity_id)
    return (f"round {round_number}: entity {entity_id} reported unchanged; source {source and source[0]}, "
            f"database {target and target[0]}, cached state {state}")


def run_threads(config: ModelConfig, workers: int, rounds: int) -> RoundsResult:
    """`workers` worker threads and one writer thread; this thread verifies."""
    parties = workers + 2
    start, end = threading.Barrier(parties), threading.Barrier(parties)
    turnstile = Turnstile() if config.scheduled else None
    results: queue.Queue[tuple[str, int, Any]] = queue.Queue()
    threads = [threading.Thread(target=participant_loop, name=f"model-{role}-{i}",
                                args=(config, role, i, rounds, start, end, results, turnstile), daemon=True)
               for role, i in [("worker", i) for i in range(workers)] + [("writer", 0)]]
    for t in threads:
        t.start()
    try:
        outcome = verify_rounds(config, workers, rounds, start, end, turnstile)
    except threading.BrokenBarrierError:
        outcome = RoundsResult()  # a participant failed; its report says why
    finally:
        for t in threads:
            t.join(BARRIER_TIMEOUT_S)
    return _collect(outcome, _drain(results, len(threads)))


def run_processes(config: ModelConfig, workers: int, rounds: int) -> RoundsResult:
    """`workers` worker processes and one writer process, spawned (no client is ever carried
    across a fork); this process verifies. A process that dies breaks the barriers at once."""
    if config.scheduled:
        raise ValueError("scheduled rounds need threads (the turnstile is not shared across processes)")
    context = multiprocessing.get_context("spawn")
    parties = workers + 2
    start, end = context.Barrier(parties), context.Barrier(parties)
    results: Any = context.Queue()
    processes = [context.Process(target=participant_loop, name=f"model-{role}-{i}",
                                 args=(config, role, i, rounds, start, end, results), daemon=True)
                 for role, i in [("worker", i) for i in range(workers)] + [("writer", 0)]]
    for p in processes:
        p.start()
    finished = threading.Event()

    def watch() -> None:
        # A process that exits early (crash, import error) never reaches the barrier again.
        pending: dict[Any, Any] = {p.sentinel: p for p in processes}
        while pending and not finished.is_set():
            for sentinel in multiprocessing.connection.wait(list(pending), timeout=1.0):
                if pending.pop(sentinel).exitcode != 0:
                    start.abort()
                    end.abort()

    watcher = threading.Thread(target=watch, name="model-watch", daemon=True)
    watcher.start()
    try:
        outcome = verify_rounds(config, workers, rounds, start, end)
    except threading.BrokenBarrierError:
        outcome = RoundsResult()  # a participant failed; its report says why
    finally:
        for p in processes:
            p.join(BARRIER_TIMEOUT_S)
            if p.is_alive():
                p.kill()
                p.join()
        finished.set()
        watcher.join(BARRIER_TIMEOUT_S)
    reports = _drain(results, len(processes))
    dead = [f"{p.name} exited with {p.exitcode}" for p in processes if p.exitcode != 0]
    if dead and len(reports) < len(processes):
        raise RuntimeError("participants died without a report: " + ", ".join(dead))
    return _collect(outcome, reports)


def _drain(results: Any, expected: int) -> list[tuple[str, int, Any]]:
    """The reports put so far (every participant has ended, so none is on its way)."""
    reports = []
    for _ in range(expected):
        try:
            reports.append(results.get(timeout=5.0))
        except queue.Empty:
            break
    return reports


def _collect(outcome: RoundsResult, reports: list[tuple[str, int, Any]]) -> RoundsResult:
    failures = [f"{role} {index}:\n{report}" for role, index, report in reports if not isinstance(report, Tally)]
    if failures:
        raise RuntimeError("a participant failed:\n" + "\n".join(failures))
    for _, _, tally in reports:
        outcome.tally.add(tally)
    return outcome
