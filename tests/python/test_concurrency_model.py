"""The proof that no change is skipped: workers (threads, processes, threads on seeded schedules)
check, write a SQLite database and commit while the source mutates; after every round no stale
entity may read unchanged. Broken commits in the same harness show the verifier bites. Seed:
$TDSCACHE_MODEL_SEED (printed on failure); $TDSCACHE_MODEL_SCALE multiplies the rounds.
"""

from __future__ import annotations

import dataclasses
import os
import random
import uuid
from pathlib import Path

import pytest

import concurrency_worker as model
import tdscache
from tdscache.testing import RedisServer

SEED = int(os.environ.get("TDSCACHE_MODEL_SEED") or random.SystemRandom().randrange(2**31))
SCALE = float(os.environ.get("TDSCACHE_MODEL_SCALE") or 1.0)

# 10,000 rounds of the correct protocol in total, split so each kind of concurrency gets a
# share; about 35 s on a 2-core machine.
THREAD_ROUNDS = 4000
PROCESS_ROUNDS = 3000
SCHEDULED_ROUNDS = 3000
# The broken variants: enough rounds that a working verifier cannot miss. On seeded schedules
# with two entities, the unconditional race shows up about 10 times per 1000 rounds, a commit of
# the wrong version in about a third of the rounds.
BROKEN_RACE_ROUNDS = 1000
BROKEN_DIGEST_ROUNDS = 200
# The schedule parameters under which the unconditional race is frequent; the correct variant
# runs under the very same ones.
RACE_SHAPE = {"entity_count": 2, "max_mutations": 4}
RACE_WORKERS = 4


def rounds(n: int) -> int:
    return max(1, int(n * SCALE))


def model_config(server: RedisServer, tmp_path: Path, **overrides: object) -> model.ModelConfig:
    config = model.ModelConfig(redis_url=server.url, source_path=str(tmp_path / "source.db"),
                               target_path=str(tmp_path / "target.db"),
                               key_prefix=f"tds:model:{uuid.uuid4().hex[:8]}", seed=SEED)
    config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
    model.create_stores(config)
    return config


def explain(result: model.RoundsResult, config: model.ModelConfig) -> str:
    return (f"seed {config.seed} (TDSCACHE_MODEL_SEED={config.seed} reproduces it), variant {config.variant}, "
            f"{result.rounds} rounds, {result.false_skips} false skips; first: {result.first_false_skip}; "
            f"{result.tally}")


def assert_no_false_skip(result: model.RoundsResult, config: model.ModelConfig, expected_rounds: int) -> None:
    why = explain(result, config)
    assert result.rounds == expected_rounds, why
    assert result.false_skips == 0, why
    # The run must have exercised what the invariant is about, or passing it means nothing:
    # skips happened (the verifier saw unchanged), stale rows existed, the source moved, and
    # workers collided on the same entities (conflicts).
    assert result.unchanged_seen > 0, why
    assert result.stale_seen > 0, why
    assert result.tally.mutations > 0, why
    assert result.tally.conflicts > 0, why
    assert result.tally.commit_errors == 0 and result.tally.check_errors == 0, why


def test_worker_threads_never_skip_an_entity_that_changed(fresh_redis: RedisServer, tmp_path: Path) -> None:
    config = model_config(fresh_redis, tmp_path)
    result = model.run_threads(config, workers=4, rounds=rounds(THREAD_ROUNDS))
    assert_no_false_skip(result, config, rounds(THREAD_ROUNDS))


def test_worker_processes_never_skip_an_entity_that_changed(fresh_redis: RedisServer, tmp_path: Path) -> None:
    config = model_config(fresh_redis, tmp_path)
    result = model.run_processes(config, workers=3, rounds=rounds(PROCESS_ROUNDS))
    assert_no_false_skip(result, config, rounds(PROCESS_ROUNDS))


def test_seeded_interleavings_never_skip_an_entity_that_changed(fresh_redis: RedisServer,
                                                                tmp_path: Path) -> None:
    config = model_config(fresh_redis, tmp_path, scheduled=True, **RACE_SHAPE)
    result = model.run_threads(config, workers=RACE_WORKERS, rounds=rounds(SCHEDULED_ROUNDS))
    assert_no_false_skip(result, config, rounds(SCHEDULED_ROUNDS))


