"""The scheduler's worker pool: never more workers than the concurrency, and no more than ready
work needs (a chain runs on one worker); every node runs once, after its dependencies'
commit, in rank order among the ready ones."""

from __future__ import annotations

import random

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmad.runtime.scheduler import Scheduler


def _run(deps: list[list[int]], workers: int, *, latency: bool = False, commit: bool = True):
    started: list[int] = []
    committed: set[int] = set()
    running = peak = 0
    rng = random.Random(len(deps))

    async def run(node: int) -> None:
        nonlocal running, peak
        assert all(d in committed for d in deps[node]), "started before a dependency's commit"
        started.append(node)
        running += 1
        peak = max(peak, running)
        await anyio.sleep(rng.random() / 1000 if latency else 0)
        running -= 1
        if not commit:  # without a commit a node is released as it finishes
            committed.add(node)

    def record(finished: list[int]) -> None:
        committed.update(finished)

    scheduler = Scheduler(list(range(len(deps))), deps, [(i,) for i in range(len(deps))], run,
                          workers=workers, commit=record if commit else None)
    anyio.run(scheduler.run_all)
    return started, peak, scheduler._spawned


def test_a_chain_runs_on_one_worker():
    deps = [[]] + [[i] for i in range(199)]
    started, peak, spawned = _run(deps, workers=64)
    assert started == list(range(200)) and peak == 1 and spawned == 1


@pytest.mark.parametrize("commit", [True, False])
def test_a_fan_out_grows_the_pool_to_the_concurrency_and_no_further(commit):
    deps = [[]] + [[0] for _ in range(300)]
    started, peak, spawned = _run(deps, workers=16, latency=True, commit=commit)
    assert sorted(started) == list(range(301)) and started[0] == 0
    assert spawned == 16 and peak == 16


def test_a_narrow_dag_starts_only_the_workers_its_width_needs():
    # Two independent chains: never more than two nodes ready at once.
    deps = [[], []] + [[i] for i in range(98)]
    started, peak, spawned = _run(deps, workers=64, latency=True)
    assert sorted(started) == list(range(100)) and spawned <= 3 and peak <= 2


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_dags_run_every_node_once_within_the_concurrency(data):
    n = data.draw(st.integers(1, 80))
    deps = [sorted(set(data.draw(st.lists(st.integers(0, i - 1), max_size=3)))) if i else []
            for i in range(n)]
    workers = data.draw(st.integers(1, 12))
    started, peak, spawned = _run(deps, workers=workers, latency=data.draw(st.booleans()),
                                  commit=data.draw(st.booleans()))
    assert sorted(started) == list(range(n))
    assert peak <= workers and spawned <= workers
