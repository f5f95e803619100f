"""`retry N backoff KIND MIN to MAX` never waits less than MIN (nor more than MAX, unless a server's
Retry-After asks for more), and `fixed` waits exactly MIN. Before, the jitter ("equal jitter",
half the nominal wait to all of it) went below MIN: QA saw `exponential 1s to 8s` retry after
0.961 s and `fixed 2s to 2s` after 1.404 s.

`RetryPolicy.delay` over many seeds, then one run on the sim provider whose `task_retried` events
are read back."""

from __future__ import annotations

import random

import pytest

from bmad.compiler import ir
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.providers import base
from bmad.runtime.retry import DEFAULT_MAX_S, DEFAULT_MIN_S, RetryPolicy
from runtime_support import plan_source, run_plan, sim_factory

SEEDS = range(300)


def policy(backoff: str, low: float | None, high: float | None, attempts: int = 6) -> RetryPolicy:
    return RetryPolicy.from_ir(ir.Retry(attempts, backoff, low, high))


def waits(p: RetryPolicy, attempt: int, error: BaseException | None = None) -> list[float]:
    return [p.delay(attempt, error, random.Random(seed)) for seed in SEEDS]


@pytest.mark.parametrize("attempt, low, high", [(1, 1.0, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0),
                                                (4, 4.0, 8.0), (5, 4.0, 8.0)])
def test_exponential_waits_stay_between_min_and_max(attempt, low, high):
    # nominal 1, 2, 4, 8, 8 s; jittered down to half of it, never below MIN
    got = waits(policy("exponential", 1.0, 8.0), attempt)
    assert min(got) >= low and max(got) <= high, (min(got), max(got))
    if low < high:
        assert max(got) - min(got) > (high - low) / 2  # still jittered


@pytest.mark.parametrize("attempt, low, high", [(1, 1.0, 1.0), (2, 1.0, 2.0), (3, 1.5, 3.0),
                                                (4, 1.5, 3.0)])
def test_linear_waits_stay_between_min_and_max(attempt, low, high):
    got = waits(policy("linear", 1.0, 3.0), attempt)
    assert min(got) >= low and max(got) <= high, (min(got), max(got))


@pytest.mark.parametrize("low, high", [(2.0, 2.0), (2.0, 5.0), (0.0, 0.0)])
def test_fixed_waits_exactly_min(low, high):
    p = policy("fixed", low, high)
    for attempt in (1, 2, 5):
        assert set(waits(p, attempt)) == {low}


def test_without_a_range_the_defaults_hold():
    got = waits(RetryPolicy.from_ir(None), 1)
    assert set(got) == {DEFAULT_MIN_S}
    assert all(DEFAULT_MIN_S <= w <= DEFAULT_MAX_S for a in range(1, 12)
               for w in waits(policy("exponential", None, None), a))


def test_a_late_attempt_of_a_long_retry_waits_max():
    # `retry 5000` is within `rounds_per_task` when raised; 2 ** 4999 overflowed a float
    assert min(waits(policy("exponential", 1.0, 8.0, attempts=5001), 5000)) >= 4.0
    assert max(waits(policy("exponential", 1.0, 8.0, attempts=5001), 5000)) <= 8.0


def test_a_retry_after_longer_than_the_backoff_wins_and_a_shorter_one_does_not():
    p = policy("fixed", 2.0, 5.0)
    assert set(waits(p, 1, base.RateLimited("slow down", retry_after_s=4.5))) == {4.5}
    assert set(waits(p, 1, base.RateLimited("slow down", retry_after_s=0.5))) == {2.0}


@pytest.mark.parametrize("low, high, floor, ceiling", [
    (None, 0.2, 0.2, 0.2),  # YAML `max_delay: 0.2` alone: the default MIN (0.5 s) yields to it
    (60.0, None, 60.0, 120.0),  # `initial_delay: 60` alone: the default MAX (30 s) yields to it
])
def test_a_bound_given_alone_is_kept(low, high, floor, ceiling):
    p = policy("exponential", low, high)
    got = [w for a in (1, 2, 3) for w in waits(p, a)]
    assert min(got) >= floor and max(got) <= ceiling, (min(got), max(got))


def test_the_run_retries_no_sooner_than_min(tmp_path):
    plan = plan_source(tmp_path, """
        workflow w {
          task draft {
            prompt "Draft an answer"
            model cheap
            fallback none
            retry 3 backoff exponential 200ms to 800ms
            on_error continue
          }
          task tldr {
            prompt "Summarise"
            model mid
            fallback none
            retry 2 backoff fixed 300ms to 1s
            on_error continue
          }
          output draft
          output tldr
        }
    """)
    # every call fails: each task uses all its retries (the run goes on, `on_error continue`)
    factory = sim_factory(plan, failure_rate=1.0, failure_kinds=("transient",))
    _, recorder = run_plan(plan, tmp_path, factory=factory, config=RunConfig())
    delays = {"draft": [], "tldr": []}
    for event in recorder.kinds("task_retried"):
        delays[event.task].append((event.data["attempt"], event.data["delay_s"]))
    assert [a for a, _ in delays["draft"]] == [1, 2, 3] and len(delays["tldr"]) == 2, delays
    for attempt, delay in delays["draft"]:
        nominal = min(0.2 * 2 ** (attempt - 1), 0.8)
        assert max(0.2, nominal / 2) <= delay <= nominal, (attempt, delay)
    assert {delay for _, delay in delays["tldr"]} == {0.3}