def test_seeded_interleavings_replay_exactly(fresh_redis: RedisServer, tmp_path: Path) -> None:
    def run(name: str) -> model.RoundsResult:
        directory = tmp_path / name
        directory.mkdir()
        config = model_config(fresh_redis, directory, scheduled=True, **RACE_SHAPE)
        return model.run_threads(config, workers=RACE_WORKERS, rounds=200)

    first, second = run("first"), run("second")
    assert first.trace == second.trace, f"seed {SEED}: the same seed gave different rounds"
    assert first.tally == second.tally, f"seed {SEED}"
    assert first.tally.conflicts > 0, f"seed {SEED}: the schedules never made workers collide"


def test_the_verifier_catches_unconditional_commits_racing(fresh_redis: RedisServer, tmp_path: Path) -> None:
    # Without the check's observation, a worker that read the older version can write the
    # database last while another commits the newer digest last: the state then vouches for a
    # row the database does not hold. The same schedules with the real commit give no false skip.
    config = model_config(fresh_redis, tmp_path, scheduled=True, variant="unconditional", **RACE_SHAPE)
    result = model.run_threads(config, workers=RACE_WORKERS, rounds=BROKEN_RACE_ROUNDS)
    assert result.false_skips > 0, f"the verifier missed the unconditional race: {explain(result, config)}"
    assert result.first_false_skip is not None and "reported unchanged" in result.first_false_skip


@pytest.mark.parametrize("scheduled", [False, True], ids=["free-running", "scheduled"])
def test_the_verifier_catches_a_commit_of_the_wrong_version(fresh_redis: RedisServer, tmp_path: Path,
                                                            scheduled: bool) -> None:
    config = model_config(fresh_redis, tmp_path, scheduled=scheduled, variant="stale_digest")
    result = model.run_threads(config, workers=3, rounds=BROKEN_DIGEST_ROUNDS)
    assert result.false_skips > 0, f"the verifier missed stale digests: {explain(result, config)}"


@pytest.mark.parametrize("run", [model.run_threads, model.run_processes], ids=["threads", "processes"])
def test_a_worker_that_fails_fails_the_run_at_once_instead_of_hanging_it(fresh_redis: RedisServer, tmp_path: Path,
                                                                         run: object) -> None:
    # With no entities, workers cannot pick any and the writer cannot mutate any: all raise.
    config = model_config(fresh_redis, tmp_path, entity_count=0)
    with pytest.raises(RuntimeError, match="a participant failed") as failure:
        run(config, workers=2, rounds=5)  # type: ignore[operator]
    assert "Traceback" in str(failure.value) and ("ValueError" in str(failure.value) or "IndexError" in str(failure.value))


def test_a_stale_missing_observation_cannot_commit_after_a_conflict_emptied_the_key(fresh_redis: RedisServer) -> None:
    # Regression (found by the model above): three workers see no entry. A commits; B loses the
    # conflict rule; C, whose check predates A's commit, commits last. When B's loss deleted the
    # key, C found "missing" again, as it had observed, and wrote its digest over A's database
    # row: the next check skipped an entity whose database row was stale. B must leave a marker.
    a, b, c = (tdscache.Cache(fresh_redis.url) for _ in range(3))
    v1 = {"item_id": "2646610000000000001", "rate": 10}
    v2 = {"item_id": "2646610000000000001", "rate": 20}
    seen_a = a.check_entities("product", [v1])  # read the source before the change
    seen_b = b.check_entities("product", [v2])  # and after it
    seen_c = c.check_entities("product", [v2])
    assert seen_a.reasons == seen_b.reasons == seen_c.reasons == ["no_cache_entry"]
    # Database writes: C, then B, then A last, so the database holds v1.
    assert a.commit(seen_a, [0]).outcomes == ["written"]
    assert b.commit(seen_b, [0]).outcomes == ["conflict"]
    assert c.commit(seen_c, [0]).outcomes == ["conflict"], "C's observation of 'missing' is stale"
    assert a.check_entities("product", [v2]).reasons == ["no_cache_entry"], "the source (v2) is not in the database (v1)"
    assert a.check_entities("product", [v1]).reasons == ["no_cache_entry"]
    # The marker counts as no entry; a fresh check can commit over it.
    state = a.get_state("product", v1["item_id"])
    assert state is not None and state["content_hash"] == "0" * 64
    fresh = a.check_entities("product", [v1])
    assert a.commit(fresh, [0]).outcomes == ["written"]
    assert a.check_entities("product", [v1]).reasons == ["unchanged"]
